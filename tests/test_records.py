"""Typed records read run directories written before they existed (tests/fixtures/legacy_project, written
by the runtime as of commit 642e91d), and write them back without losing a key."""

import json
import shutil
from pathlib import Path

import pytest

from workbench.client import Flow, namespace
from workbench.config import load_config
from workbench.datastore import FlowDatastore
from workbench.datastore.records import AttemptRecord, RunRecord, RunStatus, TaskRecord, TaskSpecRecord, TaskStatus
from workbench.graph import load_graph
from workbench.runtime import Runtime

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "legacy_project"
RUN = "1700000000000001"


@pytest.fixture
def legacy(tmp_path, monkeypatch):
    root = tmp_path / "legacy"
    shutil.copytree(FIXTURE, root)
    monkeypatch.chdir(root)
    monkeypatch.delenv("WORKBENCH_DATASTORE", raising=False)
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    return root, FlowDatastore(load_config().datastore_url, "LegacyFlow")


def test_legacy_run_directory_reads_as_typed_records(legacy):
    _, ds = legacy
    run = ds.read_run(RUN)
    assert isinstance(run, RunRecord) and run.status is RunStatus.SUCCEEDED and run.params == {"n": 2}
    assert run.backends == ["local"] and run.finished_at > run.started_at
    join = ds.read_task(RUN, "join", "4")
    assert isinstance(join, TaskRecord) and join.status is TaskStatus.SUCCEEDED and join.attempt == 1
    assert [a.status for a in join.attempts] == [TaskStatus.RETRYING, TaskStatus.SUCCEEDED]
    assert join.attempts[0].reason == "RuntimeError: first attempt fails" and join.attempts[1].usage["cpu_seconds"] >= 0
    assert join.parents == [f"LegacyFlow/{RUN}/work/2", f"LegacyFlow/{RUN}/work/3"]
    work = ds.read_task(RUN, "work", "3")
    assert work.stack_key == (("start", 1),) and work.foreach_stack[0]["num_splits"] == 2
    first = ds.read_attempt(RUN, "join", "4", 0)
    assert isinstance(first, AttemptRecord) and first.status is TaskStatus.FAILED
    assert first.error == {"type": "RuntimeError", "message": "first attempt fails"} and "Traceback" in first.traceback
    spec = ds.read_spec(RUN, "join", "4", 1)
    assert isinstance(spec, TaskSpecRecord) and spec.kind == "join" and spec.attempt == 1
    assert [i.step for i in spec.inputs] == ["work", "work"] and set(spec.params) == {"n"}
    assert [t for _, _, t in ds.read_log(RUN, "work", "3")] == ["working on 1"]


def test_every_legacy_document_round_trips_without_losing_a_key(legacy):
    _, ds = legacy
    run_dir = Path(ds.url.removeprefix("file://")) / "LegacyFlow" / "runs" / RUN
    kinds = {"run.json": RunRecord, "task.json": TaskRecord, "attempt-": AttemptRecord, "spec-": TaskSpecRecord}
    seen = 0
    for path in sorted(run_dir.rglob("*.json")):
        cls = next(c for prefix, c in kinds.items() if path.name.startswith(prefix))
        raw = json.loads(path.read_text())
        again = json.loads(json.dumps(cls.from_dict(raw).to_dict()))
        assert {k: v for k, v in again.items() if k in raw} == raw, path
        seen += 1
    assert seen == 18


def test_unknown_status_and_missing_fields_do_not_break_a_reader():
    task = TaskRecord.from_dict({"status": "exploded", "attempts": None, "something_new": 1})
    assert task.status is TaskStatus.ERROR and task.attempts == [] and task.to_dict()["something_new"] == 1
    assert task["something_new"] == 1 and task["status"] == "error"
    assert TaskStatus.TIMEOUT.is_terminal and not TaskStatus.RETRYING.is_terminal
    assert f"{TaskStatus.OOM}" == "oom" and json.dumps(TaskStatus.OOM) == '"oom"'


def test_the_client_and_a_resume_read_a_legacy_run(legacy):
    root, ds = legacy
    namespace(ds.url)
    run = Flow("LegacyFlow")[RUN]
    assert run.successful and run.data.total == 10
    join = run["join"].task
    assert join.successful and join.finished and join.index is None and join.usage
    graph = load_graph(root / "flows" / "legacy.py")
    rt = Runtime(graph, load_config(), origin_run_id=RUN, rerun_steps={"end"})
    result = rt.run()
    assert result.status == "succeeded", result.message
    cloned = rt.ds.read_task(rt.run_id, "join", "4")
    assert cloned.cloned_from == f"LegacyFlow/{RUN}/join/4" and cloned.attempt == 1
    assert rt.ds.read_task(rt.run_id, "end", "5").cloned_from is None
