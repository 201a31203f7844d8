"""Runtime memory and API calls through a wide foreach, with a simulated in-process remote backend.

The foreach body runs on ``SimulatedArrayBackend``: the real remote-job base (submitter that coalesces the
runtime's burst into arrays of up to 10,000, poller, report-once, memory released per reported job) over an
"API" that is a dict: an array call "starts" its jobs, each "ends" ``--task-seconds`` later and writes the
attempt record the task entrypoint would have written. start, join and end run on the local backend, so the
runtime does everything it does for a real run (specs, records, logs, the join over N inputs).

Peak RSS is the runtime process's high-water mark (VmHWM) over the whole run, measured in a fresh process
per width so the widths do not share a heap; flat means the 10,000-wide run peaks near the 1,000-wide one.

    python benchmarks/scale_memory.py [--widths 1000,10000] [--task-seconds 0.5]

Target: peak RSS < 150 MB at 10,000 wide; submit calls per task <= 0.01 (exit code 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._flows import wide_foreach_flow  # noqa: E402  (the repository is on sys.path from here)

FLOW = wide_foreach_flow("WideFlow", "WIDE_N")


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _vm_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_backend_class(task_seconds: float, jitter: float = 0.0):
    from workbench.backends.base import TaskExit
    from workbench.backends.remote import JobArray, RemoteBackend
    from workbench.datastore.records import AttemptRecord, TaskStatus

    class SimulatedArrayBackend(RemoteBackend):
        """A remote backend whose API is in this process; runs nothing, ends each job after ``task_seconds``."""

        name = "batch"  # it stands in for the batch backend of the steps that ask for it
        remote = False  # no S3 here: the runtime hands it the local datastore
        poll_env = "SCALE_SIM_POLL"
        poll_default = 0.2
        log_drain = 1.0
        array_max = submit_batch = 10_000
        coalesce_quiet, coalesce_linger = 0.5, 10.0
        submit_rate = submit_rate_max = 50.0

        def __init__(self, config):
            super().__init__(config)
            self.ends: dict[int, float] = {}  # id(job) -> when the "API" says it ended

        def upload_package(self, ctx) -> str:
            return "sim://package"

        def check(self, settings) -> None:
            pass

        def submit_job(self, job) -> None:
            self.ends[id(job)] = time.time() + self._duration()

        def submit_array(self, jobs) -> None:
            array = JobArray(list(jobs), name=f"sim-{len(jobs)}")
            for i, job in enumerate(jobs):
                job.array, job.index = array, i
                self.ends[id(job)] = time.time() + self._duration()

        def _duration(self) -> float:
            return task_seconds * (1 + jitter * (2 * random.random() - 1))

        def poll(self, active) -> bool:
            self.calls["poll"] += 1
            now = time.time()
            changed = False
            ds = self._ctx.datastore
            for job in active:
                if self.ends.get(id(job), now + 1) <= now:
                    s = job.spec
                    ds.write_attempt(
                        s.run_id,
                        s.step,
                        s.task_id,
                        AttemptRecord(status=TaskStatus.SUCCEEDED, attempt=s.attempt, pathspec=s.pathspec),
                    )
                    del self.ends[id(job)]
                    self.conclude(job, TaskExit("succeeded", 0))
                    changed = True
            return changed

        def terminate(self, job) -> None:
            self.ends[id(job)] = 0

        def _requested_exit(self, job):
            return TaskExit("cancelled", None, job.requested or "cancelled")

    return SimulatedArrayBackend


def run_one(width: int, task_seconds: float, jitter: float = 0.0, in_flight: int = 0) -> dict:
    """One run in this process; prints a JSON line with the figures."""
    import os

    from workbench import backends as registry
    from workbench import runtime as runtime_module
    from workbench.config import load_config
    from workbench.graph import load_graph

    sim_cls = make_backend_class(task_seconds, jitter)
    made = {}
    original = runtime_module.create_backend

    def create_backend(name, config):
        if name == "batch":
            made["sim"] = sim_cls(config)
            return made["sim"]
        return original(name, config)

    runtime_module.create_backend = create_backend
    del registry
    with tempfile.TemporaryDirectory(prefix="scale-mem-") as tmp:
        root = Path(tmp)
        (root / "flows").mkdir()
        (root / "flows" / "wide.py").write_text(FLOW)
        (root / "workbench.toml").write_text(
            f'[datastore]\nroot = "{root / "ds"}"\n\n[flows.WideFlow.steps.each]\nbackend = "batch"\n'
        )
        os.environ["WIDE_N"] = str(width)
        os.environ.pop("WORKBENCH_DATASTORE", None)
        os.environ.pop("WORKBENCH_CONFIG", None)
        os.chdir(root)
        config = load_config(root)
        graph = load_graph(str(root / "flows" / "wide.py"))
        baseline = _vm_rss_mib()
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples.append(_vm_rss_mib())
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.time()
        # the simulated backend is not "remote" (no S3 here), so max_workers bounds its tasks in flight: all of the
        # foreach at once by default, or --in-flight to see what a cap such as the runtime's 256 remote tasks does
        rt = runtime_module.Runtime(graph, config, max_workers=in_flight or width + 8)
        result = rt.run()
        took = time.time() - t0
        stop.set()
        sampler.join(2)
        sim = made["sim"]
        return {
            "width": width,
            "status": result.status,
            "seconds": round(took, 1),
            "rss_before_run_mib": round(baseline, 1),
            "peak_rss_mib": round(_vm_hwm_mib(), 1),
            "rss_at_end_mib": round(_vm_rss_mib(), 1),
            "submit_calls": sim.calls["submit"],
            "poll_rounds": sim.calls["poll"],
            "submit_calls_per_task": sim.calls["submit"] / width,
            "jobs_left_in_backend": len(sim._jobs),
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="1000,10000")
    parser.add_argument("--task-seconds", type=float, default=0.5)
    parser.add_argument("--jitter", type=float, default=0.0, help="task durations uniform in seconds * (1 +- jitter)")
    parser.add_argument("--in-flight", type=int, default=0, help="most tasks in flight (default: the whole foreach)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: one width, JSON out
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.task_seconds, args.jitter, args.in_flight)))
        return 0
    rows = []
    for width in [int(w) for w in args.widths.split(",")]:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                str(width),
                "--task-seconds",
                str(args.task_seconds),
                "--jitter",
                str(args.jitter),
                "--in-flight",
                str(args.in_flight),
            ],
            capture_output=True,
            text=True,
            cwd=str(ROOT),
            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
        )
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if out.returncode or not lines:
            print(out.stdout[-2000:], out.stderr[-4000:], file=sys.stderr)
            return 2
        rows.append(json.loads(lines[-1]))
    print(
        f"{'width':>7} {'status':>10} {'wall s':>7} {'RSS before':>10} {'peak RSS':>9} {'KB/task':>8} {'submits':>8} "
        f"{'per task':>9} {'polls':>6}"
    )
    first = rows[0]
    for r in rows:
        # the slope against the narrowest run: what each more task costs at the peak (all of them in flight)
        extra = r["width"] - first["width"]
        slope = f"{(r['peak_rss_mib'] - first['peak_rss_mib']) * 1024 / extra:8.2f}" if extra else f"{'-':>8}"
        print(
            f"{r['width']:>7} {r['status']:>10} {r['seconds']:>7} {r['rss_before_run_mib']:>8} MB "
            f"{r['peak_rss_mib']:>6} MB {slope} {r['submit_calls']:>8} {r['submit_calls_per_task']:>9.4f} "
            f"{r['poll_rounds']:>6}"
        )
    ok = all(
        r["status"] == "succeeded" and r["peak_rss_mib"] < 150 and r["submit_calls_per_task"] <= 0.01 for r in rows
    )
    print("target (peak RSS < 150 MB, <= 0.01 submit calls per task):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
