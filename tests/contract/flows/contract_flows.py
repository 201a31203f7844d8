"""The contract suite's flows. ``start`` and ``end`` run locally; every other step runs on the backend under test
(tests/contract/conftest.py writes one workbench.toml step table per such step). Keep them tiny: on Batch
(moto) and Kubernetes (emulator) each of those steps is a container start."""

import os
import subprocess
import sys
import time

from workbench import FlowSpec, Parameter, current, pypi, resources, retry, step, timeout


class HelloFlow(FlowSpec):
    """Success: an input from a local step, a result for the next one, and numbered lines a second apart, which
    must arrive in order and (where the backend streams) before the step ends."""

    @step
    def start(self):
        self.x = 21
        self.next(self.work)

    @step
    def work(self):
        print("hello from work", self.x, flush=True)
        for i in range(3):
            print(f"tick {i}", flush=True)
            if i < 2:
                time.sleep(1.0)
        self.y = self.x * 2
        self.next(self.end)

    @step
    def end(self):
        self.z = self.y + 1


class FailFlow(FlowSpec):
    """Two ways to fail at once: the process exits with code 7, the step raises."""

    @step
    def start(self):
        self.next(self.crash, self.raises)

    @step
    def crash(self):
        print("about to exit with 7", flush=True)
        sys.stdout.flush()
        os._exit(7)
        self.next(self.join)  # never reached; the graph needs it

    @step
    def raises(self):
        raise ValueError("bad value 42")
        self.next(self.join)  # never reached; the graph needs it

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class SleepyFlow(FlowSpec):
    """@timeout: the step sleeps far past its two seconds."""

    @step
    def start(self):
        self.next(self.work)

    @timeout(seconds=2)
    @step
    def work(self):
        print("sleeping", flush=True)
        time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass


class OomFlow(FlowSpec):
    """64 MiB of memory, 400 MiB asked for."""

    @step
    def start(self):
        self.next(self.work)

    @resources(memory=64)
    @step
    def work(self):
        print("allocating", flush=True)
        hog = "x" * (400 << 20)
        self.size = len(hog)
        self.next(self.end)

    @step
    def end(self):
        pass


class CancelFlow(FlowSpec):
    """Two tasks that would sleep for two minutes, each with a child process named after the run (so the local
    backend's leftovers can be found), each saying its pid."""

    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.wait, foreach="items")

    @step
    def wait(self):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", f"contract-{current.run_id}"])
        print(f"waiting {self.input} pid={os.getpid()} child={child.pid}", flush=True)
        child.wait()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class ShapeFlow(FlowSpec):
    """A parameter, a foreach and a join: every artifact's sha256 must be the same whichever backend ran it."""

    alpha = Parameter("alpha", default=2)

    @step
    def start(self):
        self.base = {"values": [1.5, 2.5], "alpha": self.alpha}
        self.items = ["a", "b"]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.word = self.input.upper() * self.alpha
        self.score = sum(self.base["values"]) * len(self.word)
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.words = [i.word for i in inputs]
        self.total = sum(i.score for i in inputs)
        self.merge_artifacts(inputs, include=["base"])
        self.next(self.end)

    @step
    def end(self):
        self.summary = {"words": self.words, "total": self.total}


class RetryFlow(FlowSpec):
    """The first attempt fails, the second succeeds: two attempts, so two on_exit calls and no more."""

    @step
    def start(self):
        self.next(self.work)

    @retry(times=1, minutes_between_retries=0)
    @step
    def work(self):
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails on purpose")
        self.attempt_seen = current.retry_count
        self.next(self.end)

    @step
    def end(self):
        pass


class PypiFlow(FlowSpec):
    """A declared environment: ``work`` imports exactly the tabulate its @pypi asks for (workbench's own
    interpreter has none), wherever it runs."""

    @step
    def start(self):
        self.next(self.work)

    @pypi(packages={"tabulate": "0.9.0"})
    @step
    def work(self):
        import tabulate

        self.version = tabulate.__version__
        print("tabulate", tabulate.__version__, flush=True)
        self.next(self.end)

    @step
    def end(self):
        pass


class NumpyInputFlow(FlowSpec):
    """An input pickled with the host's numpy, read where no environment is declared (the base image has
    another numpy): the step gets the host's version, or is refused in one line before it starts."""

    @step
    def start(self):
        import numpy

        self.made_with = numpy.__version__
        self.data = numpy.arange(12.0).reshape(3, 4)
        self.next(self.work)

    @step
    def work(self):
        import numpy

        self.read_with = numpy.__version__
        self.total = float(self.data.sum())
        self.next(self.end)

    @step
    def end(self):
        pass
