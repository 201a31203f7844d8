"""Baseline: per-run cost of a bare container on the local Docker engine.

Measures `docker run --rm IMAGE python3 -c pass` through the CLI (subprocess)
and through the docker SDK (containers.run(..., remove=True, network_mode="none")),
after one warm-up run each. The docker backend's per-task overhead is compared
against these numbers.

    python benchmarks/docker_baseline.py [-n 10] [--image workbench-base:bookworm]

Needs: scripts/start-docker.sh and scripts/build-base-image.sh.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

DEFAULT_IMAGE = os.environ.get("WORKBENCH_BASE_IMAGE") or "workbench-base:bookworm"
CMD = ["python3", "-c", "pass"]


def time_runs(fn, n: int) -> list[float]:
    fn()  # warm-up (page cache, first overlay mount, ...)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10, help="measured runs per method (default 10)")
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    args = ap.parse_args(argv)

    import docker

    client = docker.from_env()
    try:
        client.ping()
        client.images.get(args.image)
    except Exception as exc:
        print(f"docker_baseline: engine or image {args.image!r} unavailable: {exc}", file=sys.stderr)
        print("run scripts/start-docker.sh and scripts/build-base-image.sh first", file=sys.stderr)
        return 2

    def cli_run():
        subprocess.run(
            ["docker", "run", "--rm", "--network=none", args.image, *CMD],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def sdk_run():
        client.containers.run(args.image, CMD, remove=True, network_mode="none")

    results = {
        "docker run --rm (CLI)": time_runs(cli_run, args.n),
        "containers.run (SDK)": time_runs(sdk_run, args.n),
    }

    info = client.info()
    print(
        f"image {args.image}; engine {info.get('ServerVersion')}, cgroup v{info.get('CgroupVersion')}, "
        f"{info.get('Driver')}, {os.cpu_count()} CPUs; n={args.n} after 1 warm-up"
    )
    print(f"{'method':<24} {'median ms':>10} {'mean ms':>10} {'min ms':>10} {'max ms':>10}")
    for name, s in results.items():
        print(f"{name:<24} {statistics.median(s):>10.1f} {statistics.fmean(s):>10.1f} {min(s):>10.1f} {max(s):>10.1f}")
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
