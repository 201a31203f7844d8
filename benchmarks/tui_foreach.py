"""A 10,000-task foreach step in the Tasks tab: how long until its summary is drawn, and how fast a key
is answered while the records are read (in workers) and afterwards.

The records are what the runtime leaves for such a step (task.json + one log line per task), written
straight to a local datastore. Key latency is from the key reaching the app to its effect (a tab switch).
Target: a key within 100 ms.   Usage: python benchmarks/tui_foreach.py [--tasks 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_project(tasks: int) -> Path:
    from workbench.config import load_config
    from workbench.datastore import FlowDatastore
    from workbench.datastore.records import RunRecord, TaskRecord

    root = Path(tempfile.mkdtemp(prefix="wb-tui-foreach-"))
    shutil.copytree(REPO / "flows", root / "flows")
    (root / "workbench.toml").write_text('[project]\nname = "bench"\nflows = "flows"\n')
    ds = FlowDatastore(load_config(root).datastore_url, "FanoutFlow")
    run_id = "1000000000000009"
    ds.write_run(RunRecord.from_dict({"flow": "FanoutFlow", "run_id": run_id, "status": "failed", "started_at": 0.0}))
    for i in range(1, tasks + 1):
        tid = str(i)
        ds.write_task(
            TaskRecord.from_dict(
                {
                    "run_id": run_id,
                    "step": "square",
                    "task_id": tid,
                    "status": "failed" if i == 77 else "succeeded",
                    "started_at": 0.0,
                    "finished_at": i / 1000,
                    "foreach_stack": [{"step": "start", "index": i - 1}],
                }
            )
        )
        ds.append_log(ds.log_key(run_id, "square", tid, 0), [(float(i), "stdout", f"task {i}")])
    return root


async def key_latency(app, key: str, done) -> float:
    from textual import events

    started = time.perf_counter()
    app.post_message(events.Key(key, key))
    while not done():
        await asyncio.sleep(0.001)
    return time.perf_counter() - started


async def measure(root: Path) -> tuple[float, list[float], list[float]]:
    from workbench.config import load_config
    from workbench.tui.app import create_app

    app = create_app(load_config(root), watch=False, datastore_poll=None)
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.panes_ready:
            await pilot.pause(0.01)
        app.select_flow(next(p for p, g in app.graphs.items() if g.name == "FanoutFlow"))
        started = time.perf_counter()
        app.select_step("square")
        tabs, pane = app.query_one("#tabs"), app.query_one("#tasks")
        busy = []
        while pane.summary is None or pane.summary.step != "square":
            for key, tab in (("3", "tab-runs"), ("6", "tab-tasks")):
                busy.append(await key_latency(app, key, lambda tab=tab: tabs.active == tab))
        loaded = time.perf_counter() - started
        idle = [
            await key_latency(app, k, lambda t=t: tabs.active == t)
            for _ in range(10)
            for k, t in (("3", "tab-runs"), ("6", "tab-tasks"))
        ]
    return loaded, busy, idle


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    root = make_project(args.tasks)
    try:
        loaded, busy, idle = asyncio.run(measure(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ms = lambda xs: f"median {statistics.median(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"  # noqa: E731
    print(
        f"{args.tasks}-task step: summary, histogram, 200 rows and merged log drawn {loaded:.1f} s after selecting it"
    )
    print(f"key while loading: {ms(busy)} over {len(busy)} keys; afterwards: {ms(idle)} over {len(idle)} keys")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
