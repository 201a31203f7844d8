"""A training-style flow: prepare data, train two models side by side, pick the better one. The file
asks for no GPU, so it runs anywhere; `workbench promote train_big --to batch --gpu 1` moves the heavy
step to a GPU in the cloud without touching this file."""

import random

from workbench import FlowSpec, Parameter, catch, resources, retry, step, timeout


class TrainFlow(FlowSpec):
    """Fit a line to noisy data two ways and keep the better fit."""

    samples = Parameter("samples", default=2000, type=int, help="how many points to generate")
    seed = Parameter("seed", default=7, type=int)

    @step
    def start(self):
        rng = random.Random(self.seed)
        self.xs = [rng.uniform(-1, 1) for _ in range(self.samples)]
        self.ys = [3.0 * x + 0.5 + rng.gauss(0, 0.1) for x in self.xs]
        self.next(self.train_small, self.train_big)

    @retry(times=1, minutes_between_retries=0)
    @step
    def train_small(self):
        self.model = fit(self.xs[: len(self.xs) // 10])
        self.next(self.choose)

    @resources(cpu=2, memory="8G")
    @timeout(minutes=30)
    @catch(var="train_error")
    @step
    def train_big(self):
        self.model = fit(self.xs)
        self.next(self.choose)

    @step
    def choose(self, inputs):
        fits = [inp.model for inp in inputs]
        self.best = min(fits, key=lambda m: m["mse"])
        self.merge_artifacts(inputs, include=["xs", "ys"])
        self.next(self.end)

    @step
    def end(self):
        print(f"best fit: y = {self.best['slope']:.3f} x + {self.best['intercept']:.3f} "
              f"(mse {self.best['mse']:.5f}, {self.best['n']} points)")


def fit(xs):
    """Least squares on the flow's data (the ys are recomputed to keep the example short)."""
    rng = random.Random(7)
    pts = [(x, 3.0 * x + 0.5 + rng.gauss(0, 0.1)) for x in xs]
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    intercept = my - slope * mx
    mse = sum((y - (slope * x + intercept)) ** 2 for x, y in pts) / n
    return {"slope": slope, "intercept": intercept, "mse": mse, "n": n}


if __name__ == "__main__":
    TrainFlow()
