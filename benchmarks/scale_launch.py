"""API calls and wall time to launch and finish a wide foreach of no-op tasks, with real containers:
AWS Batch on moto's server (array jobs) and Kubernetes on the API emulator (Indexed Jobs); and the per-task
overhead of an Indexed-Job task over a bare container start.

- launch: a flow start -> N x each -> join -> end, ``each`` on the remote backend, start/join/end local. The API
  calls are the backend's own count by kind (``backend.calls``); "submit" is one per SubmitJob / Job create.
  Wall time: the whole run, and the ``each`` span (first task started -> last task reported).
- Batch on moto: moto starts every child of an array at once (AWS runs what the compute environment fits); on a
  2-core machine 200 simultaneous container starts time out in the Docker engine. ``--batch-slots K`` gives moto a
  compute environment of K container slots (a semaphore around its job threads; the jobs wait in SUBMITTED).
- overhead: the same flow with ``[kubernetes] parallelism = 1`` (the indexes run one after another, no
  contention between them), ``each`` span / N, against ``docker run --rm --network host IMAGE python3 -c pass``
  (median of N) on the same engine, measured right after.

    python benchmarks/scale_launch.py [--backends batch,kubernetes] [-n 200] [--batch-slots 16] [--overhead 10]
                                      [--task-seconds S]   # each task sleeps S: tasks that run a while, as most do

Needs the Docker engine (scripts/start-docker.sh) and the base image (scripts/build-base-image.sh). On this
2-core machine, quiet: ``--backends batch -n 1000`` took 847 s (1000/1000, 1 SubmitJob, 4,028 DescribeJobs) and
``--backends kubernetes -n 1000 --parallelism 16 --cpu 1`` 1,921 s under load; ``-n 200`` gives the call
counts, which do not depend on the machine (one submit per array of up to 10,000), in about 3 minutes.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._flows import wide_foreach_flow  # noqa: E402  (the repository is on sys.path from here)

FLOW = wide_foreach_flow("LaunchFlow", "LAUNCH_N")

CREDS = 'env = { AWS_ACCESS_KEY_ID = "testing", AWS_SECRET_ACCESS_KEY = "testing", EACH_SECONDS = "%s" }'
TASK_SECONDS = [0.0]  # --task-seconds: how long each task sleeps (0: no-op tasks)


def _project(tmp: Path, toml: str) -> Path:
    (tmp / "flows").mkdir(parents=True, exist_ok=True)
    (tmp / "flows" / "launch.py").write_text(FLOW)
    (tmp / ".gitignore").write_text(".workbench/\nkubeconfig\n")
    (tmp / "workbench.toml").write_text(toml)
    return tmp


def _each_span(events) -> float:
    """Seconds from the first ``each`` task handed to the backend to the last one reported (event arrival)."""
    times = [
        t
        for t, e in events
        if getattr(e, "step", None) == "each" and type(e).__name__ in ("TaskStarted", "TaskFinished")
    ]
    return max(times) - min(times) if times else float("nan")


def _bound_moto_batch(slots: int) -> None:
    """At most ``slots`` of moto's Batch jobs run their container at once (the others wait, as on a compute
    environment that is full). Array parents are never run by moto (only their children), so no slot deadlocks."""
    import moto.batch.models as batch_models

    if slots <= 0 or getattr(batch_models.Job.run, "bounded", False):
        return
    gate = threading.BoundedSemaphore(slots)
    original = batch_models.Job.run

    def run(self) -> None:
        with gate:
            original(self)

    run.bounded = True  # type: ignore[attr-defined]
    batch_models.Job.run = run  # type: ignore[method-assign]


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def launch_batch(n: int, image: str, slots: int = 16) -> dict:
    from moto.server import ThreadedMotoServer

    from tests.support.moto_server import DUMMY_ENV, AwsTestbed, mend_moto_batch, reset

    mend_moto_batch()  # else moto gives some children a sibling's index (see there)
    os.environ["MOTO_DOCKER_NETWORK_MODE"] = "host"
    os.environ.update(DUMMY_ENV)
    _bound_moto_batch(slots)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        WORKBENCH_S3_ENDPOINT_URL=endpoint,
        WORKBENCH_S3_REGION="us-east-1",
        WORKBENCH_BATCH_POLL="0.5",
        WORKBENCH_BATCH_LOG_SETTLE="0.5",
    )
    try:
        bed = AwsTestbed(endpoint)
        bucket, queue = bed.bucket(), bed.batch_queue("scale-launch")
        with tempfile.TemporaryDirectory(prefix="scale-batch-") as tmp:
            project = _project(
                Path(tmp),
                textwrap.dedent(f'''
                [datastore]
                root = "s3://{bucket}/wb"
                endpoint_url = "{endpoint}"
                region = "us-east-1"

                [batch]
                job_queue = "{queue}"
                image = "{image}"
                endpoint_url = "{endpoint}"

                [flows.LaunchFlow.steps.each]
                backend = "batch"
                cpu = 1
                memory = "256M"
                {CREDS % TASK_SECONDS[0]}
            '''),
            )
            result = _timed(project, n)
            _report("batch", n, result)  # before moto stops: a failing cleanup must not lose it
            return result
    finally:
        try:
            reset(endpoint)
        finally:
            server.stop()


def launch_kubernetes(n: int, image: str, parallelism: int, cpu: float = 0.25) -> dict:
    import docker
    from moto.server import ThreadedMotoServer

    from tests.k8s_emulator.server import KubeEmulator
    from tests.support.moto_server import DUMMY_ENV, AwsTestbed

    os.environ.update(DUMMY_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        WORKBENCH_S3_ENDPOINT_URL=endpoint,
        WORKBENCH_S3_REGION="us-east-1",
        WORKBENCH_K8S_POLL="0.5",
    )
    os.environ.pop("KUBECONFIG", None)
    emu = KubeEmulator(
        node_capacity={"cpu": "64", "memory": "64Gi", "nvidia.com/gpu": "0"},
        docker_client=docker.from_env(),
        grace_period_cap=2.0,
        backoff_seconds=0.5,
    ).start()
    listed = _count_listed_pods(emu.store)
    try:
        bucket = AwsTestbed(endpoint).bucket()
        with tempfile.TemporaryDirectory(prefix="scale-k8s-") as tmp:
            emu.write_kubeconfig(Path(tmp) / "kubeconfig")
            project = _project(
                Path(tmp),
                textwrap.dedent(f'''
                [datastore]
                root = "s3://{bucket}/wb"
                endpoint_url = "{endpoint}"
                region = "us-east-1"

                [kubernetes]
                kubeconfig = "kubeconfig"
                image = "{image}"
                parallelism = {parallelism}

                [flows.LaunchFlow.steps.each]
                backend = "kubernetes"
                cpu = {cpu}
                memory = "256M"
                {CREDS % TASK_SECONDS[0]}
            '''),
            )
            result = {**_timed(project, n), "pods_listed": listed[0]}
            _report("kubernetes", n, result)  # before the emulator stops: a failing cleanup must not lose it
            return result
    finally:
        emu.stop()
        server.stop()


def _count_listed_pods(store) -> list[int]:
    """Count the pod objects the emulator's API server returns to list calls (what a client transfers and
    deserializes; the emulator's own controllers read the store directly and are not counted)."""
    from tests.k8s_emulator import server as emulator_server

    counter, api = [0], threading.local()
    handler_list, store_list = emulator_server._Handler.list, store.list

    def handler(self, resource, ns, q):
        api.on = True
        try:
            return handler_list(self, resource, ns, q)
        finally:
            api.on = False

    def list_(resource, *args, **kwargs):
        items, rv = store_list(resource, *args, **kwargs)
        if resource == "pods" and getattr(api, "on", False):
            counter[0] += len(items)
        return items, rv

    emulator_server._Handler.list = handler
    store.list = list_
    return counter


def _timed(project: Path, n: int) -> dict:
    """Run with a sink that stamps each event on arrival (for the ``each`` span)."""
    from workbench.config import load_config
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    os.environ["LAUNCH_N"] = str(n)
    os.chdir(project)
    stamped = []
    rt = Runtime(
        load_graph(str(project / "flows" / "launch.py")),
        load_config(project),
        sink=lambda e: stamped.append((time.time(), e)),
    )
    t0 = time.time()
    result = rt.run()
    wall = time.time() - t0
    backend = next(b for b in rt._backends.values() if b.remote)
    finished = [e for _, e in stamped if type(e).__name__ == "TaskFinished" and e.step == "each"]
    not_ok = [e for e in finished if e.status != "succeeded"]
    return {
        "status": result.status,
        "message": result.message,
        "wall": wall,
        "span": _each_span(stamped),
        "calls": dict(backend.calls),
        "tasks": len(finished),
        "succeeded": len(finished) - len(not_ok),
        "not_ok": collections.Counter(
            f"{e.status}: {e.reason or (e.traceback.strip().splitlines() or ['?'])[-1]}"[:300] for e in not_ok
        ),
        "peak_rss_mib": _peak_rss_mib(),  # this process: the runtime, and moto or the emulator with it
        "failed_logs": {e.pathspec: _log_tail(rt, e) for e in not_ok[:3]},
    }


def _log_tail(rt, e, lines: int = 8) -> list[str]:
    """The last lines of a failed task's log, as the datastore holds it (why it failed, in its own words)."""
    _, run_id, step, task_id = e.pathspec.split("/")
    try:
        ds = rt._stage or rt.ds
        record = ds.read_attempt(run_id, step, task_id, e.attempt)
        keys = ds.storage.list(ds.task_key(run_id, step, task_id))
        return [f"(its keys now: {sorted(keys)}; its attempt record now: {record and record.status})"] + [
            f"{ts} {stream} {text}" for ts, stream, text in rt.ds.read_log(run_id, step, task_id, e.attempt)
        ][-lines:]
    except Exception as exc:  # noqa: BLE001 - a benchmark's diagnostics: say why there is no log
        return [f"(log unreadable: {exc})"]


def bare_container(image: str, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.time()
        subprocess.run(
            ["docker", "run", "--rm", "--network", "host", image, "python3", "-c", "pass"],
            check=True,
            capture_output=True,
        )
        times.append(time.time() - t0)
    return statistics.median(times)


def _report(name: str, n: int, r: dict) -> None:
    calls = r["calls"]
    submits = calls.get("submit", 0)
    print(
        f"{name}: {n}-wide foreach: {r['status']} ({r['succeeded']}/{r['tasks']} tasks), run {r['wall']:.1f}s, "
        f"each span {r['span']:.1f}s, peak RSS {r['peak_rss_mib']:.0f} MB (runtime + server in one process)"
    )
    print(f"  API calls: {', '.join(f'{k} {v}' for k, v in sorted(calls.items()))}")
    print(f"  submit calls per task: {submits / n:.4f} (target <= 0.01; one per task before arrays)")
    if r.get("pods_listed") is not None:
        print(f"  pod objects returned by list calls: {r['pods_listed']} ({r['pods_listed'] / n:.1f} per task)")
    if r["status"] != "succeeded":
        print(f"  message: {r['message']}")
    for why, count in r["not_ok"].most_common(5):
        print(f"  {count} task(s) {why}")
    for pathspec, tail in r.get("failed_logs", {}).items():
        print(f"  log of {pathspec}: " + ("".join(f"\n    {line}" for line in tail) or "(empty)"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="batch,kubernetes")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--parallelism", type=int, default=32, help="[kubernetes] parallelism for the launch run")
    parser.add_argument(
        "--cpu", type=float, default=0.25, help="each pod's CPU request and limit on the emulator (launch run)"
    )
    parser.add_argument("--batch-slots", type=int, default=16, help="containers moto's Batch runs at once (0: all)")
    parser.add_argument("--overhead", type=int, default=0, help="N for the per-task overhead run (0: skip)")
    parser.add_argument(
        "--task-seconds", type=float, default=0.0, help="each task of the launch run sleeps this long (default: no-op)"
    )
    parser.add_argument("--image", default=os.environ.get("WORKBENCH_BASE_IMAGE") or "workbench-base:bookworm")
    args = parser.parse_args(argv)
    TASK_SECONDS[0] = args.task_seconds
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    ok = True
    here = os.getcwd()
    for name in [b for b in args.backends.split(",") if b]:
        if args.n:
            r = (
                launch_batch(args.n, args.image, args.batch_slots)
                if name == "batch"
                else launch_kubernetes(args.n, args.image, args.parallelism, args.cpu)
            )
            os.chdir(here)
            ok = ok and r["status"] == "succeeded" and r["calls"].get("submit", 0) / args.n <= 0.01
    if args.overhead:
        r = launch_kubernetes(args.overhead, args.image, 1)
        os.chdir(here)
        bare = bare_container(args.image, args.overhead)
        per_task = r["span"] / args.overhead
        print(
            f"Indexed-Job task on the emulator (parallelism 1, {args.overhead} tasks): {per_task:.2f}s per task; "
            f"bare `docker run --rm python3 -c pass`: {bare:.2f}s (median); overhead {per_task - bare:+.2f}s "
            f"per task, {per_task / bare:.1f}x"
        )
        ok = ok and r["status"] == "succeeded"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
