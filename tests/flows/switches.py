"""Switches (Metaflow's split-switch): a switch around a split, a recursive switch (a loop) with a
failure on one pass for resume, and a recursive switch inside a foreach."""

import os

from workbench import FlowSpec, Parameter, step


class SwitchFlow(FlowSpec):
    mode = Parameter("mode", default="process")
    loops = Parameter("loops", default=4)
    fail_at = Parameter("fail_at", default=0)

    @step
    def start(self):
        self.count = 0
        self.next({"process": self.process_branch, "skip": self.skip_path}, condition="mode")

    @step
    def process_branch(self):
        self.next(self.p1, self.p2)

    @step
    def p1(self):
        self.side = "p1"
        self.next(self.process_join)

    @step
    def p2(self):
        self.side = "p2"
        self.kind = "a" if self.mode == "process" else "b"
        self.next({"a": self.p2a, "b": self.p2b}, condition="kind")

    @step
    def p2a(self):
        self.picked = "p2a"
        self.next(self.process_join)

    @step
    def p2b(self):
        self.picked = "p2b"
        self.next(self.process_join)

    @step
    def process_join(self, inputs):
        self.sides = [i.side for i in inputs]
        self.picked = inputs.p2a.picked
        self.merge_artifacts(inputs, exclude=["side"])
        self.next(self.loop)

    @step
    def skip_path(self):
        self.sides = []
        self.picked = None
        self.next(self.loop)

    @step
    def loop(self):
        self.count += 1
        if self.count == self.fail_at and not os.environ.get("SWITCH_NO_FAIL"):
            raise RuntimeError(f"failing on pass {self.count}")
        self.go = "again" if self.count < self.loops else "done"
        self.next({"again": self.loop, "done": self.items}, condition="go")

    @step
    def items(self):
        self.todo = [2, 3, 1]
        self.next(self.item, foreach="todo")

    @step
    def item(self):
        self.n = 0
        self.limit = self.input
        self.next(self.body)

    @step
    def body(self):
        self.n += 1
        self.more = self.n < self.limit
        self.next({True: self.body, False: self.item_done}, condition="more")

    @step
    def item_done(self):
        self.next(self.join_items)

    @step
    def join_items(self, inputs):
        self.passes = [i.n for i in inputs]
        self.merge_artifacts(inputs, include=["count", "sides", "picked"])
        self.next(self.end)

    @step
    def end(self):
        print("count", self.count, "sides", self.sides, "passes", self.passes)
