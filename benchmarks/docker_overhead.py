"""Per-task overhead of the docker backend vs a bare `docker run --rm IMAGE python3 -c pass`.

Side by side on the same engine, in one script, interleaved round by round so that both sides see
the same load (the machine may be shared):

- backend: a flow with a foreach of N trivial tasks (start -> N x each -> join -> end) minus a
  start -> end flow, both run with max_workers=1 on the docker backend; the difference divided by
  the N+1 extra tasks is the cost of one task (container create/attach/start/wait/inspect/remove,
  the task entrypoint's Python start-up, reading its inputs and writing its result).
- bare: `docker run --rm --network=host IMAGE python3 -c pass` through the CLI (the same network mode
  the backend uses by default), and the same through the SDK, N+1 times per round (median).

    python benchmarks/docker_overhead.py [-n 20] [--repeat 3] [--image workbench-base:bookworm]

Target: backend per task <= 1.3 x bare CLI (exit code 1 above it). Needs scripts/start-docker.sh and
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

FLOWS = """
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
"""


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


def bare_ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def measure(root: Path, n: int, repeat: int, bare_cli, bare_sdk) -> dict[str, list[float]]:
    """Interleaved, so that every sample of the backend has bare samples taken under the same load
    (the machine may be shared): per round, the two flows, then n+1 bare runs of each kind."""
    run_flow(root, "PairFlow", "docker")  # warm-up: page cache, bytecode cache, first overlay mounts
    bare_cli()
    bare_sdk()
    out: dict[str, list[float]] = {"docker": [], "cli": [], "sdk": [], "ratio": []}
    for _ in range(repeat):
        fan = run_flow(root, "FanFlow", "docker")
        pair = run_flow(root, "PairFlow", "docker")
        per_task = (fan - pair) / (n + 1) * 1000.0
        cli = statistics.median(bare_ms(bare_cli) for _ in range(n + 1))
        sdk = statistics.median(bare_ms(bare_sdk) for _ in range(n + 1))
        out["docker"].append(per_task)
        out["cli"].append(cli)
        out["sdk"].append(sdk)
        out["ratio"].append(per_task / cli)
    return out


def local_ms(root: Path, n: int) -> float:
    run_flow(root, "PairFlow", "local")
    fan = run_flow(root, "FanFlow", "local")
    pair = run_flow(root, "PairFlow", "local")
    return (fan - pair) / (n + 1) * 1000.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="foreach width (default 20)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default 3, median)")
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

    def cli_run():
        subprocess.run(
            ["docker", "run", "--rm", "--network=host", args.image, "python3", "-c", "pass"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def sdk_run():
        client.containers.run(args.image, ["python3", "-c", "pass"], remove=True, network_mode="host")

    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        root = Path(tmp)
        (root / "flows").mkdir()
        (root / "flows" / "bench.py").write_text(FLOWS.replace("range(N)", f"range({args.n})"))
        (root / "workbench.toml").write_text(
            f'[project]\nname = "bench"\n\n[docker]\nimage = "{args.image}"\nnetwork = "host"\n'
        )
        cwd = os.getcwd()
        os.chdir(root)
        try:
            m = measure(root, args.n, args.repeat, cli_run, sdk_run)
            local = local_ms(root, args.n)
        finally:
            os.chdir(cwd)

    def fmt(xs):
        return ", ".join(f"{x:.0f}" for x in xs)

    med = {k: statistics.median(v) for k, v in m.items()}
    info = client.info()
    print(
        f"engine {info.get('ServerVersion')}, cgroup v{info.get('CgroupVersion')}, {info.get('Driver')}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; image {args.image}; foreach of {args.n}, "
        f"max_workers=1; {args.repeat} interleaved rounds, medians"
    )
    print(f"{'':<46} {'ms/task':>8}   per round")
    print(f"{'docker backend (foreach - start->end) per task':<46} {med['docker']:>8.0f}   {fmt(m['docker'])}")
    print(f"{'bare docker run --rm ... python3 -c pass (CLI)':<46} {med['cli']:>8.0f}   {fmt(m['cli'])}")
    print(f"{'bare containers.run(remove=True) (SDK)':<46} {med['sdk']:>8.0f}   {fmt(m['sdk'])}")
    print(f"{'local backend, same flows (for scale)':<46} {local:>8.0f}")
    ratio = med["ratio"]
    print(
        f"ratio docker backend / bare CLI = {ratio:.2f}x (per round: "
        f"{', '.join(f'{r:.2f}' for r in m['ratio'])}; target <= 1.3x); "
        f"vs bare SDK = {med['docker'] / med['sdk']:.2f}x"
    )
    client.close()
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
