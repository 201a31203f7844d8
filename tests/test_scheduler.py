"""The scheduler alone: events in, instructions out. No processes, no datastore, no clock."""

import textwrap
from pathlib import Path

import pytest

from workbench import events as ev
from workbench.backends.base import TaskExit
from workbench.datastore.records import AttemptRecord, RunStatus, TaskRecord, TaskStatus
from workbench.graph import build_graph
from workbench.scheduler import (
    Abort,
    Cancel,
    CancelRequested,
    Emit,
    FinishRun,
    RunStart,
    Scheduler,
    StopExpired,
    Submit,
    TaskExited,
    Tick,
    WriteTask,
    summary,
)
from workbench.settings import StepSettings

LINEAR = """
    from workbench import FlowSpec, step
    class Linear(FlowSpec):
        @step
        def start(self):
            self.next(self.a)
        @step
        def a(self):
            self.next(self.end)
        @step
        def end(self):
            pass
"""

BRANCH = """
    from workbench import FlowSpec, step
    class Branch(FlowSpec):
        @step
        def start(self):
            self.next(self.a, self.b)
        @step
        def a(self):
            self.next(self.join)
        @step
        def b(self):
            self.next(self.join)
        @step
        def join(self, inputs):
            self.next(self.end)
        @step
        def end(self):
            pass
"""

NESTED = """
    from workbench import FlowSpec, step
    class Nested(FlowSpec):
        @step
        def start(self):
            self.rows = [[1, 2], [3, 4, 5]]
            self.next(self.row, foreach="rows")
        @step
        def row(self):
            self.next(self.cell, foreach="input")
        @step
        def cell(self):
            self.next(self.row_join)
        @step
        def row_join(self, inputs):
            self.next(self.all_join)
        @step
        def all_join(self, inputs):
            self.next(self.end)
        @step
        def end(self):
            pass
"""

FOREACH = """
    from workbench import FlowSpec, step
    class Fan(FlowSpec):
        @step
        def start(self):
            self.items = [0, 1, 2, 3]
            self.next(self.work, foreach="items")
        @step
        def work(self):
            self.next(self.join)
        @step
        def join(self, inputs):
            self.next(self.end)
        @step
        def end(self):
            pass
"""


def graph_of(source):
    graph = build_graph("flow.py", source=textwrap.dedent(source))
    assert graph.ok, graph.errors
    return graph


class Sim:
    """Feeds one scheduler events at chosen times and keeps what it answered."""

    def __init__(self, source, settings=None, **kw):
        self.graph = graph_of(source)
        settings = settings or {}
        self.s = Scheduler(
            self.graph,
            run_id="9",
            flow_file="flow.py",
            settings={n: settings.get(n, StepSettings()) for n in self.graph.steps},
            **kw,
        )
        self.now = 0.0
        self.submitted: dict[str, Submit] = {}  # key -> the latest Submit

    def feed(self, event):
        out = self.s.handle(event)
        for i in out:
            if isinstance(i, Submit):
                self.submitted[i.key] = i
        return out

    def start(self):
        return self.feed(RunStart(self.now))

    def ok(self, key, artifacts=None, splits=None, var=None):
        sub = self.submitted[key]
        arts = {n: {"sha": f"sha-{n}-{key}"} for n in (artifacts or ["x"])}
        report = AttemptRecord(
            status=TaskStatus.SUCCEEDED,
            attempt=sub.spec.attempt,
            artifacts=arts,
            foreach_num_splits=splits,
            foreach_artifact=var,
        )
        return self.feed(TaskExited(key, sub.spec.attempt, TaskExit(TaskStatus.SUCCEEDED, 0), report, self.now))

    def fail(self, key, status=TaskStatus.FAILED, reason="ValueError: bad", report_status=None, code=1):
        sub = self.submitted[key]
        report = AttemptRecord(
            status=report_status or status, attempt=sub.spec.attempt, reason=reason, traceback="Traceback ..."
        )
        return self.feed(TaskExited(key, sub.spec.attempt, TaskExit(status, code, reason), report, self.now))

    def key_of(self, step, index_path=()):
        for key, sub in self.submitted.items():
            if sub.spec.step == step and tuple(f["index"] for f in sub.spec.foreach_stack) == tuple(index_path):
                return key
        raise KeyError((step, index_path))


def test_linear_run_instruction_by_instruction():
    sim = Sim(LINEAR)
    assert summary(sim.start()) == [("emit", "TaskStarted", "Linear/9/start/1"), ("submit", "start", "1", 0)]
    assert summary(sim.ok("1")) == [
        ("write", "start", "1", "succeeded"),
        ("emit", "TaskFinished", "Linear/9/start/1"),
        ("emit", "TaskStarted", "Linear/9/a/2"),
        ("submit", "a", "2", 0),
    ]
    spec = sim.submitted["2"].spec
    assert spec.kind == "linear" and spec.next == ["end"] and spec.inputs[0].pathspec == "Linear/9/start/1"
    assert spec.inputs[0].artifacts == {"x": "sha-x-1"}
    assert summary(sim.ok("2"))[-1] == ("submit", "end", "3", 0)
    out = sim.ok("3")
    assert summary(out)[-1] == ("finish", "succeeded", "")
    assert sim.s.phase == "done" and sim.feed(Tick(99.0)) == []


def test_branch_waits_for_both_sides_and_orders_join_inputs_by_the_flow():
    sim = Sim(BRANCH)
    sim.start()
    out = summary(sim.ok("1"))
    assert [r for r in out if r[0] == "submit"] == [("submit", "a", "2", 0), ("submit", "b", "3", 0)]
    assert [r for r in summary(sim.ok("3")) if r[0] == "submit"] == []  # b alone does not start the join
    out = sim.ok("2")
    assert summary(out)[-1] == ("submit", "join", "4", 0)
    join = sim.submitted["4"].spec
    assert [i.step for i in join.inputs] == ["a", "b"] and join.kind == "join"


def test_nested_foreach_fans_out_and_joins_match_by_index_path():
    sim = Sim(NESTED, max_workers=100)
    sim.start()
    sim.ok("1", ["rows"], splits=2, var="rows")
    rows = [sim.key_of("row", (0,)), sim.key_of("row", (1,))]
    assert sim.submitted[rows[1]].spec.foreach_stack == [{"step": "start", "var": "rows", "index": 1, "num_splits": 2}]
    sim.ok(rows[0], splits=2, var="_foreach_row")
    sim.ok(rows[1], splits=3, var="_foreach_row")
    cells = {(i, j): sim.key_of("cell", (i, j)) for i, n in ((0, 2), (1, 3)) for j in range(n)}
    assert len(cells) == 5
    # finish cells interleaved across the two rows, last cell of each row out of order
    order = [(1, 2), (0, 1), (1, 0), (0, 0), (1, 1)]
    joins = []
    for ij in order:
        out = sim.ok(cells[ij])
        joins += [i for i in out if isinstance(i, Submit)]
        if ij == (0, 0):
            assert [j.spec.step for j in joins] == ["row_join"]
            assert [i.foreach_stack[-1]["index"] for i in joins[0].spec.inputs] == [0, 1]
            assert all(i.foreach_stack[0]["index"] == 0 for i in joins[0].spec.inputs)
            assert joins[0].spec.foreach_stack == [{"step": "start", "var": "rows", "index": 0, "num_splits": 2}]
    assert [j.spec.step for j in joins] == ["row_join", "row_join"]
    second = joins[1].spec
    assert [(i.foreach_stack[0]["index"], i.foreach_stack[1]["index"]) for i in second.inputs] == [
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    out = sim.ok(joins[1].key)
    assert not [i for i in out if isinstance(i, Submit)]  # all_join waits for row 0's join too
    out = sim.ok(joins[0].key)
    all_join = [i for i in out if isinstance(i, Submit)][0].spec
    assert all_join.step == "all_join" and all_join.foreach_stack == []
    assert [i.foreach_stack[0]["index"] for i in all_join.inputs] == [0, 1]


def test_dispatch_limits_local_and_remote_separately():
    settings = {"work": StepSettings(backend="batch")}
    sim = Sim(FOREACH, settings=settings, max_workers=1, max_remote=3, remote_backends=frozenset({"batch"}))
    sim.start()
    out = sim.ok("1", ["items"], splits=4, var="items")
    assert [r[1:3] for r in summary(out) if r[0] == "submit"] == [("work", "2"), ("work", "3"), ("work", "4")]
    out = sim.ok("2")
    assert [r[1:3] for r in summary(out) if r[0] == "submit"] == [("work", "5")]


def test_retry_waits_its_delay_then_succeeds():
    sim = Sim(LINEAR, settings={"a": StepSettings(retries=2, retry_delay=5.0)})
    sim.start()
    sim.ok("1")
    sim.now = 10.0
    out = sim.fail("2")
    assert [type(i) for i in out] == [Emit]
    retrying = out[0].event
    assert isinstance(retrying, ev.TaskRetrying) and retrying.attempt == 0 and retrying.delay == 5.0
    assert sim.s.wake_at == 15.0
    assert sim.feed(Tick(14.9)) == []
    assert summary(sim.feed(Tick(15.0))) == [("emit", "TaskStarted", "Linear/9/a/2"), ("submit", "a", "2", 1)]
    sim.now = 16.0
    out = sim.ok("2")
    record = next(i.record for i in out if isinstance(i, WriteTask))
    assert record.attempt == 1 and [a.status for a in record.attempts] == ["retrying", "succeeded"]
    assert record.attempts[0].reason == "ValueError: bad" and record.attempts[0].finished_at == 10.0


def test_retries_run_out_and_the_run_fails_with_the_tasks_reason():
    sim = Sim(LINEAR, settings={"a": StepSettings(retries=1)})
    sim.start()
    sim.ok("1")
    sim.fail("2")
    sim.feed(Tick(0.0))
    out = sim.fail("2", reason="ValueError: again")
    assert summary(out) == [
        ("write", "a", "2", "failed"),
        ("emit", "TaskFinished", "Linear/9/a/2"),
        ("finish", "failed", "step a failed"),
    ]
    assert out[0].record.traceback == "Traceback ..." and out[-1].failed == ("Linear/9/a/2",)


def test_catch_is_a_success_the_task_reports_and_exit_0_without_a_report_is_a_failure():
    sim = Sim(LINEAR, settings={"a": StepSettings(catch=True)})
    sim.start()
    sim.ok("1")
    sub = sim.submitted["2"]
    assert sub.spec.settings["catch"] is True  # the task itself applies @catch
    report = AttemptRecord(status=TaskStatus.SUCCEEDED, attempt=0, caught="ValueError: bad", artifacts={})
    out = sim.feed(TaskExited("2", 0, TaskExit(TaskStatus.SUCCEEDED, 0), report, 0.0))
    assert summary(out)[-1] == ("submit", "end", "3", 0)
    out = sim.feed(TaskExited("3", 0, TaskExit(TaskStatus.SUCCEEDED, 0), None, 0.0))
    assert out[0].record.status is TaskStatus.FAILED
    assert out[0].record.reason == "the task exited 0 but saved no result"


def test_timeout_cancels_at_the_hard_deadline_and_the_tasks_own_word_wins():
    sim = Sim(LINEAR, settings={"a": StepSettings(timeout=10)}, hard_timeout_grace=30.0)
    sim.start()
    sim.ok("1")
    assert sim.s.wake_at == 40.0
    assert sim.feed(Tick(39.0)) == []
    assert sim.feed(Tick(41.0)) == [Cancel("2", "timed out after 10s", timeout=True)]
    assert sim.feed(Tick(42.0)) == []  # once
    sim.now = 44.0
    out = sim.fail("2", status=TaskStatus.TIMEOUT, reason="timed out after 10s", code=None)
    assert summary(out)[0] == ("write", "a", "2", "timeout")
    # the task's alarm fired first: the backend says failed (exit 3 unknown to it), the report says timeout
    sim = Sim(LINEAR, settings={"a": StepSettings(timeout=10)})
    sim.start()
    sim.ok("1")
    out = sim.fail("2", status=TaskStatus.FAILED, report_status=TaskStatus.TIMEOUT, reason="timed out after 10s")
    assert out[0].record.status is TaskStatus.TIMEOUT and out[0].record.reason == "timed out after 10s"


def test_cancel_mid_foreach_cancels_what_runs_and_starts_nothing():
    sim = Sim(FOREACH, max_workers=2)
    sim.start()
    sim.ok("1", ["items"], splits=4, var="items")
    assert sorted(sim.submitted) == ["1", "2", "3"]
    out = sim.feed(CancelRequested("stopped by the test", 1.0))
    assert out == [Cancel("2", "stopped by the test"), Cancel("3", "stopped by the test")]
    out = sim.ok("2")  # it finished before the cancel reached it: its work is kept
    assert summary(out) == [("write", "work", "2", "succeeded"), ("emit", "TaskFinished", "Fan/9/work/2")]
    out = sim.fail("3", status=TaskStatus.CANCELLED, reason="stopped by the test")
    assert summary(out) == [
        ("write", "work", "3", "cancelled"),
        ("emit", "TaskFinished", "Fan/9/work/3"),
        ("finish", "cancelled", "stopped by the test"),
    ]
    assert out[-1].failed == ()


def test_cancelled_tasks_that_never_answer_count_as_cancelled():
    sim = Sim(FOREACH, max_workers=2)
    sim.start()
    sim.ok("1", ["items"], splits=4, var="items")
    sim.feed(CancelRequested("cancelled", 1.0))
    out = sim.feed(StopExpired(61.0))
    assert [i.record.reason for i in out if isinstance(i, WriteTask)] == ["cancelled (no answer)"] * 2
    assert summary(out)[-1] == ("finish", "cancelled", "cancelled")


def test_a_failure_lets_running_tasks_finish_and_starts_nothing_new():
    sim = Sim(FOREACH, max_workers=2)
    sim.start()
    sim.ok("1", ["items"], splits=4, var="items")
    out = sim.fail("2")
    assert not [i for i in out if isinstance(i, (Submit, FinishRun))]
    out = sim.ok("3")
    assert summary(out)[-1] == ("finish", "failed", "step work failed")


def test_abort_stops_the_run_as_failed_with_the_message():
    sim = Sim(LINEAR)
    sim.start()
    assert sim.feed(Abort("datastore is gone", 1.0)) == [Cancel("1", "cancelled")]
    out = sim.fail("1", status=TaskStatus.CANCELLED)
    assert out[-1] == FinishRun(RunStatus.FAILED, "datastore is gone", ())


def origin_record(step, task_id, status="succeeded", stack=(), artifacts=None, splits=None, var=None):
    return TaskRecord.from_dict(
        {
            "flow": "Fan",
            "run_id": "5",
            "step": step,
            "task_id": task_id,
            "pathspec": f"Fan/5/{step}/{task_id}",
            "status": status,
            "artifacts": artifacts or {"x": {"sha": f"old-{step}-{task_id}"}},
            "foreach_stack": [{"step": "start", "var": "items", "index": i, "num_splits": 3} for i in stack],
            "foreach_num_splits": splits,
            "foreach_artifact": var,
            "attempts": [{"attempt": 0, "status": status}],
        }
    )


def test_resume_clones_what_succeeded_and_reruns_the_rest():
    origin = [
        origin_record(
            "start", "1", splits=3, var="items", artifacts={"items": {"sha": "old-items"}, "n": {"sha": "old-n"}}
        ),
        origin_record("work", "2", stack=(0,)),
        origin_record("work", "3", status="failed", stack=(1,)),
        origin_record("work", "4", stack=(2,)),
    ]
    graph_params = {"n": "new-n"}
    sim = Sim(FOREACH, origin_run_id="5", origin_tasks=origin, param_refs=graph_params, max_workers=4)
    out = sim.start()
    rows = summary(out)
    assert rows[:2] == [("write", "start", "1", "succeeded"), ("emit", "TaskCloned", "Fan/9/start/1")]
    assert [r for r in rows if r[0] == "emit" and r[1] == "TaskCloned"] == [
        ("emit", "TaskCloned", "Fan/9/start/1"),
        ("emit", "TaskCloned", "Fan/9/work/2"),
        ("emit", "TaskCloned", "Fan/9/work/4"),
    ]
    assert [r for r in rows if r[0] == "submit"] == [("submit", "work", "3", 0)]
    clone = out[0].record
    assert clone.cloned_from == "Fan/5/start/1" and clone.artifacts["items"] == {"sha": "old-items"}
    rerun = sim.submitted["3"].spec
    assert rerun.foreach_stack[0]["index"] == 1 and rerun.inputs[0].artifacts["items"] == "old-items"
    assert rerun.origin_run_id == "5"
    out = sim.ok("3")
    join = [i for i in out if isinstance(i, Submit)][0].spec
    assert join.step == "join" and [i.pathspec for i in join.inputs] == ["Fan/9/work/2", "Fan/9/work/3", "Fan/9/work/4"]


def test_rerun_steps_run_again_even_when_they_succeeded():
    origin = [origin_record("start", "1", splits=3, var="items")]
    sim = Sim(FOREACH, origin_run_id="5", origin_tasks=origin, rerun_steps={"start", "work", "join", "end"})
    assert summary(sim.start()) == [("emit", "TaskStarted", "Fan/9/start/1"), ("submit", "start", "1", 0)]


def test_single_step_runs_one_foreach_task_with_cloned_inputs_and_nothing_after():
    origin = [origin_record("start", "1", splits=3, var="items")]
    sim = Sim(FOREACH, origin_run_id="5", origin_tasks=origin, only_step="work", only_task_index=1)
    out = sim.start()
    assert [r for r in summary(out) if r[0] == "submit"] == [("submit", "work", "3", 0)]
    assert sim.submitted["3"].spec.foreach_stack[-1]["index"] == 1
    assert summary(sim.ok("3"))[-1] == ("finish", "succeeded", "")


def test_single_step_without_its_inputs_in_the_origin_fails_in_one_line():
    sim = Sim(FOREACH, origin_run_id="5", origin_tasks=[], only_step="work")
    out = sim.start()
    assert out == [
        FinishRun(
            RunStatus.FAILED, "run 5 has no successful task of step start to take the inputs of step work from", ()
        )
    ]


@pytest.mark.parametrize("stale", [("9", 0), ("2", 5)])
def test_exits_of_unknown_tasks_or_old_attempts_are_ignored(stale):
    sim = Sim(LINEAR)
    sim.start()
    key, attempt = stale
    assert sim.feed(TaskExited(key, attempt, TaskExit(TaskStatus.SUCCEEDED, 0), None, 0.0)) == []


def test_the_scheduler_imports_no_threads_queues_clock_backends_or_storage():
    import ast

    import workbench.scheduler as module
    import workbench.scheduler_messages as messages
    import workbench.scheduler_records as records
    import workbench.scheduler_tasks as tasks

    def imports(mod) -> set:
        tree = ast.parse(Path(mod.__file__).read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                names.add(("." * node.level) + (node.module or ""))
        return names

    allowed = {
        "__future__",
        "heapq",
        "dataclasses",
        "typing",
        ".",
        ".backends.base",
        ".datastore.records",
        ".errors",
        ".graph",
        ".settings",
    }
    names = imports(module)
    # the scheduler's message vocabulary and its record half were split out of it (issue 11): the same
    # rule holds for them
    assert names == allowed | {".scheduler_messages", ".scheduler_records", ".scheduler_tasks"}, names
    records_too = {".datastore.split_inputs"}  # a record type too: a foreach join's compact inputs
    for part in (messages, records, tasks):
        assert imports(part) <= allowed | records_too | {".scheduler_messages", ".scheduler_tasks"}, (
            part.__name__,
            imports(part),
        )


FOREACH_TWO_STEPS = """
    from workbench import FlowSpec, step
    class Chain(FlowSpec):
        @step
        def start(self):
            self.items = list(range(5))
            self.next(self.a, foreach="items")
        @step
        def a(self):
            self.next(self.b)
        @step
        def b(self):
            self.next(self.join)
        @step
        def join(self, inputs):
            self.next(self.end)
        @step
        def end(self):
            pass
"""


def test_a_fan_out_keeps_one_shared_part_and_each_index_still_gets_its_own_frame_retries_and_successor():
    """A wide foreach keeps one fan-out object and an index per task (memory flat in its width); what a task
    reads (its spec's frames, its successor's, the join's input order) and a retried index are unchanged."""
    sim = Sim(FOREACH_TWO_STEPS, settings={"a": StepSettings(retries=1, retry_delay=1.0)}, max_workers=100)
    sim.start()
    sim.ok("1", ["items"], splits=5, var="items")
    tasks = list(sim.s._running.values())
    assert len(tasks) == 5 and len({id(t.split) for t in tasks}) == 1 and len({id(t.parents) for t in tasks}) == 1
    for i in range(5):
        frames = sim.submitted[sim.key_of("a", (i,))].spec.foreach_stack
        assert frames == [{"step": "start", "var": "items", "index": i, "num_splits": 5}]
    third = sim.key_of("a", (3,))
    sim.fail(third)  # retried alone, at the same index
    retry = summary(sim.feed(Tick(sim.now + 1.0)))
    assert retry == [("emit", "TaskStarted", f"Chain/9/a/{third}"), ("submit", "a", third, 1)]
    assert sim.submitted[third].spec.foreach_stack[-1]["index"] == 3
    for i in (4, 3, 2, 1, 0):
        sim.ok(sim.key_of("a", (i,)))
    b_specs = [sim.submitted[sim.key_of("b", (i,))].spec for i in range(5)]
    assert [s.foreach_stack[-1]["index"] for s in b_specs] == [0, 1, 2, 3, 4]  # the successor keeps the frame
    assert b_specs[3].inputs[0].pathspec == f"Chain/9/a/{third}"
    for i in (2, 0, 4, 1, 3):
        out = sim.ok(sim.key_of("b", (i,)))
    join = [i for i in out if isinstance(i, Submit)][0].spec
    assert join.foreach_stack == [] and [i.foreach_stack[0]["index"] for i in join.inputs] == [0, 1, 2, 3, 4]
    assert [i.step for i in join.inputs] == ["b"] * 5


GANG = """
    from workbench import FlowSpec, parallel, step
    class Gang(FlowSpec):
        @step
        def start(self):
            self.next(self.train, num_parallel=3)
        @parallel
        @step
        def train(self):
            self.next(self.join)
        @step
        def join(self, inputs):
            self.next(self.end)
        @step
        def end(self):
            pass
"""


def started_gang():
    """A 3-node gang whose start task succeeded: the simulator and the nodes' task keys, by node index."""
    sim = Sim(GANG)
    sim.start()
    sim.ok("1")
    return sim, [sim.key_of("train", (i,)) for i in range(3)]


def written(out):
    """Task id -> the task record an answer wrote."""
    return {i.record.pathspec.split("/")[-1]: i.record for i in out if isinstance(i, WriteTask)}


@pytest.mark.parametrize("killed_first", [True, False])
def test_a_gang_is_failed_in_the_name_of_the_node_that_failed_not_one_the_platform_stopped(killed_first):
    """A platform that fails a gang stops its other nodes (SIGTERM, exit 143, no report of their own); the
    stopped node may be reported before the one that failed, whose report waits for its logs."""
    sim, nodes = started_gang()

    def stopped(key):
        sub = sim.submitted[key]
        return sim.feed(TaskExited(key, sub.spec.attempt, TaskExit(TaskStatus.FAILED, 143, "exit 143"), None, 0.0))

    out = stopped(nodes[1]) if killed_first else sim.fail(nodes[2], reason="RuntimeError: node 2 fails")
    assert {i.key for i in out if isinstance(i, Cancel)} == {nodes[0], nodes[1] if not killed_first else nodes[2]}
    out = sim.fail(nodes[2], reason="RuntimeError: node 2 fails") if killed_first else stopped(nodes[1])
    out = stopped(nodes[0])
    writes = written(out)
    assert writes[nodes[2]].reason == "RuntimeError: node 2 fails"
    for key in nodes[:2]:
        assert writes[key].status is TaskStatus.FAILED
        assert writes[key].reason == "node 2 of the gang failed: RuntimeError: node 2 fails", writes[key].reason


def test_a_gang_whose_nodes_were_all_stopped_keeps_the_first_word():
    sim, nodes = started_gang()
    for i, key in enumerate(nodes):
        sub = sim.submitted[key]
        reason = "the pod was evicted" if i == 0 else "exit 143"
        out = sim.feed(TaskExited(key, sub.spec.attempt, TaskExit(TaskStatus.FAILED, 143, reason), None, 0.0))
    reasons = [i.record.reason for i in out if isinstance(i, WriteTask)]
    assert reasons == ["the pod was evicted"] + ["node 0 of the gang failed: the pod was evicted"] * 2, reasons


def test_a_gang_is_named_after_the_node_whose_own_report_failed_first_not_one_that_failed_after_it():
    """Node 0 is stopped by the platform; node 1, cancelled, had already failed on its own (it lost node 0);
    node 2, cancelled too, had raised before either: its report's clock names it, whatever the arrival order."""
    sim, nodes = started_gang()

    def exited(key, status, code, reason, report_reason=None, finished_at=None, now=0.0):
        sub = sim.submitted[key]
        report = None
        if report_reason:
            report = AttemptRecord(
                status=TaskStatus.FAILED, attempt=sub.spec.attempt, reason=report_reason, finished_at=finished_at
            )
        return sim.feed(TaskExited(key, sub.spec.attempt, TaskExit(status, code, reason), report, now))

    out = exited(nodes[0], TaskStatus.FAILED, 143, "exited with code 143 (Error)", now=30.0)
    cancel = next(i.reason for i in out if isinstance(i, Cancel))
    assert cancel == "node 0 of the gang failed: exited with code 143 (Error)"
    exited(nodes[1], TaskStatus.CANCELLED, None, cancel, "ConnectionError: node 0 is gone", finished_at=20.0, now=31.0)
    out = exited(nodes[2], TaskStatus.CANCELLED, None, cancel, "RuntimeError: node 2 fails", finished_at=10.0, now=32.0)
    writes = written(out)
    assert writes[nodes[2]].status is TaskStatus.FAILED
    assert writes[nodes[2]].reason == "RuntimeError: node 2 fails"
    for key in nodes[:2]:
        assert writes[key].status is TaskStatus.FAILED
        assert writes[key].reason == "node 2 of the gang failed: RuntimeError: node 2 fails", writes[key].reason


def test_a_node_that_died_without_a_report_stays_the_culprit_when_its_peers_then_fail_on_their_own():
    """Node 1 dies (exit 7, no report: its machine lost a GPU); nodes 0 and 2, cancelled for it, fail on their
    own as they go (they lost node 1), with reports written after node 1's exit arrived: they followed it."""
    sim, nodes = started_gang()
    sub = sim.submitted[nodes[1]]
    out = sim.feed(
        TaskExited(nodes[1], sub.spec.attempt, TaskExit(TaskStatus.FAILED, 7, "exited with code 7"), None, 0.0)
    )
    cancel = next(i.reason for i in out if isinstance(i, Cancel))
    for key in (nodes[2], nodes[0]):
        sub = sim.submitted[key]
        report = AttemptRecord(
            status=TaskStatus.FAILED,
            attempt=sub.spec.attempt,
            reason="ConnectionError: node 1 is gone",
            finished_at=5.0,
        )
        out = sim.feed(TaskExited(key, sub.spec.attempt, TaskExit(TaskStatus.CANCELLED, None, cancel), report, 0.0))
    writes = written(out)
    assert writes[nodes[1]].reason == "exited with code 7"
    for key in (nodes[0], nodes[2]):
        assert writes[key].status is TaskStatus.FAILED
        assert writes[key].reason == "node 1 of the gang failed: exited with code 7", writes[key].reason


def test_nodes_whose_pods_went_with_the_failed_job_are_not_the_culprit_though_they_arrive_first():
    """The Job's controller deletes the other pods when node 2 raises; their exits (no report, no exit code)
    arrive first, node 2's after its log has settled: its report's clock puts it first."""
    sim, nodes = started_gang()
    for i, now in ((0, 30.0), (1, 30.5)):
        sub = sim.submitted[nodes[i]]
        gone = TaskExit(TaskStatus.FAILED, None, f"index {i} of Job j failed and its pod is gone")
        sim.feed(TaskExited(nodes[i], sub.spec.attempt, gone, None, now))
    sub = sim.submitted[nodes[2]]
    report = AttemptRecord(status=TaskStatus.FAILED, attempt=0, reason="RuntimeError: node 2 fails", finished_at=25.0)
    out = sim.feed(TaskExited(nodes[2], 0, TaskExit(TaskStatus.FAILED, 1, "exited with code 1"), report, 32.0))
    writes = written(out)
    assert writes[nodes[2]].reason == "RuntimeError: node 2 fails"
    assert [writes[k].reason for k in nodes[:2]] == ["node 2 of the gang failed: RuntimeError: node 2 fails"] * 2


def test_a_node_the_platform_says_died_first_is_the_culprit_though_a_peer_reported_before_its_exit_came():
    """Node 0 is OOM-killed at 8 (no report; its exit waits for its log until 12); node 1, losing it, raises
    at 10 and is reported at 11: the platform's time for node 0's end puts it first."""
    sim, nodes = started_gang()
    report = AttemptRecord(
        status=TaskStatus.FAILED, attempt=0, reason="ConnectionError: node 0 is gone", finished_at=10.0
    )
    out = sim.feed(TaskExited(nodes[1], 0, TaskExit(TaskStatus.FAILED, 1, "exited with code 1"), report, 11.0))
    cancel = next(i.reason for i in out if isinstance(i, Cancel))
    oom = TaskExit(TaskStatus.OOM, 137, "OOMKilled: the container went over its memory limit", ended_at=8.0)
    sim.feed(TaskExited(nodes[0], 0, oom, None, 12.0))
    out = sim.feed(TaskExited(nodes[2], 0, TaskExit(TaskStatus.CANCELLED, None, cancel), None, 13.0))
    writes = written(out)
    assert writes[nodes[0]].status is TaskStatus.OOM
    assert [writes[k].reason for k in nodes[1:]] == [
        "node 0 of the gang failed: OOMKilled: the container went over its memory limit"
    ] * 2
