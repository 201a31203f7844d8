"""Liveness rules (pure, no processes but a dead pid) and the held-entry log."""

import subprocess
import sys
import time

from workbench.datastore import FlowDatastore
from workbench.datastore.records import RunRecord, RunStatus
from workbench.liveness import HEARTBEAT_STALE, HeldEntry, append_held, observed_status, read_held, this_host


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _record(**kw) -> RunRecord:
    return RunRecord(flow="F", run_id="1", status=RunStatus.RUNNING, **kw)


def test_fresh_heartbeat_on_another_host_is_running():
    r = observed_status(_record(heartbeat_at=time.time(), runtime_pid=1, runtime_host="elsewhere"))
    assert r.status is RunStatus.RUNNING


def test_stale_heartbeat_is_crashed():
    r = observed_status(
        _record(heartbeat_at=time.time() - HEARTBEAT_STALE - 5, runtime_pid=1, runtime_host="elsewhere")
    )
    assert r.status is RunStatus.CRASHED and "no heartbeat" in r.message


def test_dead_pid_on_this_host_is_crashed_at_once():
    r = observed_status(_record(heartbeat_at=time.time(), runtime_pid=_dead_pid(), runtime_host=this_host()))
    assert r.status is RunStatus.CRASHED and "is gone" in r.message and "workbench cancel 1" in r.message


def test_record_without_heartbeat_and_finished_runs_are_left_alone():
    assert observed_status(_record()).status is RunStatus.RUNNING  # written before heartbeats: cannot tell
    done = RunRecord(
        flow="F",
        run_id="1",
        status=RunStatus.SUCCEEDED,
        heartbeat_at=0,
        runtime_pid=_dead_pid(),
        runtime_host=this_host(),
    )
    assert observed_status(done).status is RunStatus.SUCCEEDED


def test_crashed_is_what_every_reader_sees_but_never_written(tmp_path):
    ds = FlowDatastore(str(tmp_path), "F")
    ds.write_run(_record(heartbeat_at=time.time(), runtime_pid=_dead_pid(), runtime_host=this_host()))
    assert ds.read_run("1").status is RunStatus.CRASHED
    assert ds.read_run("1", observed=False).status is RunStatus.RUNNING
    assert '"running"' in (tmp_path / "F" / "runs" / "1" / "run.json").read_text()


def test_held_entries_round_trip_and_skip_damage(tmp_path):
    ds = FlowDatastore(str(tmp_path), "F")
    append_held(ds, "1", HeldEntry("batch", "F/1/a/2", 0, {"queue": "q", "job_name": "F-a-1-2-0"}))
    (tmp_path / "F" / "runs" / "1" / "held.jsonl").open("a").write("{not json\n")
    append_held(ds, "1", HeldEntry("docker", "F/1/b/3", 1))
    held = read_held(ds, "1")
    assert [(h.backend, h.pathspec, h.attempt) for h in held] == [("batch", "F/1/a/2", 0), ("docker", "F/1/b/3", 1)]
    assert held[0].ref == {"queue": "q", "job_name": "F-a-1-2-0"} and held[0].at > 0
    assert ds.list_steps("1") == []  # the held log is no step


def test_held_entries_of_one_event_are_one_append_and_one_upload(tmp_path):
    """The runtime records the tasks one event starts together: on S3 that is one upload of held.jsonl, not one
    per task (each a re-upload of the whole, growing file)."""
    ds = FlowDatastore(str(tmp_path), "F")
    calls = []
    append_text, flush = ds.storage.append_text, ds.storage.flush
    ds.storage.append_text = lambda key, text: (calls.append("append"), append_text(key, text))[1]
    ds.storage.flush = lambda key=None, **kw: (calls.append("flush"), flush(key))[1]
    entries = [HeldEntry("batch", f"F/1/each/{i}", 0, {"queue": "q", "job_name": f"F-each-{i}"}) for i in range(3)]
    append_held(ds, "1", *entries)
    assert calls == ["append", "flush"]
    assert [h.pathspec for h in read_held(ds, "1")] == ["F/1/each/0", "F/1/each/1", "F/1/each/2"]
