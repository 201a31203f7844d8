"""Runtime memory and API calls through a wide foreach, with a simulated in-process remote backend.

The foreach body runs on ``SimulatedArrayBackend``: the real remote-job base (submitter that coalesces the
runtime's burst into arrays of up to 10,000, poller, report-once, memory released per reported job) over an
"API" that is a dict: an array call "starts" its jobs, each "ends" ``--task-seconds`` later and writes the
attempt record the task entrypoint would have written. start, join and end run on the local backend, so the
runtime does everything it does for a real run (specs, records, logs, the join over N inputs).

Peak RSS is the runtime process's high-water mark (VmHWM) over the whole run, measured in a fresh process
per width so the widths do not share a heap; flat means the 10,000-wide run peaks near the 1,000-wide one.

    python benchmarks/scale_memory.py [--widths 1000,10000] [--task-seconds 0.5]
    python benchmarks/scale_memory.py --widths 1000,6000 --tracemalloc   # where each task's bytes go

With ``--tracemalloc`` every task stays in flight until the whole foreach is (then all end at once), and the
source lines whose live bytes grow between the first and the last width are listed per task (the RSS figures
then include tracemalloc's own overhead).

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
from array import array
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
    from workbench.backends.remote import JobArray, RemoteBackend, RemoteJob
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
            # when the "API" says each job ends: a lone job by itself, an array's jobs in one float array per array
            # (the API's state is not the runtime's memory: kept as small as an API client's would be)
            self.ends: dict[RemoteJob, float] = {}
            self.array_ends: dict[JobArray, array] = {}
            self.array_left: dict[JobArray, int] = {}  # jobs of the array not ended yet (dropped at 0)

        def upload_package(self, ctx) -> str:
            return "sim://package"

        def check(self, settings) -> None:
            pass

        def submit_job(self, job) -> None:
            self.ends[job] = time.time() + self._duration()

        def submit_array(self, jobs) -> None:
            group = JobArray(list(jobs), name=f"sim-{len(jobs)}")
            for i, job in enumerate(jobs):
                job.array, job.index = group, i
            self.array_ends[group] = array("d", (time.time() + self._duration() for _ in jobs))
            self.array_left[group] = len(jobs)

        def _ends_at(self, job) -> float:
            if job.array is not None and job.array in self.array_ends:
                return self.array_ends[job.array][job.index]
            return self.ends.get(job, float("inf"))

        def _end_at(self, job, when: float) -> None:
            if job.array is not None and job.array in self.array_ends:
                self.array_ends[job.array][job.index] = when
            else:
                self.ends[job] = when

        def _ended(self, job) -> None:
            """Forget an ended job, as the API's client would (an array once its last job has ended)."""
            group = job.array
            if group is not None and group in self.array_left:
                self.array_ends[group][job.index] = float("inf")
                self.array_left[group] -= 1
                if not self.array_left[group]:
                    del self.array_ends[group], self.array_left[group]
            else:
                self.ends.pop(job, None)

        def end_all(self) -> None:
            """Every job ends now (the tracemalloc probe ends the run once it has looked)."""
            for job in self.ends:
                self.ends[job] = 0
            for ends in self.array_ends.values():
                ends[:] = array("d", bytes(8 * len(ends)))

        def _duration(self) -> float:
            return task_seconds * (1 + jitter * (2 * random.random() - 1))

        def poll(self, active) -> bool:
            self.calls["poll"] += 1
            now = time.time()
            changed = False
            ds = self._ctx.datastore
            for job in active:
                if self._ends_at(job) <= now:
                    s = job.spec
                    ds.write_attempt(
                        s.run_id,
                        s.step,
                        s.task_id,
                        AttemptRecord(status=TaskStatus.SUCCEEDED, attempt=s.attempt, pathspec=s.pathspec),
                    )
                    self._ended(job)
                    self.conclude(job, TaskExit("succeeded", 0))
                    changed = True
            return changed

        def terminate(self, job) -> None:
            self._end_at(job, 0)

        def _requested_exit(self, job):
            return TaskExit("cancelled", None, job.requested or "cancelled")

    return SimulatedArrayBackend


def run_one(width: int, task_seconds: float, jitter: float = 0.0, in_flight: int = 0, trace: bool = False) -> dict:
    """One run in this process; prints a JSON line with the figures. ``trace``: tracemalloc's live bytes by
    source line once the whole foreach is in flight (then every task ends), against a snapshot before the run."""
    import gc
    import os
    import tracemalloc

    from workbench import backends as registry
    from workbench import runtime as runtime_module
    from workbench.config import load_config
    from workbench.graph import load_graph

    base_cls = make_backend_class(1e9 if trace else task_seconds, jitter)
    snaps = {}

    class sim_cls(base_cls):  # type: ignore[misc, valid-type]
        def poll(self, active) -> bool:
            if trace and "peak" not in snaps and len(active) >= width:
                gc.collect()
                snaps["peak"] = tracemalloc.take_snapshot()
                self.end_all()
            return super().poll(active)

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
        if trace:
            tracemalloc.start()
            gc.collect()
            snaps["base"] = tracemalloc.take_snapshot()
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
        sites = {}
        if trace and "peak" in snaps:
            for st in snaps["peak"].compare_to(snaps["base"], "lineno"):
                frame = st.traceback[0]
                sites[f"{frame.filename.replace(str(ROOT) + '/', '')}:{frame.lineno}"] = st.size_diff
        return {
            "trace": sites,
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


def print_trace(first: dict, last: dict, top: int = 20) -> None:
    """The source lines whose live bytes grow with the tasks in flight: (last - first) / (width difference)."""
    import linecache

    extra = last["width"] - first["width"]
    sites = set(first["trace"]) | set(last["trace"])
    slopes = sorted(((last["trace"].get(k, 0) - first["trace"].get(k, 0)) / extra, k) for k in sites)[::-1]
    print(f"tracemalloc, {first['width']} -> {last['width']} in flight: {sum(b for b, _ in slopes):.0f} B/task in all")
    for per_task, site in slopes[:top]:
        name, _, line = site.rpartition(":")
        path = name if name.startswith(("/", "<")) else str(ROOT / name)
        print(f"{per_task:7.0f} B/task  {site:45} {linecache.getline(path, int(line)).strip()[:60]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="1000,10000")
    parser.add_argument("--task-seconds", type=float, default=0.5)
    parser.add_argument("--jitter", type=float, default=0.0, help="task durations uniform in seconds * (1 +- jitter)")
    parser.add_argument("--in-flight", type=int, default=0, help="most tasks in flight (default: the whole foreach)")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="where the bytes per task in flight go (source lines), first vs last width",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: one width, JSON out
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.task_seconds, args.jitter, args.in_flight, args.tracemalloc)))
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
                *(["--tracemalloc"] if args.tracemalloc else []),
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
    if args.tracemalloc and len(rows) > 1:
        print_trace(rows[0], rows[-1])
    ok = all(
        r["status"] == "succeeded" and r["peak_rss_mib"] < 150 and r["submit_calls_per_task"] <= 0.01 for r in rows
    )
    print("target (peak RSS < 150 MB, <= 0.01 submit calls per task):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
