"""One contract, every backend: each test body runs once per backend in conftest.BACKENDS (local processes,
the Docker engine, AWS Batch on moto's server with real containers, Kubernetes on the API emulator).

The flows are in flows/contract_flows.py; ``start`` and ``end`` run locally, the steps between on the backend
under test. After every run the harness checks that each submitted attempt got exactly one ``on_exit`` and no
log line after it, and that nothing of the run is left in the engine (processes, containers, jobs, pods).
What a backend cannot do is declared once, with the reason, on its class in conftest.py.
"""

from __future__ import annotations

import threading
import time

import pytest

from .harness import FLOW_FILE, word

CANCEL_REASON = "cancelled by the contract test"


def _started_on(outcome, step: str) -> set[str]:
    return {e.backend for e in outcome.of("TaskStarted", step)}


@pytest.fixture(scope="module")
def hello(contract):
    """One run of HelloFlow per backend, shared by the success and the two log tests."""
    return contract.run("HelloFlow")


def test_success(contract, hello):
    assert hello.status == "succeeded", hello.result.message
    assert _started_on(hello, "work") == {contract.name}
    assert _started_on(hello, "start") == _started_on(hello, "end") == {"local"}
    work = hello.finished("work")
    assert (word(work.status), work.exit_code) == ("succeeded", 0)
    # the step's own output (remote backends add a line of their own: "workbench: code package ... unpacked")
    assert [e.text for e in hello.of("LogLine", "work") if not e.text.startswith("workbench: ")] == [
        "hello from work 21",
        "tick 0",
        "tick 1",
        "tick 2",
    ]
    run = contract.stored("HelloFlow", hello.run_id)
    assert run.successful
    assert run["work"].task.data.y == 42 and run["end"].task.data.z == 43
    assert "hello from work 21" in run["work"].task.stdout


def test_failure_says_exit_code_and_reason(contract):
    outcome = contract.run("FailFlow")
    assert outcome.status == "failed"
    crash, raises = outcome.finished("crash"), outcome.finished("raises")
    assert (word(crash.status), crash.exit_code) == ("failed", 7)
    assert "exited with code 7" in crash.reason, crash.reason
    assert (word(raises.status), raises.exit_code) == ("failed", 1)
    assert raises.reason == "ValueError: bad value 42"
    assert "ValueError: bad value 42" in raises.traceback
    assert not outcome.of("TaskStarted", "join") and not outcome.of("TaskStarted", "end")
    run = contract.stored("FailFlow", outcome.run_id)
    assert word(run["crash"].task.status) == "failed"
    assert "about to exit with 7" in run["crash"].task.stdout  # the output before the exit was kept
    assert "join" not in run


def test_timeout(contract):
    outcome = contract.run("SleepyFlow")
    assert outcome.status == "failed"
    assert outcome.took < 20, f"a 2 s @timeout took {outcome.took:.1f}s to end the run"
    work = outcome.finished("work")
    assert word(work.status) == "timeout", work.reason
    assert "timed out after 2s" in work.reason and work.exit_code == 3
    assert word(contract.task("SleepyFlow", outcome.run_id, "work").status) == "timeout"


def test_out_of_memory(contract):
    if contract.backend.oom:
        pytest.skip(contract.backend.oom)
    outcome = contract.run("OomFlow")
    assert outcome.status == "failed"
    work = outcome.finished("work")
    assert (word(work.status), work.exit_code) == ("oom", 137), work.reason
    for words in contract.backend.oom_words:
        assert words in work.reason, work.reason
    assert word(contract.task("OomFlow", outcome.run_id, "work").status) == "oom"


def test_cancel_mid_run_leaves_nothing(contract):
    """Two running tasks; Runtime.cancel; the run ends soon, both tasks say cancelled, and the harness finds no
    process, container, Batch job or Kubernetes Job/pod of the run afterwards."""
    seen: dict = {}

    def cancel_when_both_run(rt, timed):
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                started = [e.run_id for _, e in list(timed) if type(e).__name__ == "RunStarted"]
                if started:
                    seen["running"] = contract.wait_running(started[0], "wait", 2)
                    break
                time.sleep(0.05)
        finally:  # whatever happened, the run must not sleep on for two minutes
            seen["cancelled_at"] = time.time()
            rt.cancel(CANCEL_REASON)

    outcome = contract.run("CancelFlow", max_workers=2, during=cancel_when_both_run)
    assert seen.get("running") == 2, f"{seen.get('running')} of the 2 tasks were seen running"
    assert outcome.status == "cancelled"
    returned_after = outcome.timed[-1][0] - seen["cancelled_at"]
    assert returned_after < 15, f"the run took {returned_after:.1f}s to end after cancel"
    waits = outcome.of("TaskFinished", "wait")
    assert len(waits) == 2 and {word(e.status) for e in waits} == {"cancelled"}
    assert all(CANCEL_REASON in e.reason for e in waits), [e.reason for e in waits]
    assert not outcome.of("TaskStarted", "join")


def test_logs_arrive_in_order(contract, hello):
    ticks = [(e.stream, e.text) for e in hello.of("LogLine", "work") if e.text.startswith("tick")]
    assert ticks == [("stdout", "tick 0"), ("stdout", "tick 1"), ("stdout", "tick 2")]
    stored = contract.task("HelloFlow", hello.run_id, "work").stdout.splitlines()
    assert [line for line in stored if line.startswith("tick")] == ["tick 0", "tick 1", "tick 2"]


def test_logs_arrive_before_the_task_ends(contract, hello):
    if contract.backend.live_logs:
        pytest.skip(contract.backend.live_logs)
    arrived = {e.text: t for t, e in hello.timed if type(e).__name__ == "LogLine" and e.text.startswith("tick")}
    ended = next(t for t, e in hello.timed if type(e).__name__ == "TaskFinished" and e.step == "work")
    assert ended - arrived["tick 0"] > 1.0, "the first line arrived only when the task ended"
    assert arrived["tick 1"] < ended


def _artifacts(contract, flow: str, run_id: str) -> dict:
    """(step, foreach index) -> {artifact: sha256} for every task of the run, read through the client API."""
    return {
        (step.name, task.index): {name: a["sha"] for name, a in task.artifacts.items()}
        for step in contract.stored(flow, run_id)
        for task in step
    }


_REFERENCE: dict = {}  # ShapeFlow's artifacts from the first local run of the session


def test_artifacts_are_identical_across_backends(contract):
    """ShapeFlow here and on the local backend: the same sha256 per artifact per task. The reference is the
    session's first local run of it (the local backend's own test runs it twice, in one project)."""
    here = contract.run("ShapeFlow", params={"alpha": "3"})
    assert here.status == "succeeded", here.result.message
    assert _started_on(here, "each") == _started_on(here, "gather") == {contract.name}
    ours = _artifacts(contract, "ShapeFlow", here.run_id)
    if not _REFERENCE or contract.name == "local":
        reference = contract.run("ShapeFlow", params={"alpha": "3"}, backend="local")
        assert reference.status == "succeeded", reference.result.message
        assert {e.backend for e in reference.of("TaskStarted")} == {"local"}
        _REFERENCE.update(_artifacts(contract, "ShapeFlow", reference.run_id))
    assert sorted(ours) == [("each", 0), ("each", 1), ("end", None), ("gather", None), ("start", None)]
    assert ours == _REFERENCE
    assert contract.stored("ShapeFlow", here.run_id).data.summary == {"words": ["AAA", "BBB"], "total": 24.0}


def test_on_exit_once_per_attempt_with_a_retry(contract):
    outcome = contract.run("RetryFlow")
    assert outcome.status == "succeeded", outcome.result.message
    attempts = {a.ref.rsplit("/", 1)[1]: a for a in contract.ledger.of_run(outcome.run_id) if "/work/" in a.ref}
    assert sorted(attempts) == ["0", "1"]
    assert [word(e.status) for a in (attempts["0"], attempts["1"]) for e in a.exits] == ["failed", "succeeded"]
    assert len(outcome.of("TaskRetrying", "work")) == 1
    assert contract.task("RetryFlow", outcome.run_id, "work").data.attempt_seen == 1


def test_on_exit_exactly_once_when_submit_is_driven_directly(contract):
    """backend.submit without the runtime: two attempts whose task spec was never written. Each task fails on
    its own ("no task spec"), and each callback pair hears of its own attempt only: on_exit once, logs first."""
    from workbench.backends import RunContext, TaskSpec, create_backend
    from workbench.datastore import FlowDatastore, new_run_id
    from workbench.settings import effective_settings

    config, graph = contract.config, contract.graph("HelloFlow")
    run_id = new_run_id()
    ds = FlowDatastore(config.datastore_url, "HelloFlow")
    root = str(contract.root.resolve())
    ctx = RunContext(
        flow="HelloFlow",
        run_id=run_id,
        graph=graph,
        config=config,
        datastore=ds,
        project_root=root,
        flow_file=FLOW_FILE,
        class_name="HelloFlow",
    )
    backend = create_backend(contract.name, config)
    settings = effective_settings(graph, "work", config)
    calls: dict[str, list] = {"1": [], "2": []}
    both = threading.Event()

    def callbacks(task_id: str):
        def on_log(stream, text, ts):
            calls[task_id].append(("log", text))

        def on_exit(result):
            calls[task_id].append(("exit", result))
            if all(any(k == "exit" for k, _ in c) for c in calls.values()):
                both.set()

        return on_log, on_exit

    backend.start_run(ctx)
    try:
        for task_id in calls:
            labels = {
                "workbench.flow": "HelloFlow",
                "workbench.run": run_id,
                "workbench.step": "work",
                "workbench.task": task_id,
                "workbench.project": contract.backend.project_name,
            }
            spec = TaskSpec(
                flow="HelloFlow",
                run_id=run_id,
                step="work",
                task_id=task_id,
                attempt=0,
                settings=settings,
                datastore_url=ds.url,
                project_root=root,
                flow_file=FLOW_FILE,
                class_name="HelloFlow",
                labels=labels,
            )
            backend.submit(spec, *callbacks(task_id))
        assert both.wait(90), f"not every attempt ended: {calls}"
        time.sleep(1.0)  # room for a second on_exit, were there one
    finally:
        backend.end_run(ctx)
    for task_id, got in calls.items():
        kinds = [k for k, _ in got]
        assert kinds.count("exit") == 1 and kinds[-1] == "exit", (task_id, got)
        (result,) = [p for k, p in got if k == "exit"]
        assert (word(result.status), result.exit_code) == ("failed", 1), result
        text = "\n".join(p for k, p in got if k == "log")
        assert f"no task spec for HelloFlow/{run_id}/work/{task_id}/0" in text, got
    deadline = time.time() + contract.backend.cleanup_grace
    while contract.backend.leftovers(run_id, []) and time.time() < deadline:
        time.sleep(0.3)
    assert contract.backend.leftovers(run_id, []) == []
