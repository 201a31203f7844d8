import os
import threading
import time

from workbench import FlowSpec, Parameter, catch, environment, retry, step, timeout


class BehaviourFlow(FlowSpec):
    """Each step exercises one runtime behaviour; `mode` picks the failing one."""

    mode = Parameter("mode", default="ok")
    marker = Parameter("marker", default="")

    @environment(vars={"WB_GREETING": "hi"})
    @step
    def start(self):
        self.greeting = os.environ["WB_GREETING"]
        self.items = list(range(4))
        self.next(self.work, foreach="items")

    @retry(times=2, minutes_between_retries=0)
    @step
    def work(self):
        if self.mode == "flaky" and self.input == 1 and not os.path.exists(f"{self.marker}.{self.input}"):
            open(f"{self.marker}.{self.input}", "w").close()
            raise RuntimeError("flaky failure, first attempt")
        if self.mode == "fail" and self.input == 2:
            raise ValueError("item 2 is bad")
        if self.mode == "resume" and self.input == 2 and not os.path.exists(self.marker):
            raise ValueError("item 2 fails until the marker exists")
        if self.mode == "unpicklable" and self.input == 0:
            self.lock = threading.Lock()
        self.square = self.input**2
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.squares = [i.square for i in inputs]
        self.greeting = inputs[0].greeting
        self.next(self.risky)

    @catch(var="problem")
    @step
    def risky(self):
        if self.mode in ("catch", "ok"):
            raise KeyError("caught, not fatal")
        self.next(self.slow)

    @timeout(seconds=1)
    @step
    def slow(self):
        if self.mode == "timeout":
            time.sleep(30)
        if self.mode == "hang":
            print("hanging", flush=True)
            time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        print("squares", self.squares)
