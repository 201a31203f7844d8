"""A step's summary folded task by task (workbench.step_summary): counts stay right under repeated and late
events, and a wide step keeps counts, not its tasks' names. Pure: no I/O."""

import tracemalloc

from workbench.datastore.records import TaskRecord, TaskStatus
from workbench.step_summary import StepSummaryBuilder, summarize_records


def record(task_id, status=TaskStatus.SUCCEEDED, started=1.0, finished=2.0):
    return TaskRecord(
        flow="F",
        run_id="1",
        step="sq",
        task_id=str(task_id),
        pathspec=f"F/1/sq/{task_id}",
        status=status,
        started_at=started,
        finished_at=finished,
    )


def test_a_retried_task_and_repeated_events_count_once():
    b = StepSummaryBuilder("F", "1", "sq")
    for n in (2, 3, 4):
        b.started(f"F/1/sq/{n}", ts=1.0)
    b.retrying_again("F/1/sq/3")
    b.retrying_again("F/1/sq/3")  # twice: still one task retrying
    b.retrying_again("F/1/sq/9")  # never started: nothing to retry
    live = b.record()
    assert (live.total, live.counts, live.status) == (3, {"running": 2, "retrying": 1}, "running")
    b.started("F/1/sq/3", ts=1.5)  # its next attempt
    b.add(record(2))
    b.add(record(2))  # the same final record again
    b.started("F/1/sq/2", ts=3.0)  # a late start of an ended task changes nothing
    b.add(record(3, TaskStatus.FAILED))
    mid = b.record()
    assert (mid.total, mid.counts, mid.finished_at) == (3, {"succeeded": 1, "failed": 1, "running": 1}, None)
    b.add(record(4, finished=5.0))
    done = b.record(final=True)
    assert (done.total, done.counts, done.status) == (3, {"succeeded": 2, "failed": 1}, "failed")
    assert (done.failed_total, done.failed[0].task_id, done.finished_at) == (1, "3", 5.0)


def test_a_past_run_with_unrecorded_tasks_counts_them_running():
    summary = summarize_records("F", "1", "sq", [record(2), record(3, TaskStatus.OOM)], running=2)
    assert (summary.total, summary.counts, summary.status) == (4, {"succeeded": 1, "oom": 1, "running": 2}, "oom")


def test_a_wide_step_keeps_no_name_per_task():
    """10,000 tasks started then ended: the builder keeps its bounded lists and a few pages of bytes (~100 KB),
    not sets of 10,000 names (~1.5 MB)."""
    records = [record(n) for n in range(2, 10_002)]
    b = StepSummaryBuilder("F", "1", "sq")
    b.started("F/1/sq/1")
    b.add(record(1))  # what the first task imports and sets up is not per task
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for r in records:
            b.started(r.pathspec, ts=1.0)
        for r in records:
            b.add(r)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    summary = b.record()
    assert (summary.total, summary.counts) == (10_001, {"succeeded": 10_001})
    assert grown < 150_000, f"{grown} bytes kept for 10,000 tasks"
