"""Time from starting the terminal workbench to its first full screen, with 50 flows in the directory
and 1,000 past runs of the first one in the datastore (run and task records, as the runtime leaves them).

Three figures:
  headless  create_app + App.run_test(): until the flows list holds 50 flows and the DAG is drawn
  terminal  the real `workbench tui` under tmux: until capture-pane shows "Flows (50)" and a DAG box,
            once with the workbench's bytecode cached (as an installed package has it: a temporary
            PYTHONPYCACHEPREFIX, filled by an untimed first launch) and once with the environment as it
            is (with PYTHONDONTWRITEBYTECODE=1, as on the project's machines, every workbench module is
            compiled from source at each launch)
The load average is printed before and after: on a shared machine the figures scale with it.
Target: under 1 s.   Usage: python benchmarks/tui_startup.py [--flows 50] [--runs 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FLOW = """from workbench import FlowSpec, Parameter, resources, step


class Generated{n}Flow(FlowSpec):
    size = Parameter("size", default={n})

    @step
    def start(self):
        self.items = list(range(self.size))
        self.next(self.left, self.right)

    @resources(cpu=2, memory="8G")
    @step
    def left(self):
        self.a = sum(self.items)
        self.next(self.join)

    @step
    def right(self):
        self.b = len(self.items)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = inputs.left.a + inputs.right.b
        self.next(self.end)

    @step
    def end(self):
        print(self.total)
"""


def make_project(count: int, runs: int = 0) -> Path:
    root = Path(tempfile.mkdtemp(prefix="wb-tui-bench-"))
    (root / "flows").mkdir()
    (root / "workbench.toml").write_text('[project]\nname = "bench"\nflows = "flows"\n')
    for n in range(count):
        (root / "flows" / f"flow_{n:02d}.py").write_text(FLOW.format(n=n))
    if runs:
        seed_runs(root, "Generated0Flow", runs)
    return root


def seed_runs(root: Path, flow: str, runs: int) -> None:
    """Past runs of one flow: a run record and one task record per step, with a log line each."""
    from workbench.config import load_config
    from workbench.datastore import FlowDatastore
    from workbench.datastore.records import RunRecord, TaskRecord

    ds = FlowDatastore(load_config(root).datastore_url, flow)
    for r in range(runs):
        run_id = str(1_700_000_000_000_000 + r)
        started = 1_700_000_000.0 + r * 60
        ds.write_run(
            RunRecord.from_dict(
                {
                    "flow": flow,
                    "run_id": run_id,
                    "status": "succeeded",
                    "started_at": started,
                    "finished_at": started + 5,
                    "params": {"size": 0},
                }
            )
        )
        for t, step in enumerate(("start", "left", "right", "join", "end"), start=1):
            ds.write_task(
                TaskRecord.from_dict(
                    {
                        "flow": flow,
                        "run_id": run_id,
                        "step": step,
                        "task_id": str(t),
                        "pathspec": f"{flow}/{run_id}/{step}/{t}",
                        "status": "succeeded",
                        "attempt": 0,
                        "started_at": started,
                        "finished_at": started + 1,
                        "usage": {"peak_memory_mib": 40.0, "cpu_seconds": 0.2},
                    }
                )
            )
            ds.append_log(ds.log_key(run_id, step, str(t), 0), [(started, "stdout", f"{step} done")])


async def headless_once(root: Path, count: int) -> float:
    from workbench.config import load_config
    from workbench.tui.app import create_app

    started = time.perf_counter()
    app = create_app(load_config(root), watch=True)
    async with app.run_test(size=(100, 30)) as pilot:
        while not (len(app.graphs) == count and app.query_one("#dag").picture.boxes):
            await pilot.pause(0.005)
        await pilot.pause(0)  # one more refresh: the screen is composed
        elapsed = time.perf_counter() - started
    return elapsed


SOCKET = f"wbbench-{os.getpid()}"


def tmux(*args: str, **kwargs):
    return subprocess.run(["tmux", "-L", SOCKET, *args], **kwargs)


def terminal_once(root: Path, count: int, pycache: Optional[Path] = None) -> float:
    session = f"wbbench-{uuid.uuid4().hex[:8]}"
    cache = f"-u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX={shlex.quote(str(pycache))} " if pycache else ""
    cmd = (
        f"cd {shlex.quote(str(root))} && env {cache}PYTHONPATH={shlex.quote(str(REPO))} "
        f"{shlex.quote(sys.executable)} -m workbench.cli tui"
    )
    started = time.perf_counter()
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", cmd, check=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            screen = tmux("capture-pane", "-p", "-t", session, capture_output=True, text=True).stdout
            if f"Flows ({count})" in screen and "┌" in screen:
                return time.perf_counter() - started
            time.sleep(0.01)
        raise SystemExit("the first screen did not appear within 30 s")
    finally:
        tmux("send-keys", "-t", session, "q")
        time.sleep(0.3)
        tmux("kill-session", "-t", session, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = make_project(args.flows, args.runs)
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    try:
        headless = [asyncio.run(headless_once(root, args.flows)) for _ in range(args.repeat)]
        print(
            f"headless first full screen, {args.flows} flows, {args.runs} past runs: median {statistics.median(headless) * 1000:.0f} ms, "
            f"max {max(headless) * 1000:.0f} ms over {args.repeat} runs (in-process, imports warm after the first)"
        )
        if shutil.which("tmux"):
            tmux("new-session", "-d", "-s", "keepalive", "sleep 600", check=True)  # one server throughout
            pycache = Path(tempfile.mkdtemp(prefix="wb-tui-pycache-"))
            terminal_once(root, args.flows, pycache)  # untimed: fills the bytecode cache
            for label, cache in (("bytecode cached", pycache), ("as the environment is", None)):
                term = [terminal_once(root, args.flows, cache) for _ in range(args.repeat)]
                print(
                    f"`workbench tui` in tmux to first full screen, {args.flows} flows, {args.runs} past runs, "
                    f"{label}: median {statistics.median(term) * 1000:.0f} ms, max {max(term) * 1000:.0f} ms over "
                    f"{args.repeat} runs (a fresh process each time, imports included; load average "
                    f"{os.getloadavg()[0]:.2f})"
                )
            shutil.rmtree(pycache, ignore_errors=True)
    finally:
        if shutil.which("tmux"):
            tmux("kill-server", capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
