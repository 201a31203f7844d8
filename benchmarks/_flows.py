"""Flow texts shared by the benchmarks. Each is written into a throwaway project's flows/ folder (a benchmark
never imports it), so one wide foreach serves every benchmark that launches one."""

from __future__ import annotations


def wide_foreach_flow(name: str, width_env: str) -> str:
    """``start -> N x each -> join -> end`` of no-op tasks (each sleeps ``EACH_SECONDS`` if set): the flow class
    ``name``, N read at run time from the environment variable ``width_env`` (so one project runs every width)."""
    return f"""\
import os
import time
from workbench import FlowSpec, step

class {name}(FlowSpec):
    @step
    def start(self):
        self.items = list(range(int(os.environ["{width_env}"])))
        self.next(self.each, foreach="items")

    @step
    def each(self):
        time.sleep(float(os.environ.get("EACH_SECONDS", "0")))  # 0: a no-op task
        self.next(self.join)

    @step
    def join(self, inputs):
        self.n = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""
