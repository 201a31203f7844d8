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

from tests.support.engine import base_image, docker_client_or_skip  # noqa: E402
from tests.support.moto_server import aws, moto_server  # noqa: E402,F401  (fixtures)
from workbench.config import load_config  # noqa: E402

pytest.importorskip("boto3")

WIDTH = 20  # 50 containers at once are too many for this 2-core machine shared by other sessions; see README

FLOW = textwrap.dedent("""
    import os
    import time
    from workbench import FlowSpec, current, step

    class ArrayFlow(FlowSpec):
        @step
        def start(self):
            self.items = list(range(int(os.environ.get("ARRAY_WIDTH", "4"))))
            self.next(self.work, foreach="items")

        @step
        def work(self):
            if self.input == int(os.environ.get("ARRAY_FAIL", "-1")) and current.retry_count == 0:
                raise RuntimeError(f"index {self.input} fails on its first attempt")
            time.sleep(float(os.environ.get("ARRAY_SLEEP", "0")))
            print(f"index {self.input} job {os.environ.get('AWS_BATCH_JOB_ID')}", flush=True)
            self.out = self.input * 10
            self.next(self.join)

        @step
        def join(self, inputs):
            self.total = sum(i.out for i in inputs)
            self.next(self.end)

        @step
        def end(self):
            pass
""").lstrip()


@pytest.fixture
def array_project(aws, tmp_path, monkeypatch):
    client = docker_client_or_skip()
    image = base_image(client)
    bucket = aws.bucket()
    queue = aws.batch_queue(f"arr-{bucket[-8:]}")

    def make(*, width: int, fail: int = -1, sleep: float = 0.0):
        (tmp_path / "flows").mkdir(exist_ok=True)
        (tmp_path / "flows" / "array_flow.py").write_text(FLOW)
        (tmp_path / ".gitignore").write_text(".workbench/\n")
        env = (
            f'AWS_ACCESS_KEY_ID = "testing", AWS_SECRET_ACCESS_KEY = "testing", ARRAY_FAIL = "{fail}", '
            f'ARRAY_SLEEP = "{sleep}"'
        )
        (tmp_path / "workbench.toml").write_text(
            textwrap.dedent(f'''
            [project]
            name = "arr"

            [datastore]
            root = "s3://{bucket}/wb"
            endpoint_url = "{aws.endpoint}"
            region = "us-east-1"

            [batch]
            job_queue = "{queue}"
            image = "{image}"
            endpoint_url = "{aws.endpoint}"

            [flows.ArrayFlow.steps.work]
            backend = "batch"
            cpu = 1
            memory = "256M"
            retries = 1
            env = {{ {env} }}
        ''').lstrip()
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("ARRAY_WIDTH", str(width))
        for var in ("WORKBENCH_DATASTORE", "WORKBENCH_CONFIG"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("WORKBENCH_BATCH_POLL", "0.3")
        monkeypatch.setenv("WORKBENCH_BATCH_LOG_SETTLE", "0.5")
        return load_config(tmp_path)

    make.queue = queue
    make.docker = client
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
    containers = [c.name for c in array_project.docker.containers.list(all=True) if arrays[0]["jobId"] in c.name]
    assert containers == []
    finished = [e for e in events if type(e).__name__ == "TaskFinished" and e.step == "work"]
    assert len(finished) == 6 and all(e.status == "cancelled" for e in finished)


def _backends(rt):
    """The runtime's backend instances (the driver keeps them by name)."""
    found = getattr(rt, "_backends", None) or getattr(getattr(rt, "driver", None), "backends", None) or {}
    return list(found.values())
