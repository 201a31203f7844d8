"""The local runtime end to end: event order, fan-out and joins, retries, catch, timeout, resume, cancel."""

import threading
import time

import pytest

from workbench import events as ev
from workbench.client import Flow, namespace
from workbench.config import load_config
from workbench.datastore import FlowDatastore
from workbench.graph import load_graph
from workbench.parameters import resolve_parameters
from workbench.runtime import Runtime, resume_plan

from .conftest import copy_test_flow


@pytest.fixture(params=["pool", "spawn"])
def mode(request, monkeypatch):
    """Every test runs on the warm fork-server and on plain one-process-per-task."""
    monkeypatch.setenv("WORKBENCH_LOCAL_POOL", "1" if request.param == "pool" else "0")
    return request.param


def run(project, flow_file, params=None, **kw):
    graph = load_graph(project / "flows" / flow_file)
    config = load_config()
    events = []
    rt = Runtime(graph, config, params=resolve_parameters(graph.parameters, params or {}), sink=events.append, **kw)
    result = rt.run()
    return result, events, FlowDatastore(config.datastore_url, graph.name)


def finished(events):
    return {e.pathspec.split("/", 2)[2]: e for e in events if isinstance(e, ev.TaskFinished)}


def test_branches_nested_foreach_and_joins(project, mode):
    copy_test_flow(project, "branchy.py")
    result, events, ds = run(project, "branchy.py", {"scale": "3", "tag": "x"})
    assert result.status == "succeeded", result.message
    assert isinstance(events[0], ev.RunStarted) and isinstance(events[-1], ev.RunFinished)
    # every task starts before it finishes, and a step never starts before its inputs finished
    seen_done = set()
    for e in events:
        if isinstance(e, ev.TaskStarted):
            assert e.step == "start" or seen_done, e
        if isinstance(e, ev.TaskFinished):
            assert e.ok, (e.pathspec, e.reason, e.traceback)
            seen_done.add(e.step)
    steps = [e.step for e in events if isinstance(e, ev.TaskFinished)]
    assert steps.count("cell") == 5 and steps.count("double") == 5 and steps.count("row") == 2
    assert steps.index("fan_join") > max(i for i, s in enumerate(steps) if s == "row_join")
    namespace(ds.url)
    data = Flow("BranchyFlow").latest_run.data
    # value = x * 3, out = value*2 + value*3 = 15x; row sums: 15*(1+2), 15*(3+4+5)
    assert data.totals == [45, 180]
    assert data.paths == [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2]]
    assert data.sides == ["L", "R"] and data.shared == "same" and data.scale == 3
    logs = [e.text for e in events if isinstance(e, ev.LogLine)]
    assert any("tag=x" in t and "/right/" in t for t in logs)
    assert "totals [45, 180] scale 3" in logs


def test_retry_catch_environment_and_logs(project, mode):
    copy_test_flow(project, "behaviours.py")
    result, events, ds = run(project, "behaviours.py", {"mode": "flaky", "marker": str(project / "m")})
    assert result.status == "succeeded", result.message
    retries = [e for e in events if isinstance(e, ev.TaskRetrying)]
    assert len(retries) == 1 and "flaky failure" in retries[0].reason and retries[0].step == "work"
    namespace(ds.url)
    run_ = Flow("BehaviourFlow").latest_run
    assert run_["gather"].task.data.squares == [0, 1, 4, 9]
    assert run_["gather"].task.data.greeting == "hi"
    flaky = [t for t in run_["work"].tasks() if t.index == 1][0]
    assert flaky._doc.attempt == 1 and [a.status for a in flaky._doc.attempts] == ["retrying", "succeeded"]
    assert "squares [0, 1, 4, 9]" in run_["end"].task.stdout


def test_catch_stores_the_exception_and_goes_on(project, mode):
    copy_test_flow(project, "behaviours.py")
    result, events, ds = run(project, "behaviours.py", {"mode": "catch"})
    assert result.status == "succeeded", result.message
    namespace(ds.url)
    problem = Flow("BehaviourFlow").latest_run["risky"].task.data.problem
    assert problem.type == "builtins.KeyError" and "caught, not fatal" in problem.message


def test_failing_step_reports_traceback_and_which_step(project, mode):
    copy_test_flow(project, "behaviours.py")
    result, events, ds = run(project, "behaviours.py", {"mode": "fail"})
    assert result.status == "failed" and result.exit_code == 1
    assert result.message == "step work failed"
    failed = [e for e in events if isinstance(e, ev.TaskFinished) and not e.ok]
    assert len(failed) == 1 and failed[0].reason == "ValueError: item 2 is bad"
    assert 'raise ValueError("item 2 is bad")' in failed[0].traceback
    assert failed[0].attempt == 2  # @retry(times=2): three attempts
    stderr = [e.text for e in events if isinstance(e, ev.LogLine) and e.stream == "stderr"]
    assert any("ValueError: item 2 is bad" in t for t in stderr)
    assert not any(isinstance(e, ev.TaskStarted) and e.step == "gather" for e in events)


def test_unpicklable_artifact_names_the_attribute(project, mode):
    copy_test_flow(project, "behaviours.py")
    result, events, _ = run(project, "behaviours.py", {"mode": "unpicklable"})
    assert result.status == "failed"
    reasons = [e.reason for e in events if isinstance(e, ev.TaskFinished) and not e.ok]
    assert reasons and "artifact self.lock cannot be saved" in reasons[0]


def test_timeout_is_reported_as_timeout(project, mode):
    copy_test_flow(project, "behaviours.py")
    t0 = time.time()
    result, events, _ = run(project, "behaviours.py", {"mode": "timeout"})
    assert result.status == "failed" and time.time() - t0 < 20
    slow = [e for e in events if isinstance(e, ev.TaskFinished) and e.step == "slow"]
    assert slow[0].status == "timeout" and "timed out after 1s" in slow[0].reason


def test_resume_reuses_completed_tasks(project, mode):
    copy_test_flow(project, "behaviours.py")
    marker = project / "fixed"
    first, _, ds = run(project, "behaviours.py", {"mode": "resume", "marker": str(marker)})
    assert first.status == "failed"
    marker.touch()
    graph = load_graph(project / "flows" / "behaviours.py")
    result, events, _ = run(
        project, "behaviours.py", origin_run_id=first.run_id, rerun_steps=resume_plan(graph, ds, first.run_id, None)
    )
    assert result.status == "succeeded", result.message
    cloned = sorted(e.step for e in events if isinstance(e, ev.TaskCloned))
    ran = sorted(e.step for e in events if isinstance(e, ev.TaskStarted))
    assert cloned == ["start", "work", "work", "work"]  # the three work tasks that succeeded
    assert ran == ["end", "gather", "risky", "slow", "work"]
    namespace(ds.url)
    resumed = Flow("BehaviourFlow").latest_run
    assert resumed.origin_run_id == first.run_id
    assert resumed["gather"].task.data.squares == [0, 1, 4, 9]
    assert resumed["start"].task.data.mode == "resume"  # parameters come from the origin's start task
    # --from re-runs that step and everything after it
    result2, events2, _ = run(
        project,
        "behaviours.py",
        origin_run_id=result.run_id,
        rerun_steps=resume_plan(graph, ds, result.run_id, "risky"),
    )
    assert result2.status == "succeeded"
    assert sorted(e.step for e in events2 if isinstance(e, ev.TaskStarted)) == ["end", "risky", "slow"]
    # resuming from start re-runs everything, with the origin's parameter values
    result3, events3, _ = run(
        project,
        "behaviours.py",
        origin_run_id=result.run_id,
        rerun_steps=resume_plan(graph, ds, result.run_id, "start"),
    )
    assert result3.status == "succeeded" and not any(isinstance(e, ev.TaskCloned) for e in events3)
    assert Flow("BehaviourFlow")[result3.run_id]["start"].task.data.mode == "resume"


def test_cancel_stops_tasks_and_keeps_completed_artifacts(project, mode):
    copy_test_flow(project, "behaviours.py")
    graph = load_graph(project / "flows" / "behaviours.py")
    events = []
    rt = Runtime(
        graph, load_config(), params=resolve_parameters(graph.parameters, {"mode": "hang"}), sink=events.append
    )

    def cancel_when_hanging(e):
        events.append(e)
        if isinstance(e, ev.LogLine) and e.text == "hanging":
            threading.Thread(target=rt.cancel).start()

    rt.sink = cancel_when_hanging
    t0 = time.time()
    result = rt.run()
    assert result.status == "cancelled" and result.exit_code == 130
    assert time.time() - t0 < 20
    slow = [e for e in events if isinstance(e, ev.TaskFinished) and e.step == "slow"]
    assert slow and slow[0].status == "cancelled"
    ds = FlowDatastore(load_config().datastore_url, "BehaviourFlow")
    assert ds.read_run(result.run_id).status == "cancelled"
    # the completed steps stay usable: a resume from the cancelled run reuses them
    r2 = Runtime(graph, load_config(), sink=[].append, origin_run_id=result.run_id)
    res2 = r2.run()
    namespace(ds.url)
    assert Flow("BehaviourFlow")[res2.run_id]["gather"].task.data.squares == [0, 1, 4, 9]


def test_tasks_are_isolated_from_each_other(project, mode):
    (project / "flows" / "iso.py").write_text("""
from workbench import FlowSpec, step
import random

STATE = []


class IsoFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(6))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        STATE.append(self.input)
        self.seen = list(STATE)
        self.rand = random.random()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = [i.seen for i in inputs]
        self.rands = [i.rand for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
""")
    result, _, ds = run(project, "iso.py", max_workers=2)
    assert result.status == "succeeded"
    namespace(ds.url)
    data = Flow("IsoFlow").latest_run["join"].task.data
    assert data.seen == [[i] for i in range(6)], "module state leaked between tasks"
    assert len(set(data.rands)) == 6, "tasks shared a random state"


def test_a_datastore_error_while_submitting_fails_the_run_at_once(project, monkeypatch):
    """The driver turns an error it cannot carry on after into Abort: running tasks stop, the run fails
    with the error's one line, and it does not wait for a task that never started."""
    from workbench.errors import DatastoreError

    copy_test_flow(project, "branchy.py")
    real = FlowDatastore.write_spec

    def failing(self, record):
        if record.step == "fan":
            raise DatastoreError("disk full while writing the spec of fan")
        real(self, record)

    monkeypatch.setattr(FlowDatastore, "write_spec", failing)
    t0 = time.time()
    result, events, ds = run(project, "branchy.py")
    assert time.time() - t0 < 20
    assert (result.status, result.message) == ("failed", "disk full while writing the spec of fan")
    assert isinstance(events[-1], ev.RunFinished) and ds.read_run(result.run_id).status == "failed"
    assert "fan" not in [e.step for e in events if isinstance(e, ev.TaskFinished) and e.ok]


def test_a_runtime_given_some_parameters_gives_the_others_their_defaults(project):
    """Runtime(params=...) from Python (as the tests and an embedding program use it) with one parameter of
    two: the other takes its default, as `workbench run` gives it, instead of being left unset."""
    copy_test_flow(project, "branchy.py")
    graph = load_graph(project / "flows" / "branchy.py")
    config = load_config()
    result = Runtime(graph, config, params={"scale": 3}).run()
    assert result.status == "succeeded", result.message
    namespace(FlowDatastore(config.datastore_url, graph.name).url)
    data = Flow("BranchyFlow").latest_run.data
    assert (data.scale, data.tag) == (3, "t")
    assert data.totals == [45, 180]  # scale 3, as given
