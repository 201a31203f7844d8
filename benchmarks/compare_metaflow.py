"""Run the same flows under workbench and under Metaflow (local datastore) on this machine; print ratios.

    pip install -e '.[bench]'
    python benchmarks/compare_metaflow.py            # foreach of 1,000 included
    python benchmarks/compare_metaflow.py --quick    # skips the 1,000-task foreach

Each flow file is written once and differs between the two tools only in its import line. Targets
(issue 3): per-task overhead <= 1/10 of Metaflow's; the 256 MiB artifact flow >= 5x faster and its
write+read throughput >= half of numpy.save/numpy.load; start->end in under half of Metaflow's time;
the runtime's memory flat through the 1,000-task foreach.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

FLOWS = {
    "start_end": """
        class StartEnd(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
    """,
    "chain10": "class Chain10(FlowSpec):\n"
    + "".join(
        f"    @step\n    def {name}(self):\n        self.x = {i}\n        self.next(self.{nxt})\n\n"
        for i, (name, nxt) in enumerate(
            zip(["start"] + [f"s{i}" for i in range(1, 9)], [f"s{i}" for i in range(1, 9)] + ["end"], strict=True)
        )
    )
    + "    @step\n    def end(self):\n        pass\n",
    "branch8": "class Branch8(FlowSpec):\n    @step\n    def start(self):\n        self.next("
    + ", ".join(f"self.b{i}" for i in range(8))
    + ")\n\n"
    + "".join(
        f"    @step\n    def b{i}(self):\n        self.v = {i}\n        self.next(self.join)\n\n" for i in range(8)
    )
    + "    @step\n    def join(self, inputs):\n        self.total = sum(i.v for i in inputs)\n        self.next(self.end)\n\n"
    + "    @step\n    def end(self):\n        pass\n",
    "foreach100": """
        class Foreach100(FlowSpec):
            @step
            def start(self):
                self.items = list(range(100))
                self.next(self.work, foreach="items")

            @step
            def work(self):
                self.v = self.input * 2
                self.next(self.join)

            @step
            def join(self, inputs):
                self.total = sum(i.v for i in inputs)
                self.next(self.end)

            @step
            def end(self):
                pass
    """,
    "array256": """
        import numpy as np

        class Array256(FlowSpec):
            @step
            def start(self):
                self.arr = np.ones(256 * 1024 * 1024 // 8, dtype=np.float64)
                self.next(self.total)

            @step
            def total(self):
                self.sum = float(self.arr.sum())
                self.next(self.end)

            @step
            def end(self):
                pass
    """,
}
FLOWS["foreach1000"] = FLOWS["foreach100"].replace("Foreach100", "Foreach1000").replace("range(100)", "range(1000)")
IMPORTS = {"workbench": "from workbench import FlowSpec, step\n", "metaflow": "from metaflow import FlowSpec, step\n"}


def write_flows(root: Path, tool: str) -> dict[str, Path]:
    (root / "flows").mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, body in FLOWS.items():
        path = root / "flows" / f"{name}.py"
        cls = re.search(r"class (\w+)\(FlowSpec\)", body).group(1)
        path.write_text(IMPORTS[tool] + textwrap.dedent(body) + f"\n\nif __name__ == '__main__':\n    {cls}()\n")
        paths[name] = path
    if tool == "workbench":
        (root / "workbench.toml").write_text('[project]\nname = "bench"\n')
    return paths


def command(tool: str, path: Path, workers: int) -> list[str]:
    if tool == "workbench":
        return [sys.executable, "-m", "workbench.cli", "run", str(path), "--max-workers", str(workers)]
    return [sys.executable, str(path), "--no-pylint", "run", "--max-workers", str(workers), "--max-num-splits", "1000"]


def timed_run(tool: str, root: Path, path: Path, workers: int, sample_rss: bool = False) -> tuple[float, list]:
    env = dict(
        os.environ,
        USER=os.environ.get("USER", "bench"),
        USERNAME="bench",
        METAFLOW_DEFAULT_DATASTORE="local",
        METAFLOW_DEFAULT_METADATA="local",
        METAFLOW_DATASTORE_SYSROOT_LOCAL=str(root),
    )
    samples: list[float] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        command(tool, path, workers), cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    if sample_rss:
        import psutil

        p = psutil.Process(proc.pid)

        def sample():
            while proc.poll() is None:
                try:
                    rss = p.memory_info().rss / 2**20
                    if rss:  # 0 once the process has exited
                        samples.append(rss)
                except psutil.Error:
                    break
                time.sleep(0.05)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
    _, err = proc.communicate()
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{tool} {path.name} failed:\n{err.decode()[-2000:]}")
    return took, samples


def throughput() -> tuple[float, float]:
    """Seconds for write+read of a 256 MiB array: workbench's datastore vs numpy.save/load, same disk."""
    import numpy as np

    from workbench.datastore import FlowDatastore

    arr = np.random.default_rng(0).random(256 * 1024 * 1024 // 8)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as d:
        best_np = best_wb = float("inf")
        for i in range(3):
            t = time.perf_counter()
            np.save(f"{d}/a{i}.npy", arr)
            back = np.load(f"{d}/a{i}.npy")
            best_np = min(best_np, time.perf_counter() - t)
            assert back.shape == arr.shape
            ds = FlowDatastore(f"{d}/wb{i}", "F")
            t = time.perf_counter()
            sha, _ = ds.save_artifact(arr)
            back = ds.load_artifact(sha)
            best_wb = min(best_wb, time.perf_counter() - t)
            assert back.shape == arr.shape and back[12345] == arr[12345]
    return best_wb, best_np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the 1,000-task foreach")
    ap.add_argument("--repeat", type=int, default=5, help="runs per flow but the 1,000-task foreach (median used)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    names = [n for n in FLOWS if not (args.quick and n == "foreach1000")]
    results: dict[str, dict[str, float]] = {n: {} for n in names}
    rss: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for tool in ("workbench", "metaflow"):
            root = Path(tmp) / tool
            paths = write_flows(root, tool)
            for name in names:
                reps = 1 if name == "foreach1000" else args.repeat
                times = []
                for _ in range(reps):
                    took, samples = timed_run(
                        tool,
                        root,
                        paths[name],
                        args.workers,
                        sample_rss=(tool == "workbench" and name == "foreach1000"),
                    )
                    times.append(took)
                    if samples:
                        rss = samples
                results[name][tool] = statistics.median(times)
                print(f"  {tool:<10} {name:<12} {results[name][tool]:8.2f}s", flush=True)
    print()
    print(f"{'flow':<12} {'workbench':>10} {'metaflow':>10} {'ratio':>8}")
    for name in names:
        wb, mf = results[name]["workbench"], results[name]["metaflow"]
        print(f"{name:<12} {wb:9.2f}s {mf:9.2f}s {mf / wb:7.1f}x")
    print()
    per_task = {t: (results["foreach100"][t] - results["start_end"][t]) / 100 for t in ("workbench", "metaflow")}
    print(
        f"per-task overhead (foreach100 - start_end)/100: workbench {per_task['workbench'] * 1000:.1f} ms, "
        f"metaflow {per_task['metaflow'] * 1000:.1f} ms -> workbench is {per_task['workbench'] / per_task['metaflow']:.3f} "
        f"of metaflow (target <= 0.1)"
    )
    se = results["start_end"]
    print(
        f"start->end: workbench {se['workbench']:.2f}s, metaflow {se['metaflow']:.2f}s -> "
        f"{se['workbench'] / se['metaflow']:.2f} of metaflow (target < 0.5)"
    )
    arr = results["array256"]
    print(f"256 MiB artifact flow: {arr['metaflow'] / arr['workbench']:.1f}x faster than metaflow (target >= 5x)")
    wb_io, np_io = throughput()
    print(
        f"256 MiB write+read: workbench datastore {wb_io:.3f}s, numpy.save+load {np_io:.3f}s -> workbench "
        f"throughput is {np_io / wb_io:.2f} of numpy's (target >= 0.5)"
    )
    if rss:
        tenth = rss[: max(1, len(rss) // 10)]
        print(
            f"runtime RSS through the 1,000-task foreach: first tenth max {max(tenth):.1f} MiB, overall max "
            f"{max(rss):.1f} MiB, last {rss[-1]:.1f} MiB ({len(rss)} samples)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
