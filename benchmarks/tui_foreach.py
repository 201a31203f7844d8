"""A 10,000-task foreach step in the Tasks tab: how long until its summary is drawn, how long until its
merged log is, and how fast a key is answered meanwhile and afterwards; then the same step followed live
while another process writes it.

The records are what the runtime leaves for such a step (task.json, one log line per task, and the step's
summary.json), written straight to a local datastore; `--no-summary` leaves the summary out, as a run
written before summaries existed (the TUI then folds the task records in a worker: the old path).
Key latency is from the key reaching the app to its effect (a tab switch), reported as median, p95 and
max per phase (while the merged log is read, afterwards, while another process writes a run). Target:
every key within 100 ms. The machine is shared: the load average is printed at the start and the end, and
`nice -n -20` (as root) gives figures close to a quiet machine's.
Python's full collections are counted too (pauses of the UI thread, per phase): the app is made as
`workbench tui` makes it, with its first screen's objects frozen out of them; `--no-freeze` leaves them in.
Usage: python benchmarks/tui_foreach.py [--tasks 10000] [--no-summary] [--no-live] [--no-freeze]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RUN_ID = "1000000000000009"
NO_FREEZE = "--no-freeze" in sys.argv  # the app as `workbench tui` makes it freezes its first screen's objects


def write_step(root: Path, tasks: int, summary: bool, run_id: str = RUN_ID, live: bool = False) -> None:
    """The step's records as the runtime writes them; ``live``: one task at a time with the run marked
    running and the summary rewritten at the runtime's rate (as the driver's StepSummaryWriter does)."""
    from workbench import events as ev
    from workbench.config import load_config
    from workbench.datastore import FlowDatastore
    from workbench.datastore.records import RunRecord, RunStatus, TaskRecord
    from workbench.liveness import stamp
    from workbench.runtime_datastore import StepSummaryWriter
    from workbench.scheduler_messages import Emit, WriteTask

    ds = FlowDatastore(load_config(root).datastore_url, "FanoutFlow")
    run = RunRecord(flow="FanoutFlow", run_id=run_id, status=RunStatus.RUNNING if live else RunStatus.FAILED)
    run.started_at = time.time()
    stamp(run)
    ds.write_run(run)
    writer = StepSummaryWriter(ds, "FanoutFlow", run_id)
    for i in range(1, tasks + 1):
        tid = str(i)
        pathspec = f"FanoutFlow/{run_id}/square/{tid}"
        started = time.time() if live else 0.0
        writer.take(Emit(ev.TaskStarted(pathspec, "square", 0, "local", ts=started)))
        record = TaskRecord.from_dict(
            {
                "flow": "FanoutFlow",
                "run_id": run_id,
                "step": "square",
                "task_id": tid,
                "pathspec": pathspec,
                "status": "failed" if i == 77 else "succeeded",
                "started_at": started,
                "finished_at": started + (i % 997) / 100,
                "foreach_stack": [{"step": "start", "index": i - 1}],
            }
        )
        ds.write_task(record)
        ds.append_log(ds.log_key(run_id, "square", tid, 0), [(float(i), "stdout", f"task {i}")])
        writer.take(WriteTask(record))
        if live:
            writer.flush()
            if i % 500 == 0:
                run.heartbeat_at = time.time()
                ds.write_run(run)
    if summary:
        writer.close()
    if live:
        run.status, run.finished_at = RunStatus.FAILED, time.time()
        ds.write_run(run)


def make_project(tasks: int, summary: bool = True) -> Path:
    root = Path(tempfile.mkdtemp(prefix="wb-tui-foreach-"))
    os.environ["XDG_CACHE_HOME"] = str(root / "cache")  # the TUI's cached merged logs go with the project
    shutil.copytree(REPO / "flows", root / "flows")
    (root / "workbench.toml").write_text('[project]\nname = "bench"\nflows = "flows"\n')
    write_step(root, tasks, summary)
    return root


GC_PAUSES: list[float] = []  # the UI thread's full (generation 2) collections, seconds each
_gc_started = [0.0]


def _on_gc(phase: str, info: dict) -> None:
    if info.get("generation") != 2 or threading.current_thread() is not threading.main_thread():
        return
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        GC_PAUSES.append(time.perf_counter() - _gc_started[0])


CPU: list[float] = []  # the UI thread's CPU seconds per key (on a shared machine, wall time is mostly waiting)
CPU_OF: dict[int, list[float]] = {}  # id(list of latencies) -> the CPU seconds of the same keys


def with_cpu(latencies: list[float], since: int) -> list[float]:
    CPU_OF[id(latencies)] = CPU[since : since + len(latencies)]
    return latencies


async def key_latency(app, key: str, done) -> float:
    from textual import events

    started, cpu = time.perf_counter(), time.thread_time()
    app.post_message(events.Key(key, key))
    while not done():
        await asyncio.sleep(0.001)
    CPU.append(time.thread_time() - cpu)
    return time.perf_counter() - started


async def keys_while(app, busy) -> list[float]:
    tabs = app.query_one("#tabs")
    out = []
    while True:
        for key, tab in (("3", "tab-runs"), ("6", "tab-tasks")):
            out.append(await key_latency(app, key, lambda tab=tab: tabs.active == tab))
        if not busy():
            return out


async def measure(root: Path) -> dict:
    from workbench.config import load_config
    from workbench.tui.app import create_app

    app = create_app(load_config(root), watch=False, datastore_poll=None, freeze_gc=not NO_FREEZE)
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.panes_ready:
            await pilot.pause(0.01)
        app.select_flow(next(p for p, g in app.graphs.items() if g.name == "FanoutFlow"))
        started = time.perf_counter()
        app.select_step("square")
        pane = app.query_one("#tasks")
        busy_summary = await keys_while(app, lambda: pane.summary is None or pane.summary.step != "square")
        summary_at = time.perf_counter() - started
        busy_log = await keys_while(app, lambda: not pane.log_complete)
        log_at = time.perf_counter() - started
        idle_from = len(CPU)
        idle = []
        for _ in range(10):
            idle += await keys_while(app, lambda: False)
    busy = with_cpu(busy_summary + busy_log, 0)
    return {"summary": summary_at, "log": log_at, "busy": busy, "idle": with_cpu(idle, idle_from)}


async def follow_live(root: Path, tasks: int) -> dict:
    """The TUI open on the step while another process (as `workbench run` would) writes its tasks."""
    from workbench.config import load_config
    from workbench.tui.app import create_app

    run_id = "1000000000000010"
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(REPO / 'benchmarks')!r}); "
        f"from pathlib import Path; import tui_foreach as b; "
        f"b.write_step(Path({str(root)!r}), {tasks}, True, run_id={run_id!r}, live=True)"
    )
    app = create_app(load_config(root), watch=False, datastore_poll=0.5, freeze_gc=not NO_FREEZE)
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.panes_ready:
            await pilot.pause(0.01)
        app.select_flow(next(p for p, g in app.graphs.items() if g.name == "FanoutFlow"))
        app.select_step("square")
        writer = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)})
        started = time.perf_counter()
        pane = app.query_one("#tasks")
        seen: list[int] = []

        def running() -> bool:
            if (
                pane.summary is not None
                and pane.summary.run_id == run_id
                and (not seen or seen[-1] != pane.summary.total)
            ):
                seen.append(pane.summary.total)
            return writer.poll() is None

        since = len(CPU)
        latencies = with_cpu(await keys_while(app, running), since)
        written = time.perf_counter() - started
        deadline = time.monotonic() + 60
        while not (pane.summary is not None and pane.summary.run_id == run_id and pane.summary.final):
            assert time.monotonic() < deadline, "the finished run's summary never showed"
            await pilot.pause(0.05)
        final = pane.summary.total
    return {"latencies": latencies, "written": written, "updates": len(seen), "final": final}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--no-summary", action="store_true", help="a run written before summaries existed")
    parser.add_argument("--no-live", action="store_true", help="skip following a run live")
    parser.add_argument("--no-freeze", action="store_true", help="leave the first screen's objects to the collector")
    args = parser.parse_args()

    def ms(xs: list[float]) -> str:
        ranked = sorted(xs)
        p95, p99 = (ranked[min(len(xs) - 1, round(q * (len(xs) - 1)))] for q in (0.95, 0.99))
        over = sum(1 for x in xs if x > 0.1)
        cpu = CPU_OF[id(xs)]
        return (
            f"median {statistics.median(xs) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {max(xs) * 1000:.0f} ms over {len(xs)} keys, {over} over 100 ms "
            f"(UI thread CPU a key: median {statistics.median(cpu) * 1000:.0f} ms, "
            f"max {max(cpu) * 1000:.0f} ms)"
        )

    root = make_project(args.tasks, summary=not args.no_summary)
    gc.callbacks.append(_on_gc)
    try:
        print(f"load average {os.getloadavg()[0]:.2f} at the start")
        got = asyncio.run(measure(root))
        how = "folded from the task records (no summary.json)" if args.no_summary else "from summary.json"
        print(
            f"{args.tasks}-task step, {how}: counts, histogram and first rows drawn {got['summary']:.2f} s after "
            f"selecting it; merged log of every task on screen {got['log']:.1f} s after selecting it"
        )
        print(f"key while loading: {ms(got['busy'])}; afterwards: {ms(got['idle'])}")
        if not args.no_live:
            live = asyncio.run(follow_live(root, args.tasks))
            print(
                f"followed live while another process wrote {live['final']} tasks in {live['written']:.1f} s: "
                f"{live['updates']} summary updates drawn; key: {ms(live['latencies'])}"
            )
        if GC_PAUSES:
            pauses = sorted(GC_PAUSES)
            print(
                f"full collections on the UI thread ({'not ' if args.no_freeze else ''}frozen first screen): "
                f"{len(pauses)}, median {statistics.median(pauses) * 1000:.0f} ms, max {pauses[-1] * 1000:.0f} ms"
            )
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
