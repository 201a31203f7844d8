"""Branches, a foreach, joins and a parameter: every artifact must be the same on every backend."""

from workbench import FlowSpec, Parameter, step


class ParityFlow(FlowSpec):
    alpha = Parameter("alpha", default=2)
    name = Parameter("name", default="demo")

    @step
    def start(self):
        self.base = {"name": self.name, "values": [1.5, 2.5, 3.5]}
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "left"
        self.score = sum(self.base["values"]) * self.alpha
        self.next(self.fan)

    @step
    def right(self):
        self.side = "right"
        self.score = max(self.base["values"]) ** self.alpha
        self.next(self.fan)

    @step
    def fan(self, inputs):
        self.scores = sorted(i.score for i in inputs)
        self.merge_artifacts(inputs, exclude=["side", "score"])
        self.next(self.spread)

    @step
    def spread(self):
        self.items = [f"{self.name}-{i}" for i in range(4)]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.word = self.input.upper() * self.alpha
        self.length = len(self.word)
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.words = [i.word for i in inputs]
        self.total = sum(i.length for i in inputs)
        self.merge_artifacts(inputs, include=["scores", "base"])
        self.next(self.end)

    @step
    def end(self):
        self.summary = {"total": self.total, "words": self.words, "scores": self.scores}
        print("summary", self.summary)
