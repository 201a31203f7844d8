"""A foreach fan-out with a join: square each number in parallel, then add the squares up."""

from workbench import FlowSpec, Parameter, step


class FanoutFlow(FlowSpec):
    """Square numbers in parallel and sum them."""

    count = Parameter("count", default=8, type=int, help="how many numbers to square")

    @step
    def start(self):
        self.numbers = list(range(1, self.count + 1))
        self.next(self.square, foreach="numbers")

    @step
    def square(self):
        self.value = self.input * self.input
        print(f"{self.input}^2 = {self.value} (task {self.index})")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [inp.value for inp in inputs]
        self.total = sum(self.squares)
        self.merge_artifacts(inputs, include=["numbers"])
        self.next(self.end)

    @step
    def end(self):
        print(f"sum of squares of {self.numbers[0]}..{self.numbers[-1]} = {self.total}")


if __name__ == "__main__":
    FanoutFlow()
