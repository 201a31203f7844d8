"""Profiling overhead on a CPU-bound step: `workbench run FLOW --step crunch` with and without --profile.

The step times its own work (time.perf_counter around the CPU-bound part, stored as self.seconds), so the
figure is the profiler's cost inside the step, not process start-up or the HTML report written after it.
Two workloads: "loops" (arithmetic in a few frames) and "calls" (a recursive function: a call event per
frame, the worst case for a profiler that hooks calls). Target: under 10%.
The in-process figures (best of N, no process start-up noise) also show pyinstrument's own Profiler.
Usage: python benchmarks/profile_overhead.py [--repeat 5] [--size 1.0] [--in-process-only]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FLOW = """from workbench import FlowSpec, Parameter, step
import time


def loops(n):
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class Crunch(FlowSpec):
    workload = Parameter("workload", default="loops")
    size = Parameter("size", default=1.0, type=float)

    @step
    def start(self):
        self.next(self.crunch)

    @step
    def crunch(self):
        t = time.perf_counter()
        if self.workload == "loops":
            loops(int(6_000_000 * self.size))
        else:
            fib(int(29 + (self.size > 1)))
        self.seconds = time.perf_counter() - t
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _wb(project: Path, *args: str) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "run", "flows/crunch.py", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
    )
    if p.returncode != 0:
        raise SystemExit(p.stdout + p.stderr)


def _step_seconds(project: Path) -> float:
    from workbench.client import Flow, namespace

    namespace(None, datastore=f"file://{project}/.workbench")
    return Flow("Crunch").latest_run["crunch"].task.data.seconds


def measure(workload: str, repeat: int, size: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "flows").mkdir()
        (project / "flows" / "crunch.py").write_text(FLOW)
        (project / "workbench.toml").write_text('[project]\nname = "bench"\n')
        _wb(project, "--workload", workload, "--size", str(size))
        plain, profiled = [], []
        for _ in range(repeat):  # interleaved, so drift in the machine's load hits both alike
            _wb(project, "--step", "crunch")
            plain.append(_step_seconds(project))
            _wb(project, "--step", "crunch", "--profile")
            profiled.append(_step_seconds(project))
        return statistics.median(plain), statistics.median(profiled)


def in_process(repeat: int) -> None:
    """The same two workloads in this process, interleaved, best of ``repeat``: no profiler, the task's
    CpuSampler, and pyinstrument's own Profiler (a hook on every call) for comparison."""
    import time

    from workbench.profiling import CpuSampler, _WallProfiler

    namespace_: dict = {}
    exec(FLOW.split("class Crunch")[0].replace("from workbench import FlowSpec, Parameter, step", ""), namespace_)
    work = {"loops": lambda: namespace_["loops"](6_000_000), "calls": lambda: namespace_["fib"](29)}
    for name, fn in work.items():
        best = {"none": 1e9, "cpu-sampler": 1e9, "pyinstrument": 1e9}
        for _ in range(repeat):
            for kind, make in (("none", None), ("cpu-sampler", CpuSampler), ("pyinstrument", _WallProfiler)):
                prof = make() if make else None
                t = time.perf_counter()
                if prof:
                    prof.start()
                fn()
                if prof:
                    prof.stop()
                best[kind] = min(best[kind], time.perf_counter() - t)
        base = best["none"]
        print(
            f"in-process {name:6s} none {base:.3f}s  cpu-sampler {best['cpu-sampler']:.3f}s "
            f"({100 * (best['cpu-sampler'] / base - 1):+.1f}%)  pyinstrument Profiler {best['pyinstrument']:.3f}s "
            f"({100 * (best['pyinstrument'] / base - 1):+.1f}%)  (best of {repeat})"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=float, default=1.0)
    ap.add_argument("--in-process-only", action="store_true")
    args = ap.parse_args()
    in_process(args.repeat)
    if args.in_process_only:
        return
    for workload in ("loops", "calls"):
        plain, prof = measure(workload, args.repeat, args.size)
        print(
            f"{workload:6s} plain {plain:.3f}s  profiled {prof:.3f}s  overhead {100 * (prof / plain - 1):+.1f}%"
            f"  (median of {args.repeat})"
        )


if __name__ == "__main__":
    main()
