"""Per-task overhead of the docker backend vs a bare `docker run --rm IMAGE python3 -c pass`.

Side by side on the same engine, in one script:

- backend: a flow with a foreach of N trivial tasks (start -> N x each -> join -> end) minus a
  start -> end flow, both run with max_workers=1 on the docker backend; the difference divided by
  the N+1 extra tasks is the cost of one task (container create/attach/start/wait/inspect/remove,
  the task entrypoint's Python start-up, reading its inputs and writing its result).
- bare: `docker run --rm --network=host IMAGE python3 -c pass` through the CLI (the same network mode
  the backend uses by default), and the same through the SDK.

    python benchmarks/docker_overhead.py [-n 20] [--repeat 3] [--image workbench-base:bookworm]

Target: backend per task <= 1.3 x bare CLI. Needs scripts/start-docker.sh and
scripts/build-base-image.sh.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_IMAGE = os.environ.get("WORKBENCH_BASE_IMAGE") or "workbench-base:bookworm"

FLOWS = '''
from workbench import FlowSpec, step


class FanFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(N))
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.value = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class PairFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
'''


def run_flow(root: Path, cls: str, backend: str) -> float:
    from workbench.config import load_config
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    graph = load_graph(root / "flows" / "bench.py", cls)
    rt = Runtime(graph, load_config(root), backend=backend, max_workers=1)
    t0 = time.perf_counter()
    result = rt.run()
    elapsed = time.perf_counter() - t0
    if result.status != "succeeded":
        raise SystemExit(f"docker_overhead: {cls} on {backend} {result.status}: {result.message}")
    return elapsed


def per_task_ms(root: Path, backend: str, n: int, repeat: int) -> tuple[float, list[float]]:
    run_flow(root, "PairFlow", backend)  # warm-up
    samples = []
    for _ in range(repeat):
        fan = run_flow(root, "FanFlow", backend)
        pair = run_flow(root, "PairFlow", backend)
        samples.append((fan - pair) / (n + 1) * 1000.0)
    return statistics.median(samples), samples


def bare_ms(fn, n: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(samples), samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="foreach width (default 20)")
    ap.add_argument("--repeat", type=int, default=3, help="measured flow pairs (default 3, median)")
    ap.add_argument("--bare-runs", type=int, default=15, help="bare docker runs (default 15, median)")
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    args = ap.parse_args(argv)

    import docker

    client = docker.from_env()
    try:
        client.ping()
        client.images.get(args.image)
    except Exception as exc:  # noqa: BLE001
        print(f"docker_overhead: engine or image {args.image!r} unavailable: {exc}", file=sys.stderr)
        print("run scripts/start-docker.sh and scripts/build-base-image.sh first", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        root = Path(tmp)
        (root / "flows").mkdir()
        (root / "flows" / "bench.py").write_text(FLOWS.replace("range(N)", f"range({args.n})"))
        (root / "workbench.toml").write_text(
            f'[project]\nname = "bench"\n\n[docker]\nimage = "{args.image}"\nnetwork = "host"\n')
        cwd = os.getcwd()
        os.chdir(root)
        try:
            docker_ms, docker_samples = per_task_ms(root, "docker", args.n, args.repeat)
            local_ms, _ = per_task_ms(root, "local", args.n, args.repeat)
        finally:
            os.chdir(cwd)

    def cli_run():
        subprocess.run(["docker", "run", "--rm", "--network=host", args.image, "python3", "-c", "pass"],
                       check=True, stdout=subprocess.DEVNULL)

    def sdk_run():
        client.containers.run(args.image, ["python3", "-c", "pass"], remove=True, network_mode="host")

    cli_ms, _ = bare_ms(cli_run, args.bare_runs)
    sdk_ms, _ = bare_ms(sdk_run, args.bare_runs)

    info = client.info()
    print(f"engine {info.get('ServerVersion')}, cgroup v{info.get('CgroupVersion')}, {info.get('Driver')}, "
          f"{os.cpu_count()} CPUs; image {args.image}; foreach of {args.n}, max_workers=1, "
          f"median of {args.repeat}")
    print(f"{'':<44} {'ms/task':>8}")
    print(f"{'docker backend (foreach - start->end) / task':<44} {docker_ms:>8.0f}   "
          f"samples {', '.join(f'{s:.0f}' for s in docker_samples)}")
    print(f"{'local backend, same flows (for scale)':<44} {local_ms:>8.0f}")
    print(f"{'bare docker run --rm python3 -c pass (CLI)':<44} {cli_ms:>8.0f}")
    print(f"{'bare containers.run(remove=True) (SDK)':<44} {sdk_ms:>8.0f}")
    ratio = docker_ms / cli_ms
    print(f"ratio docker backend / bare CLI = {ratio:.2f}x (target <= 1.3x); "
          f"vs bare SDK = {docker_ms / sdk_ms:.2f}x")
    client.close()
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
