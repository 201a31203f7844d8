"""The driver's spec writer (workbench.runtime_specs): the specs of the tasks one event starts are written
together, a failed write is that task's alone, and a remote task's inputs are staged once per blob."""

from __future__ import annotations

import threading

from workbench.datastore import FlowDatastore
from workbench.datastore.records import TaskSpecRecord
from workbench.errors import DatastoreError
from workbench.runtime_specs import SpecWrite, SpecWriter


def spec(task_id: str, settings=None) -> TaskSpecRecord:
    return TaskSpecRecord(
        flow="F", run_id="1", step="each", task_id=task_id, settings=settings or {"env": {"API_TOKEN": "s3cr3t"}}
    )


def test_a_batch_of_specs_is_written_on_several_threads_and_each_reads_back_redacted(tmp_path):
    ds = FlowDatastore(str(tmp_path / "ds"), "F")
    threads = set()
    real = ds.write_spec

    def write_spec(record):
        threads.add(threading.get_ident())
        real(record)

    ds.write_spec = write_spec  # type: ignore[method-assign]
    writer = SpecWriter(ds, None, threads=4)
    settings = {"env": {"API_TOKEN": "s3cr3t"}}
    try:
        assert writer.write([SpecWrite(spec(str(i), settings)) for i in range(40)]) == [None] * 40
    finally:
        writer.close()
    for i in range(40):
        back = ds.read_spec("1", "each", str(i), 0)
        assert back is not None and back.task_id == str(i)
        assert "s3cr3t" not in str(back.settings)  # what anyone reading the spec sees is redacted
    assert len(threads) > 1


def test_a_spec_that_cannot_be_written_fails_alone(tmp_path):
    ds = FlowDatastore(str(tmp_path / "ds"), "F")
    real = ds.write_spec

    def write_spec(record):
        if record.task_id == "3":
            raise DatastoreError("disk full while writing the spec of 3")
        real(record)

    ds.write_spec = write_spec  # type: ignore[method-assign]
    writer = SpecWriter(ds, None, threads=4)
    errors = writer.write([SpecWrite(spec(str(i))) for i in range(6)])
    writer.close()
    assert [str(e) if e else None for e in errors] == [
        None,
        None,
        None,
        "disk full while writing the spec of 3",
        None,
        None,
    ]
    assert ds.read_spec("1", "each", "3", 0) is None and ds.read_spec("1", "each", "5", 0) is not None


def test_inputs_of_staged_tasks_go_to_the_stage_once_per_blob(tmp_path):
    home = FlowDatastore(str(tmp_path / "home"), "F")
    stage = FlowDatastore(str(tmp_path / "stage"), "F")
    sha_a, _ = home.save_artifact([1, 2, 3])
    sha_b, _ = home.save_artifact("b")
    checks = []
    real_has = stage.has_artifact

    def has_artifact(sha):
        checks.append(sha)
        return real_has(sha)

    stage.has_artifact = has_artifact  # type: ignore[method-assign]
    writer = SpecWriter(home, stage, threads=4)
    batch = [SpecWrite(spec(str(i)), staged=True, input_shas=frozenset({sha_a, sha_b})) for i in range(50)]
    assert writer.write(batch) == [None] * 50
    assert writer.write([SpecWrite(spec("50"), staged=True, input_shas=frozenset({sha_a}))]) == [None]
    writer.close()
    assert sorted(checks) == sorted([sha_a, sha_b])  # not 101 lookups: a staged blob stays staged
    assert stage.load_artifact(sha_a) == [1, 2, 3] and stage.load_artifact(sha_b) == "b"
    assert stage.read_spec("1", "each", "49", 0) is not None and home.read_spec("1", "each", "49", 0) is None
