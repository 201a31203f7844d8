"""A foreach on AWS Batch as array jobs, end to end against moto's server (real containers on the local Docker
engine): every index's artifacts and logs come back as its own task, a failing index is retried alone (a
single job), and cancelling mid-array stops the whole array in one call and leaves nothing running."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.support.engine import containers_named  # noqa: E402
from tests.support.moto_server import aws, moto_server  # noqa: E402,F401  (fixtures)
from tests.support.remote_projects import ARRAY_FLOW, TEST_CREDENTIALS, batch_testbed, write_project  # noqa: E402

pytest.importorskip("boto3")

WIDTH = 50  # the figure: 50 children of one array, all started at once by moto


@pytest.fixture
def array_project(aws, tmp_path, monkeypatch):
    bed = batch_testbed(aws, monkeypatch, "arr-queue")

    def make(*, width: int, fail: int = -1, sleep: float = 0.0):
        monkeypatch.setenv("ARRAY_WIDTH", str(width))
        toml = bed.toml("arr") + textwrap.dedent(f'''
            [flows.ArrayFlow.steps.work]
            backend = "batch"
            cpu = 1
            memory = "256M"
            retries = 1
            env = {{ {TEST_CREDENTIALS}, ARRAY_FAIL = "{fail}", ARRAY_SLEEP = "{sleep}" }}
        ''')
        return write_project(tmp_path, monkeypatch, "array_flow.py", ARRAY_FLOW, toml)

    make.queue = bed.queue
    make.docker = bed.docker
    return make


def _runtime(config, events):
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    return Runtime(load_graph(str(config.root / "flows" / "array_flow.py")), config, sink=events.append)


def _submissions(aws, queue: str, run_id: str) -> list[dict]:
    """What was submitted for the run: array parents (with their size) and single jobs; children left out."""
    batch = aws.client("batch")
    ids = [j["jobId"] for j in aws.jobs(queue) if run_id in j["jobName"] and ":" not in j["jobId"]]
    out = []
    for i in range(0, len(ids), 100):
        out += batch.describe_jobs(jobs=ids[i : i + 100])["jobs"]
    return out


def _children(aws, parent: str) -> list[dict]:
    return aws.client("batch").list_jobs(arrayJobId=parent)["jobSummaryList"]


def test_foreach_is_one_array_job_and_a_failing_index_is_retried_alone(array_project, aws):
    from workbench import Flow

    config = array_project(width=WIDTH, fail=3)
    events = []
    rt = _runtime(config, events)
    t0 = time.time()
    result = rt.run()
    took = time.time() - t0
    warnings = [e.message for e in events if type(e).__name__ == "RunWarning"]
    assert result.status == "succeeded", (result.message, warnings)
    subs = _submissions(aws, array_project.queue, rt.run_id)
    arrays = [s for s in subs if s.get("arrayProperties")]
    singles = [s for s in subs if not s.get("arrayProperties")]
    # the foreach went out as ONE array job of WIDTH children; the failed index came back alone, as a single job
    assert [a["arrayProperties"]["size"] for a in arrays] == [WIDTH], subs
    assert len(singles) == 1 and singles[0]["jobName"].endswith("-1"), singles  # attempt 1 of one task
    children = _children(aws, arrays[0]["jobId"])
    assert sorted(c["status"] for c in children).count("SUCCEEDED") == WIDTH - 1
    print(f"\n{WIDTH}-wide foreach on Batch (moto) as one array job: {took:.1f}s")

    run = Flow("ArrayFlow")[rt.run_id]
    assert run.successful and run["join"].task.data.total == sum(i * 10 for i in range(WIDTH))
    tasks = sorted(run["work"], key=lambda t: t.index)
    assert [t.index for t in tasks] == list(range(WIDTH))
    parent = arrays[0]["jobId"]
    for t in tasks:
        assert t.successful and t.data.out == t.index * 10
        lines = [text for _, _, text in t.logs()]
        if t.index == 3:
            attempts = t._doc["attempts"]
            assert [a["status"] for a in attempts] == ["retrying", "succeeded"], attempts
            assert "index 3 fails on its first attempt" in attempts[0]["reason"]
            assert attempts[0]["usage"]["batch_job_id"] == f"{parent}:3"  # attempt 0 was index 3 of the array
            assert attempts[1]["usage"]["batch_job_id"] == singles[0]["jobId"]
            assert any(line == f"index 3 job {singles[0]['jobId']}" for line in lines), lines
        else:
            # its own log, from its own child job <parent>:<index>
            assert f"index {t.index} job {parent}:{t.index}" in lines, lines
            assert t.usage["batch_job_id"] == f"{parent}:{t.index}"


def test_cancel_mid_array_stops_the_whole_array_and_leaves_nothing(array_project, aws):
    config = array_project(width=6, sleep=120)
    events = []
    rt = _runtime(config, events)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", rt.run()))
    thread.start()
    try:
        deadline = time.time() + 120
        arrays = []
        while time.time() < deadline:
            arrays = [s for s in _submissions(aws, array_project.queue, rt.run_id) if s.get("arrayProperties")]
            if arrays and sum(c["status"] == "RUNNING" for c in _children(aws, arrays[0]["jobId"])) == 6:
                break
            time.sleep(0.5)
        assert arrays, "no array job was submitted"
        batch_backend = next(b for b in _backends(rt) if b.name == "batch")
        before = batch_backend.calls["terminate_job"]
        rt.cancel("stop it")
    finally:
        thread.join(120)
    result = box["result"]
    assert result.status == "cancelled"
    # the run's cancel asked for the whole array in one call (moto then needs each child stopped as well: it does
    # not pass a parent's termination on to the children, as AWS does; see batch.ARRAY_STOP_FALLBACK)
    terminated = batch_backend.calls["terminate_job"] - before
    assert terminated in (1, 1 + 6), terminated
    children = _children(aws, arrays[0]["jobId"])
    assert all(c["status"] == "FAILED" for c in children), children
    containers = [c.name for c in containers_named(array_project.docker, arrays[0]["jobId"])]
    assert containers == []
    finished = [e for e in events if type(e).__name__ == "TaskFinished" and e.step == "work"]
    assert len(finished) == 6 and all(e.status == "cancelled" for e in finished)


def _backends(rt):
    """The runtime's backend instances (the driver keeps them by name)."""
    found = getattr(rt, "_backends", None) or getattr(getattr(rt, "driver", None), "backends", None) or {}
    return list(found.values())
