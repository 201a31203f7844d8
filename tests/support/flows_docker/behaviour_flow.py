"""One step per behaviour the docker tests look at; each test runs it with --step-like overrides."""

import os
import sys
import time

from workbench import FlowSpec, resources, step, timeout


def in_task_container() -> bool:
    """The docker backend's container runs the task under its `sh` wrapper as pid 1."""
    try:
        with open("/proc/1/cmdline", "rb") as f:
            return b"workbench-task" in f.read()
    except OSError:
        return False


class LiveFlow(FlowSpec):
    @step
    def start(self):
        print("first line", flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("LIVE_SLEEP", "2")))
        print("second line")
        self.uid = os.getuid()
        self.cwd = os.getcwd()
        self.next(self.end)

    @step
    def end(self):
        self.blob = "y" * (48 << 20)  # some memory, so the measured peak is visible
        del self.blob


class OomFlow(FlowSpec):
    @resources(memory=64)
    @step
    def start(self):
        print("allocating", flush=True)
        hog = "x" * (400 << 20)
        self.size = len(hog)
        self.next(self.end)

    @step
    def end(self):
        pass


class CancelFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.wait, foreach="items")

    @step
    def wait(self):
        print("waiting", self.input, flush=True)
        time.sleep(120)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class MixedFlow(FlowSpec):
    @step
    def start(self):
        self.where = ["start"]
        self.next(self.boxed)

    @step
    def boxed(self):
        self.where = self.where + ["boxed"]
        self.in_container = in_task_container()
        self.next(self.end)

    @step
    def end(self):
        self.here_in_container = in_task_container()


class StubbornFlow(FlowSpec):
    """Ignores its own @timeout alarm: only the runtime's deadline (a container kill) can stop it."""

    @timeout(seconds=2)
    @step
    def start(self):
        import signal

        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        print("ignoring the alarm", flush=True)
        time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass
