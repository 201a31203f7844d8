"""The progress reducer: events in, per-step and per-run state out. Pure: milliseconds, no processes."""

from workbench import events as ev
from workbench.datastore.records import TaskRecord, TaskStatus
from workbench.progress import RunProgress, events_from_tasks, reduce_events

RUN = "F/1"


def started(step, task, attempt=0, ts=1.0):
    return ev.TaskStarted(f"{RUN}/{step}/{task}", step, attempt, "local", ts=ts)


def finished(step, task, status="succeeded", ts=2.0, duration=1.0):
    return ev.TaskFinished(f"{RUN}/{step}/{task}", step, status, 0, duration, ts=ts)


def test_linear_run_goes_pending_running_succeeded():
    state = reduce_events([ev.RunStarted("F", "1", steps=("start", "end"), ts=0.0)])
    assert {n: s.status for n, s in state.steps.items()} == {"start": "pending", "end": "pending"}
    assert state.statuses() == {} and state.status == "running"
    state.apply(started("start", 1))
    assert state.statuses() == {"start": "running"}
    state.apply(finished("start", 1, ts=3.0))
    state.apply(started("end", 2, ts=3.5))
    state.apply(finished("end", 2, ts=4.0))
    state.apply(ev.RunFinished("F", "1", "succeeded", 4.0, ts=4.0))
    assert state.statuses() == {"start": "succeeded", "end": "succeeded"}
    assert state.steps["start"].duration == 2.0 and state.status == "succeeded" and state.finished_at == 4.0


def test_foreach_counts_running_tasks_and_the_first_failure_sticks():
    state = RunProgress()
    for task in (2, 3, 4):
        state.apply(started("square", task))
    s = state.steps["square"]
    assert (s.total, s.running, s.done, s.status) == (3, 3, 0, "running")
    state.apply(finished("square", 2))
    state.apply(finished("square", 3, status="oom"))
    assert (s.done, s.failed, s.running, s.status) == (2, 1, 1, "oom")
    state.apply(finished("square", 4, status="timeout"))
    assert s.status == "oom" and s.finished == {"succeeded": 1, "oom": 1, "timeout": 1}
    assert state.counts() == {"square": 3} and s.duration == 1.0


def test_a_retrying_task_keeps_its_step_running_and_counts_once():
    state = RunProgress()
    changed = state.apply(started("train", 2))
    assert changed == "train"
    state.apply(ev.TaskRetrying(f"{RUN}/train/2", "train", 0, "boom", 0.5))
    s = state.steps["train"]
    assert s.status == "running" and not s.running and s.duration is None
    state.apply(started("train", 2, attempt=1))
    assert (s.total, s.running) == (1, 1)
    state.apply(finished("train", 2))
    assert (s.total, s.done, s.failed, s.status) == (1, 1, 0, "succeeded")


def test_cloned_steps_and_events_that_change_no_step():
    state = RunProgress()
    assert state.apply(ev.LogLine(f"{RUN}/a/1", "stdout", "hi")) is None
    assert state.apply(ev.RunWarning("careful")) is None
    state.apply(ev.TaskCloned(f"{RUN}/a/1", "a", "F/0/a/1"))
    state.apply(ev.TaskCloned(f"{RUN}/b/2", "b", "F/0/b/2"))
    state.apply(started("b", 3))
    state.apply(finished("b", 3))
    assert state.statuses() == {"a": "cloned", "b": "succeeded"}
    assert state.steps["a"].failed == 0 and state.steps["a"].done == 1


def test_a_past_run_reduces_to_the_same_statuses_as_it_did_live():
    live = [
        started("start", 1),
        finished("start", 1),
        ev.TaskCloned(f"{RUN}/prep/2", "prep", "F/0/prep/2"),
        started("fan", 3),
        started("fan", 4),
        finished("fan", 3),
        finished("fan", 4, status="failed"),
    ]
    records = [
        TaskRecord(
            flow="F",
            run_id="1",
            step="start",
            task_id="1",
            status=TaskStatus.SUCCEEDED,
            started_at=1.0,
            finished_at=2.0,
        ),
        TaskRecord(
            flow="F", run_id="1", step="prep", task_id="2", status=TaskStatus.SUCCEEDED, cloned_from="F/0/prep/2"
        ),
        TaskRecord(flow="F", run_id="1", step="fan", task_id="3", status=TaskStatus.SUCCEEDED),
        TaskRecord(flow="F", run_id="1", step="fan", task_id="4", status=TaskStatus.FAILED),
    ]
    past = reduce_events(events_from_tasks(records))
    assert (
        past.statuses() == reduce_events(live).statuses() == {"start": "succeeded", "prep": "cloned", "fan": "failed"}
    )
    assert past.counts() == {"start": 1, "prep": 1, "fan": 2}


def test_the_cli_live_view_draws_its_bars_from_the_reducer():
    """The rich renderer's per-step rows: total, completed and the note come from the reducer's state."""
    import io

    from rich.console import Console

    from workbench.cli.render import LiveRenderer

    renderer = LiveRenderer(console=Console(file=io.StringIO(), force_terminal=False, width=100))
    for e in [
        ev.RunStarted("F", "1", steps=("start", "square")),
        started("square", 2),
        started("square", 3),
        ev.TaskRetrying(f"{RUN}/square/3", "square", 0, "boom", 0.1),
        started("square", 3, attempt=1),
        finished("square", 2),
        finished("square", 3, status="failed"),
    ]:
        renderer(e)
    row = renderer.progress.tasks[renderer.rows["square"]]
    assert (row.total, row.completed, row.fields["note"]) == (2, 2, "[red]1 failed")
    renderer(ev.RunFinished("F", "1", "failed", 1.0))
    renderer.close()


def test_a_step_counts_like_sets_of_names_whatever_the_task_ids():
    """The per-task marks answer as the three sets of pathspecs did (known, running, retrying), for numbered
    tasks in any order, repeated events, names that are not numbers, "07" beside "7", another run's tasks."""
    import random

    from workbench.progress import IN_RETRYING, IN_RUNNING, KNOWN, TaskMarks

    rng = random.Random(16)
    names = [f"{RUN}/s/{n}" for n in [*range(1, 600), 5000, 70000, 123456789012]]
    names += [f"{RUN}/s/07", f"{RUN}/s/7", f"{RUN}/s/unrecorded-1", "F/2/s/3", f"{RUN}/t/3", f"{RUN}/s/-1", f"{RUN}/s/"]
    marks, model = TaskMarks(), {KNOWN: set(), IN_RUNNING: set(), IN_RETRYING: set()}
    for _ in range(20_000):
        name, add, remove = rng.choice(names), rng.choice([0, 1, 2, 3, 4, 5]), rng.choice([0, 2, 4, 6])
        before = {bit for bit, members in model.items() if name in members}
        assert marks.change(name, add=add, remove=remove) == sum(before)
        for bit, members in model.items():
            if add & bit:
                members.add(name)
            elif remove & bit:
                members.discard(name)
    for name in names:
        assert marks.get(name) == sum(bit for bit, members in model.items() if name in members)
    assert marks.count == {bit: len(members) for bit, members in model.items()}


def test_a_wide_step_keeps_counts_not_the_names_of_its_tasks():
    """10,000 tasks started and finished cost the reducer a few pages of bytes, not a set of 10,000 names."""
    import tracemalloc

    events = [started("square", n) for n in range(2, 10_002)] + [finished("square", n) for n in range(2, 10_002)]
    state = RunProgress()
    state.apply(events[0])  # the step exists before the measure
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for e in events[1:]:
            state.apply(e)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    s = state.steps["square"]
    assert (s.total, s.running, s.done, s.status) == (10_000, 0, 10_000, "succeeded")
    assert grown < 40_000, f"{grown} bytes kept for 10,000 tasks"


def test_a_repeated_event_is_counted_once():
    state = RunProgress()
    for e in [
        started("a", 2),
        started("a", 2),
        finished("a", 2),
        finished("a", 2),
        ev.TaskCloned(f"{RUN}/a/2", "a", ""),
    ]:
        state.apply(e)
    s = state.steps["a"]
    assert (s.total, s.running, s.retrying) == (1, 0, 0)
