"""Per-task overhead of a warm declared environment on the local backend (issue 13: under 20 ms).

Two flows that differ only by ``@pypi(packages={"tabulate": "0.9.0"})`` on their foreach step run N tasks
each through the public Runtime, with the environment already prepared (a warm run). The per-task cost is
the slope of run time over N (runs at a small and a large N), so what a run pays once (starting the
environment's own warm worker, checking the cache) is reported apart, as the difference of intercepts.

    python benchmarks/env_task_overhead.py [--small 10] [--large 80] [--repeat 3] [--workers 2]

Prints one line per measure; exits 1 when the per-task overhead is 20 ms or more.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FLOW = """
from workbench import FlowSpec, Parameter, pypi, step


class {name}(FlowSpec):
    n = Parameter("n", default=10, type=int)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    {decorator}
    @step
    def work(self):
        self.value = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""
TARGET_MS = 20.0


def _project(root: Path) -> None:
    (root / "flows").mkdir(parents=True)
    (root / "workbench.toml").write_text('[project]\nname = "env-overhead"\nbackend = "local"\n')
    (root / "flows" / "plain.py").write_text(FLOW.format(name="PlainFlow", decorator=""))
    (root / "flows" / "declared.py").write_text(
        FLOW.format(name="DeclaredFlow", decorator='@pypi(packages={"tabulate": "0.9.0"})')
    )


def _run(root: Path, flow_file: str, name: str, n: int, workers: int) -> float:
    from workbench.config import load_config
    from workbench.graph import load_graph
    from workbench.parameters import resolve_parameters
    from workbench.runtime import Runtime

    graph = load_graph(root / "flows" / flow_file, name)
    t0 = time.perf_counter()
    result = Runtime(
        graph, load_config(root), params=resolve_parameters(graph.parameters, {"n": n}), max_workers=workers
    ).run()
    took = time.perf_counter() - t0
    if result.status != "succeeded":
        raise SystemExit(f"{name} n={n}: {result.status} {result.message}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=80)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-env-overhead-") as tmp:
        root = Path(tmp)
        _project(root)
        import os

        os.chdir(root)
        _run(root, "declared.py", "DeclaredFlow", 2, args.workers)  # prepare (resolve/install) once: warm after
        _run(root, "plain.py", "PlainFlow", 2, args.workers)
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeat):  # interleaved, so machine load hits both alike
            for flow_file, name in (("plain.py", "PlainFlow"), ("declared.py", "DeclaredFlow")):
                for n in (args.small, args.large):
                    times.setdefault((name, n), []).append(_run(root, flow_file, name, n, args.workers))
        med = {k: statistics.median(v) for k, v in times.items()}
        span = args.large - args.small
        slope = {
            name: (med[(name, args.large)] - med[(name, args.small)]) / span * 1000
            for name in ("PlainFlow", "DeclaredFlow")
        }
        intercept = {
            name: med[(name, args.small)] * 1000 - slope[name] * args.small for name in ("PlainFlow", "DeclaredFlow")
        }
        for (name, n), value in sorted(med.items()):
            print(f"{name:13s} n={n:4d}: median run {value * 1000:8.1f} ms over {args.repeat} runs")
        per_task = slope["DeclaredFlow"] - slope["PlainFlow"]
        print(
            f"per task: project default {slope['PlainFlow']:.1f} ms, declared environment "
            f"{slope['DeclaredFlow']:.1f} ms -> overhead {per_task:+.1f} ms per task (target < {TARGET_MS:.0f} ms)"
        )
        print(
            f"per run: {intercept['DeclaredFlow'] - intercept['PlainFlow']:+.1f} ms (the environment's own warm "
            f"worker, the cache check)"
        )
        return 0 if per_task < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
