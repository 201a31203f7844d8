"""The per-step summary the runtime writes (counts by state, duration bins, failed and slowest tasks) and
what the TUI shows from it; a crashed run's glyph and its cancel from the TUI."""

import subprocess
import sys
import time

from workbench import events as ev
from workbench.config import load_config
from workbench.datastore import FlowDatastore
from workbench.datastore.records import RunRecord, RunStatus, TaskRecord, TaskStatus
from workbench.graph import build_graph
from workbench.liveness import this_host
from workbench.runtime import Runtime
from workbench.runtime_datastore import StepSummaryWriter
from workbench.scheduler_messages import Emit, WriteTask
from workbench.step_summary import StepSummaryBuilder

from .conftest import async_test, make_app, ready, wait_for
from .test_app import select_flow


def test_the_runtime_writes_each_steps_summary_final_at_the_end(tui_project):
    config = load_config(tui_project)
    result = Runtime(build_graph(tui_project / "flows" / "fanout.py"), config).run()
    assert result.status == "succeeded"
    ds = FlowDatastore(config.datastore_url, "FanoutFlow")
    summary = ds.read_step_summary(result.run_id, "square")
    assert summary.final and summary.status == "succeeded"
    assert summary.total == 8 and summary.counts == {"succeeded": 8} and sum(summary.durations) == 8
    records = [ds.read_task(result.run_id, "square", t) for t in ds.list_tasks(result.run_id, "square")]
    by_time = sorted(records, key=lambda r: r.finished_at - r.started_at, reverse=True)
    assert [b.task_id for b in summary.slowest] == [r.task_id for r in by_time]
    assert summary.slowest[0].index  # each task's foreach index, as the table shows it
    assert set(ds.list_steps(result.run_id)) == {"start", "square", "join", "end"}  # summary.json is no step
    assert ds.list_tasks(result.run_id, "square") == [r.task_id for r in records]  # nor a task


class CountingDatastore(FlowDatastore):
    """A real datastore that counts the summary writes (the only thing this test watches)."""

    writes = 0

    def write_step_summary(self, record):
        self.writes += 1
        super().write_step_summary(record)


def test_a_busy_step_is_written_at_a_bounded_rate_and_at_once_when_it_ends(tmp_path):
    now = [0.0]
    ds = CountingDatastore(str(tmp_path), "BigFlow")
    writer = StepSummaryWriter(ds, "BigFlow", "1", clock=lambda: now[0], interval=1.0)
    for i in range(1, 2001):  # 2,000 tasks over 20 s, two in flight: one batch (and flush) per task
        pathspec = f"BigFlow/1/square/{i}"
        writer.take(Emit(ev.TaskStarted(pathspec, "square", 0, "local", ts=now[0])))
        if i > 1:
            done = TaskRecord(step="square", task_id=str(i - 1), pathspec=f"BigFlow/1/square/{i - 1}")
            done.status, done.started_at, done.finished_at = TaskStatus.SUCCEEDED, now[0] - 0.02, now[0]
            writer.take(WriteTask(done))
        writer.flush()
        now[0] += 0.01
    assert 19 <= ds.writes <= 22  # about one a second, not one per task
    live = ds.read_step_summary("1", "square")
    assert live.counts["running"] == 1 and not live.final
    last = TaskRecord(step="square", task_id="2000", pathspec="BigFlow/1/square/2000", status=TaskStatus.OOM)
    writer.take(WriteTask(last))
    writer.flush()  # nothing left in flight: written at once, whatever the interval
    ended = ds.read_step_summary("1", "square")
    assert ended.counts == {"succeeded": 1999, "oom": 1} and ended.status == "oom" and not ended.final
    assert ended.failed[0].task_id == "2000" and ended.failed_total == 1
    writer.close()
    assert ds.read_step_summary("1", "square").final


def crashed_run(root) -> str:
    """A run whose runtime died while `square` ran: its record says running, its runtime's pid is gone."""
    config = load_config(root)
    ds = FlowDatastore(config.datastore_url, "FanoutFlow")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = "1000000000000042"
    record = RunRecord(flow="FanoutFlow", run_id=run_id, status=RunStatus.RUNNING, started_at=time.time() - 60)
    record.runtime_pid, record.runtime_host, record.heartbeat_at = dead.pid, this_host(), time.time()
    ds.write_run(record)
    builder = StepSummaryBuilder("FanoutFlow", run_id, "start")
    builder.add(
        TaskRecord(step="start", task_id="1", pathspec=f"FanoutFlow/{run_id}/start/1", status=TaskStatus.SUCCEEDED)
    )
    ds.write_step_summary(builder.record())
    builder = StepSummaryBuilder("FanoutFlow", run_id, "square")
    for i in range(2, 6):
        builder.started(f"FanoutFlow/{run_id}/square/{i}")
    ds.write_step_summary(builder.record())
    for step, task in (("start", "1"), *(("square", str(i)) for i in range(2, 6))):
        ds.storage.put(f"{ds.task_key(run_id, step, task)}/spec-0.json", [b"{}"])
    return run_id


@async_test
async def test_a_crashed_run_shows_its_glyph_and_c_cancels_it(tui_project, clock):
    run_id = crashed_run(tui_project)
    app = make_app(tui_project, clock, datastore_poll=None)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await ready(app, pilot)
        select_flow(app, "FanoutFlow")
        await wait_for(pilot, lambda: app.statuses.get("square") == "crashed")
        assert app.statuses["start"] == "succeeded"
        assert "† square" in "\n".join(app.query_one("#dag").picture.lines)
        runs = app.query_one("#runs-table")
        assert str(runs.get_row_at(0)[1]) == "† crashed"
        app.select_step("square")
        await pilot.press("6")
        pane = app.query_one("#tasks")
        await wait_for(pilot, lambda: pane.summary is not None and pane.summary.step == "square")
        assert pane.summary.counts == {"unfinished": 4}  # not "running": nothing runs them any more
        await pilot.press("c")
        await wait_for(pilot, lambda: app.statuses.get("square") == "cancelled", timeout=20)
        ds = FlowDatastore(load_config(tui_project).datastore_url, "FanoutFlow")
        assert ds.read_run(run_id).status is RunStatus.CANCELLED
        assert any(f"run {run_id} cancelled" in n.message for n in app._notifications)
        assert str(app.query_one("#runs-table").get_row_at(0)[1]) == "cancelled"


def test_a_damaged_summary_reads_as_empty_values_not_a_crash(tmp_path):
    from workbench.past_runs import PastRuns
    from workbench.tui.step_tasks import from_record, histogram

    ds = FlowDatastore(str(tmp_path), "F")
    ds.storage.put(
        "F/runs/1/square/summary.json", [b'{"counts": [1], "durations": {"a": 1}, "slowest": 3, "total": "x"}']
    )
    record = PastRuns(ds).step_summary("1", "square", fold=False)
    assert (record.counts, record.durations, record.slowest, record.total) == ({}, [], [], 0)
    assert histogram(from_record(record).bins) == []
    ds.storage.put("F/runs/1/square/summary.json", [b"{not json"])
    assert PastRuns(ds).step_summary("1", "square", fold=False) is None
