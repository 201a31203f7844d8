"""Issue 12's graph semantics: switch, recursive switch, @parallel gangs, @catch of tasks that never ran,
@retry timing. Graph rules and scheduler decisions (events in, instructions out) here; the same flows end
to end through the CLI in tests/test_switch_e2e.py."""

import textwrap

import pytest

from workbench.backends.base import TaskExit
from workbench.datastore.records import AttemptRecord, TaskRecord, TaskStatus
from workbench.graph import build_graph
from workbench.scheduler import Cancel, FinishRun, Submit, TaskExited, Tick, WriteTask, summary
from workbench.settings import StepSettings

from .test_scheduler import Sim

HEAD = "from workbench import FlowSpec, step, parallel, catch, retry\nclass F(FlowSpec):\n"


def flow(body: str) -> str:
    return HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


def errors(body: str) -> list[str]:
    return [str(e) for e in build_graph("flow.py", source=flow(body)).errors]


SWITCH = """
@step
def start(self):
    self.next({"x": self.a, "y": self.b}, condition="pick")
@step
def a(self):
    self.next(self.end)
@step
def b(self):
    self.next(self.end)
@step
def end(self):
    pass
"""

LOOP = """
@step
def start(self):
    self.next(self.loop)
@step
def loop(self):
    self.next({"again": self.loop, "done": self.end}, condition="go")
@step
def end(self):
    pass
"""

SWITCH_IN_BRANCH = """
@step
def start(self):
    self.next(self.a, self.b)
@step
def a(self):
    self.next({"c": self.c, "d": self.d}, condition="pick")
@step
def b(self):
    self.next(self.join)
@step
def c(self):
    self.next(self.join)
@step
def d(self):
    self.next(self.join)
@step
def join(self, inputs):
    self.next(self.end)
@step
def end(self):
    pass
"""

LOOP_IN_FOREACH = """
@step
def start(self):
    self.next(self.body, foreach="items")
@step
def body(self):
    self.next({True: self.body, False: self.done}, condition="more")
@step
def done(self):
    self.next(self.join)
@step
def join(self, inputs):
    self.next(self.end)
@step
def end(self):
    pass
"""

GANG = """
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


# ------------------------------------------------------------------------------------------ the graph
def test_a_switch_is_parsed_with_its_cases_and_condition():
    graph = build_graph("flow.py", source=flow(SWITCH))
    assert graph.ok, graph.errors
    start = graph["start"]
    assert (start.kind, start.out, start.switch_cases, start.condition) == (
        "switch",
        ["a", "b"],
        {"x": "a", "y": "b"},
        "pick",
    )
    assert graph["end"].kind == "end" and sorted(graph["end"].in_steps) == ["a", "b"]  # not a join
    assert graph.to_dict()["steps"][0]["switch"] == {"x": "a", "y": "b"}


def test_a_recursive_switch_is_a_loop_metaflow_allows():
    graph = build_graph("flow.py", source=flow(LOOP))
    assert graph.ok, graph.errors
    assert graph["loop"].is_recursive and graph["loop"].in_steps == ["start"]
    assert build_graph("flow.py", source=flow(LOOP_IN_FOREACH)).ok
    assert build_graph("flow.py", source=flow(SWITCH_IN_BRANCH)).ok


@pytest.mark.parametrize(
    "body, message",
    [
        (SWITCH.replace('"y": self.b', '"y": self.a'), "step start is a switch but defines 1 transition"),
        (SWITCH.replace('condition="pick"', "condition=1"), "needs condition="),
        (SWITCH.replace('"x": self.a', "X: self.a"), "keys must be string or number literals, not X"),
        (SWITCH.replace('"x": self.a', '"x": a'), "goes to steps as self.<step>, not a"),
        # a loop back to an earlier step: Metaflow's lint refuses it too (only a switch onto itself loops)
        (LOOP.replace('"again": self.loop', '"again": self.start'), "makes a cycle"),
        (LOOP.replace("def loop(self):", "def loop(self, inputs):"), "both a join (it takes inputs) and a switch"),
        (
            SWITCH_IN_BRANCH.replace('"d": self.d', '"d": self.join').replace(
                "def b(self):\n    self.next(self.join)", "def b(self):\n    self.next(self.d)"
            ),
            "a conditional path cannot lead directly to a join",
        ),
        (SWITCH.replace("@step\ndef start", "@catch\n@step\ndef start"), "@catch is not supported in switch steps"),
        (GANG.replace("@parallel\n", ""), "has no @parallel decorator"),
        (GANG.replace("num_parallel=3", "num_parallel=0"), "num_parallel must be a whole number"),
        # Metaflow's lint reports the unjoined split first here too
        (GANG.replace("def join(self, inputs):", "def join(self):"), "join it first with a step that takes inputs"),
        (
            GANG.replace("self.next(self.train, num_parallel=3)", 'self.next(self.train, foreach="xs")'),
            "calls it without self.next(num_parallel=...)",
        ),
    ],
)
def test_switch_and_parallel_rules_name_the_step(body, message):
    found = errors(body)
    assert found and any(message in e for e in found), found
    assert all(e.startswith("flow.py:") for e in found)


def test_split_branches_meeting_in_a_plain_step_are_still_refused():
    body = SWITCH_IN_BRANCH.replace("def join(self, inputs):", "def join(self):")
    assert any("has 2 inputs" in e or "has 3 inputs" in e for e in errors(body))


# ------------------------------------------------------------------------------------------ scheduler
def switched(sim, key, case, artifacts=None):
    sub = sim.submitted[key]
    report = AttemptRecord(
        status=TaskStatus.SUCCEEDED, attempt=sub.spec.attempt, artifacts={"x": {"sha": f"sha-{key}"}}, switch_to=case
    )
    return sim.feed(TaskExited(key, sub.spec.attempt, TaskExit(TaskStatus.SUCCEEDED, 0), report, sim.now))


def submits(out):
    return [(i.spec.step, i.key) for i in out if isinstance(i, Submit)]


def test_only_the_chosen_case_runs_and_the_record_says_which():
    sim = Sim(flow(SWITCH))
    sim.start()
    assert sim.submitted["1"].spec.kind == "switch" and sim.submitted["1"].spec.next == ["a", "b"]
    out = switched(sim, "1", "b")
    record = [i.record for i in out if isinstance(i, WriteTask)][0]
    assert record.switch_to == "b"
    assert submits(out) == [("b", "2")]
    out = sim.ok("2")
    assert submits(out) == [("end", "3")]
    assert sim.submitted["3"].spec.inputs[0].step == "b"
    assert summary(sim.ok("3"))[-1] == ("finish", "succeeded", "")


def test_a_switch_that_took_no_case_fails_the_run():
    sim = Sim(flow(SWITCH))
    sim.start()
    out = switched(sim, "1", None)
    assert summary(out)[-1][:2] == ("finish", "failed")
    assert [i.record.reason for i in out if isinstance(i, WriteTask)] == ["switch step start took no case"]


def test_a_join_after_a_switch_inside_a_branch_waits_for_one_input_per_branch():
    sim = Sim(flow(SWITCH_IN_BRANCH))
    sim.start()
    sim.ok("1")
    a, b = sim.key_of("a"), sim.key_of("b")
    assert submits(switched(sim, a, "d")) == [("d", "4")]
    assert submits(sim.ok("4")) == []  # d is branch a's input; b has not finished
    out = sim.ok(b)
    assert submits(out) == [("join", "5")]
    assert [i.step for i in sim.submitted["5"].spec.inputs] == ["d", "b"]  # in the split's branch order


def test_a_recursive_switch_makes_a_new_task_per_pass():
    sim = Sim(flow(LOOP))
    sim.start()
    sim.ok("1")
    keys = ["2"]
    for _ in range(3):
        out = switched(sim, keys[-1], "loop")
        keys.append(submits(out)[0][1])
    records = [i.record for i in out if isinstance(i, WriteTask)]
    assert records[0].iteration == 2 and len(set(keys)) == 4
    out = switched(sim, keys[-1], "end")
    assert submits(out) == [("end", "6")]
    assert [i.record.iteration for i in out if isinstance(i, WriteTask)] == [3]


def test_loops_inside_a_foreach_run_per_item_and_join_by_index():
    sim = Sim(flow(LOOP_IN_FOREACH), max_workers=10)
    sim.start()
    sim.ok("1", ["items"], splits=2, var="items")
    b0, b1 = sim.key_of("body", (0,)), sim.key_of("body", (1,))
    ((_, b0_next),) = submits(switched(sim, b0, "body"))
    assert sim.submitted[b0_next].spec.foreach_stack[-1]["index"] == 0
    ((_, d1),) = submits(switched(sim, b1, "done"))
    ((_, d0),) = submits(switched(sim, b0_next, "done"))
    assert submits(sim.ok(d1)) == []
    out = sim.ok(d0)
    ((_, join),) = submits(out)
    assert [i.foreach_stack[-1]["index"] for i in sim.submitted[join].spec.inputs] == [0, 1]


def test_resume_clones_the_good_passes_and_runs_from_the_failed_one():
    def origin(step, task_id, iteration, switch_to=None):
        return TaskRecord(
            flow="F",
            run_id="1",
            step=step,
            task_id=task_id,
            pathspec=f"F/1/{step}/{task_id}",
            status=TaskStatus.SUCCEEDED,
            artifacts={"count": {"sha": f"c{task_id}"}},
            iteration=iteration,
            switch_to=switch_to,
        )

    tasks = [origin("start", "1", 0), origin("loop", "2", 0, "loop"), origin("loop", "3", 1, "loop")]
    sim = Sim(flow(LOOP), origin_run_id="1", origin_tasks=tasks)
    out = sim.start()
    cloned = [(i.record.step, i.record.iteration, i.record.cloned_from) for i in out if isinstance(i, WriteTask)]
    assert cloned == [("start", 0, "F/1/start/1"), ("loop", 0, "F/1/loop/2"), ("loop", 1, "F/1/loop/3")]
    ((step, key),) = submits(out)
    assert step == "loop" and sim.submitted[key].spec.inputs[0].pathspec == "F/9/loop/3"
    out = switched(sim, key, "end")
    assert [i.record.iteration for i in out if isinstance(i, WriteTask)] == [2]


def test_a_gang_starts_together_even_past_max_workers_and_joins_all_nodes():
    sim = Sim(flow(GANG), max_workers=2)
    sim.start()
    out = sim.ok("1")
    assert submits(out) == [("train", "2"), ("train", "3"), ("train", "4")]
    infos = [sim.submitted[k].spec.parallel for k in ("2", "3", "4")]
    assert [(p["node_index"], p["num_nodes"], p["control_task_id"]) for p in infos] == [
        (0, 3, "2"),
        (1, 3, "2"),
        (2, 3, "2"),
    ]
    assert len({p["gang"] for p in infos}) == 1
    assert [i for i in sim.ok("3") if isinstance(i, WriteTask)] == []  # held until the gang has answered
    sim.ok("2")
    out = sim.ok("4")
    assert [i.record.task_id for i in out if isinstance(i, WriteTask)] == ["2", "3", "4"]
    ((step, key),) = submits(out)
    assert step == "join" and [i.foreach_stack[-1]["index"] for i in sim.submitted[key].spec.inputs] == [0, 1, 2]


def test_one_node_failing_cancels_the_others_and_fails_the_gang():
    sim = Sim(flow(GANG))
    sim.start()
    sim.ok("1")
    out = sim.fail("3")
    assert [(i.key, i.reason) for i in out if isinstance(i, Cancel)] == [
        ("2", "node 1 of the gang failed: ValueError: bad"),
        ("4", "node 1 of the gang failed: ValueError: bad"),
    ]
    assert [i for i in out if isinstance(i, WriteTask)] == []
    out = sim.feed(TaskExited("2", 0, TaskExit(TaskStatus.CANCELLED, None, "cancelled"), None, 0.0))
    out += sim.ok("4")  # a node that finished anyway is half a gang's result: it fails with the gang
    records = {i.record.task_id: i.record for i in out if isinstance(i, WriteTask)}
    assert {k: r.status for k, r in records.items()} == {"2": "failed", "3": "failed", "4": "failed"}
    assert records["3"].reason == "ValueError: bad"
    assert records["4"].reason == records["2"].reason == "node 1 of the gang failed: ValueError: bad"
    assert submits(out) == [] and out[-1].status == "failed"


def test_a_failed_gang_is_retried_whole():
    sim = Sim(flow(GANG), settings={"train": StepSettings(retries=1)})
    sim.start()
    sim.ok("1")
    sim.fail("2")
    sim.fail("3")
    out = sim.fail("4")
    assert submits(out) == [("train", "2"), ("train", "3"), ("train", "4")]
    assert {sim.submitted[k].spec.attempt for k in ("2", "3", "4")} == {1}


def test_catch_of_a_task_that_never_started_runs_a_local_fallback_attempt():
    sim = Sim(
        flow(
            LOOP.replace('self.next({"again": self.loop, "done": self.end}, condition="go")', "self.next(self.end)")
            .replace("def loop", "def a")
            .replace("self.next(self.loop)", "self.next(self.a)")
        ),
        settings={"a": StepSettings(backend="docker", image="nope:1", gpu=1, catch=True, catch_var="err")},
    )
    sim.start()
    sim.ok("1")
    out = sim.feed(TaskExited("2", 0, TaskExit(TaskStatus.FAILED, 125, "image nope:1 not found"), None, 0.0))
    assert [i for i in out if isinstance(i, WriteTask)] == []
    (sub,) = [i for i in out if isinstance(i, Submit)]
    assert (sub.backend, sub.spec.attempt, sub.spec.catch_fallback) == ("local", 1, "image nope:1 not found")
    assert sub.settings.gpu == 0 and sub.settings.image is None


def test_without_catch_a_task_that_never_started_fails_the_run():
    sim = Sim(flow(LOOP))
    sim.start()
    out = sim.feed(TaskExited("1", 0, TaskExit(TaskStatus.FAILED, 125, "image not found"), None, 0.0))
    assert isinstance(out[-1], FinishRun) and out[-1].status == "failed"


def test_the_tui_dag_marks_the_case_taken_and_the_loop():
    from pathlib import Path

    from workbench.tui.dag_layout import layout

    graph = build_graph(Path(__file__).parent / "flows" / "switches.py")
    picture = layout(graph, {"start": "succeeded", "skip_path": "succeeded", "loop": "running"}, counts={"loop": 4})
    text = "\n".join(picture.lines)
    assert "⊘ process_branch" in text and "✔ skip_path" in text  # the case not taken is drawn as such
    assert "loop ◇↻ ×4" in text
    x_skip = picture.boxes["skip_path"][0] + picture.boxes["skip_path"][2] // 2
    gap = picture.lines[picture.boxes["skip_path"][1] - 2]  # the edge row above skip_path
    assert "[$success]" in gap and "[$success]" not in picture.lines[picture.boxes["p1"][1] - 2]
    assert x_skip > picture.boxes["process_branch"][0]


def test_retry_goes_again_at_once_unless_minutes_between_retries_is_given(project):
    from workbench.config import load_config
    from workbench.settings import effective_settings

    body = LOOP.replace('self.next({"again": self.loop, "done": self.end}, condition="go")', "self.next(self.end)")
    at_once = body.replace("@step\ndef loop", "@retry(times=2)\n@step\ndef loop")
    later = body.replace("@step\ndef loop", "@retry(times=2, minutes_between_retries=1)\n@step\ndef loop")
    config = load_config()
    for source, delay in ((at_once, 0.0), (later, 60.0)):
        graph = build_graph("flow.py", source=flow(source))
        assert graph.ok, graph.errors
        settings = effective_settings(graph, "loop", config)
        assert (settings.retries, settings.retry_delay) == (2, delay)
        sim = Sim(flow(source), settings={"loop": settings})
        sim.start()
        sim.ok("1")
        out = sim.fail("2")
        if delay:
            assert submits(out) == [] and sim.s.wake_at == 60.0
            assert submits(sim.feed(Tick(60.0))) == [("loop", "2")]
        else:
            assert submits(out) == [("loop", "2")]
        assert sim.submitted["2"].spec.attempt == 1


def test_a_cancel_while_a_gang_runs_finishes_the_run():
    from workbench.scheduler import CancelRequested

    sim = Sim(flow(GANG))
    sim.start()
    sim.ok("1")
    out = sim.feed(CancelRequested("stop", 0.0))
    assert sorted(i.key for i in out if isinstance(i, Cancel)) == ["2", "3", "4"]
    sim.ok("2")
    sim.feed(TaskExited("3", 0, TaskExit(TaskStatus.CANCELLED, None, "stop"), None, 0.0))
    out = sim.feed(TaskExited("4", 0, TaskExit(TaskStatus.CANCELLED, None, "stop"), None, 0.0))
    assert isinstance(out[-1], FinishRun) and out[-1].status == "cancelled"
