"""The smallest flow: three steps in a line, one parameter, artifacts passed along."""

from workbench import FlowSpec, Parameter, step


class HelloFlow(FlowSpec):
    """Say hello, count the letters, finish."""

    name = Parameter("name", default="world", help="who to greet")

    @step
    def start(self):
        self.greeting = f"hello, {self.name}"
        print(self.greeting)
        self.next(self.count)

    @step
    def count(self):
        self.letters = sum(c.isalpha() for c in self.greeting)
        print(f"{self.letters} letters")
        self.next(self.end)

    @step
    def end(self):
        print(f"done: {self.greeting!r} has {self.letters} letters")


if __name__ == "__main__":
    HelloFlow()
