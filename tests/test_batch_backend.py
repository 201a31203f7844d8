"""The AWS Batch backend: job definitions (pure), polling and warnings (fake client), and end to end against
moto's server, whose Batch runs each job as a real container on the local Docker engine. Failure with exit code
and reason, @timeout, cancel leaving no job or container and on_exit once per attempt are checked for every
backend by the contract suite (tests/contract); this file keeps what is Batch's own."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.support.moto_server import aws, moto_server  # noqa: E402,F401  (fixtures)
from tests.support.remote_projects import TEST_CREDENTIALS, batch_testbed, write_project  # noqa: E402
from workbench.backends.base import TaskSpec  # noqa: E402
from workbench.config import ProjectConfig, load_config  # noqa: E402
from workbench.settings import StepSettings  # noqa: E402
from workbench.units import parse_memory  # noqa: E402

pytest.importorskip("boto3")


def _spec(settings: StepSettings, **kw) -> TaskSpec:
    base = dict(
        flow="TrainFlow",
        run_id="1700000000000000",
        step="train",
        task_id="2",
        attempt=0,
        settings=settings,
        datastore_url="s3://bucket/prefix",
        project_root="/p",
        flow_file="flows/train.py",
        class_name="TrainFlow",
    )
    base.update(kw)
    return TaskSpec(**base)


# ---------------------------------------------------------------------------------------- pure parts


def test_job_definition_for_gpu1_cpu8_memory32g():
    from workbench.backends.batch import job_definition, task_command_template

    s = StepSettings(backend="batch", cpu=8, memory=parse_memory("32G"), gpu=1, timeout=30, env={"MODE": "fast"})
    command = task_command_template(_spec(s))
    body = job_definition(
        s,
        image="acct.dkr.ecr.us-east-1.amazonaws.com/train:1",
        command=command,
        environment={**s.env, "WORKBENCH_S3_ENDPOINT_URL": ""},
        job_role="arn:aws:iam::123456789012:role/wb-task",
    )
    assert body["type"] == "container"
    assert body["platformCapabilities"] == ["EC2"]
    props = body["containerProperties"]
    assert props["image"] == "acct.dkr.ecr.us-east-1.amazonaws.com/train:1"
    assert props["resourceRequirements"] == [
        {"type": "VCPU", "value": "8"},
        {"type": "MEMORY", "value": "32768"},
        {"type": "GPU", "value": "1"},
    ]
    assert props["environment"] == [
        {"name": "MODE", "value": "fast"},
        {"name": "WORKBENCH_S3_ENDPOINT_URL", "value": ""},
    ]
    assert props["jobRoleArn"] == "arn:aws:iam::123456789012:role/wb-task"
    assert body["timeout"] == {"attemptDurationSeconds": 60}  # 30 s + 30 s grace, Batch's 60 s minimum
    assert body["retryStrategy"] == {"attempts": 1}
    # the command: the bootstrap, then the task entrypoint with the run-specific values as parameters
    assert props["command"][:2] == ["python3", "-c"]
    assert props["command"][3:] == [
        "Ref::package",
        "python3",
        "-m",
        "workbench.task",
        "run",
        "--datastore",
        "Ref::datastore",
        "--root",
        "@ROOT@",
        "Ref::task",
    ]
    assert body["jobDefinitionName"].startswith("workbench-")
    assert body["tags"] == {"workbench.content": body["jobDefinitionName"][len("workbench-") :]}
    assert set(body) == {
        "jobDefinitionName",
        "type",
        "platformCapabilities",
        "containerProperties",
        "retryStrategy",
        "timeout",
        "tags",
    }
    assert set(props) == {"image", "command", "environment", "resourceRequirements", "jobRoleArn"}
    # same content -> same name (registered once); any change -> another definition
    again = job_definition(
        s, image=props["image"], command=command, environment=dict(env_pairs(props)), job_role=props["jobRoleArn"]
    )
    assert again["jobDefinitionName"] == body["jobDefinitionName"]
    other = job_definition(
        StepSettings(backend="batch", cpu=8, memory=32768, gpu=0), image=props["image"], command=command, environment={}
    )
    assert other["jobDefinitionName"] != body["jobDefinitionName"]
    assert "GPU" not in str(other["containerProperties"]["resourceRequirements"]) and "timeout" not in other
    # fractional CPUs round up to whole vCPUs; long timeouts keep the grace
    s2 = StepSettings(backend="batch", cpu=0.5, memory=512, timeout=3600)
    b2 = job_definition(s2, image="i", command=["x"], environment={})
    assert b2["containerProperties"]["resourceRequirements"][0] == {"type": "VCPU", "value": "1"}
    assert b2["timeout"] == {"attemptDurationSeconds": 3630}


def env_pairs(props):
    return [(e["name"], e["value"]) for e in props["environment"]]


class _FakeBatch:
    def __init__(self, statuses):
        self.statuses = statuses
        self.calls = []

    def describe_jobs(self, jobs):
        assert len(jobs) <= 100
        self.calls.append(len(jobs))
        out = [{"jobId": j, "status": self.statuses.get(j, "RUNNABLE"), "container": {}} for j in jobs]
        for d in out:
            if d["status"] in ("SUCCEEDED", "FAILED"):
                d["stoppedAt"] = 1_780_000_000_123  # epoch milliseconds, as Batch (and moto) say it
        return {"jobs": out}


def _backend_with_fake(statuses, runnable_warning=600):
    from workbench.backends.batch import BatchBackend, _Job

    config = ProjectConfig(root=Path("/tmp"))
    config.model.batch.runnable_warning = runnable_warning
    backend = BatchBackend(config)
    fake = _FakeBatch(statuses)
    backend._clients["batch"] = fake
    warnings, exits = [], []
    backend._ctx = SimpleNamespace(warn=warnings.append)
    s = StepSettings(backend="batch", cpu=4, memory=16384, gpu=2)
    jobs = []
    for i in range(250):
        job = _Job(_spec(s, task_id=str(i)), lambda *a: None, exits.append, "gpu-queue", job_id=f"job-{i}")
        backend._jobs[job.job_id] = job
        jobs.append(job)
    return backend, fake, jobs, warnings, exits


def test_status_is_polled_100_jobs_per_call():
    backend, fake, jobs, _, exits = _backend_with_fake({"job-7": "SUCCEEDED"})
    backend.poll_once(jobs)
    assert fake.calls == [100, 100, 50]
    assert len(exits) == 1 and exits[0].status == "succeeded"
    assert exits[0].ended_at == 1_780_000_000.123  # when it stopped: a gang's culprit is chosen by time


def test_runnable_too_long_warns_once_with_the_request():
    backend, fake, jobs, warnings, _ = _backend_with_fake({}, runnable_warning=60)
    backend.poll_once(jobs[:1])
    assert warnings == []
    jobs[0].runnable_since -= 61
    backend.poll_once(jobs[:1])
    backend.poll_once(jobs[:1])
    assert len(warnings) == 1
    w = warnings[0]
    assert "RUNNABLE for 61s" in w and "cpu=4 memory=16G gpu=2 on job queue gpu-queue" in w
    assert "no compute environment" in w


# ---------------------------------------------------------------------------------------- against moto

FLOW = textwrap.dedent("""
    import os
    import sys
    from workbench import FlowSpec, step

    class BatchDemoFlow(FlowSpec):
        @step
        def start(self):
            self.x = 21
            self.where_start = os.environ.get("AWS_BATCH_JOB_ID", "local")
            self.next(self.train)

        @step
        def train(self):
            print("hello from batch", self.x)
            print("to stderr", file=sys.stderr)
            self.y = self.x * 2
            self.where_train = os.environ.get("AWS_BATCH_JOB_ID", "local")
            self.next(self.end)

        @step
        def end(self):
            self.z = self.y + 1
""").lstrip()


@pytest.fixture
def batch_project(aws, tmp_path, monkeypatch):
    bed = batch_testbed(aws, monkeypatch)

    def make() -> ProjectConfig:
        toml = bed.toml("bt") + textwrap.dedent(f"""
            [flows.BatchDemoFlow.steps.train]
            backend = "batch"
            cpu = 1
            memory = "512M"
            env = {{ {TEST_CREDENTIALS} }}
        """)
        return write_project(tmp_path, monkeypatch, "batch_demo.py", FLOW, toml)

    make.docker = bed.docker
    make.queue = bed.queue
    make.bucket = bed.bucket
    return make


def _run(config, events=None, runtime_hook=None):
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    graph = load_graph(str(config.root / "flows" / "batch_demo.py"))
    rt = Runtime(graph, config, sink=(events.append if events is not None else None))
    if runtime_hook:
        runtime_hook(rt)
    return rt, rt.run()


def test_end_to_end_local_batch_local(batch_project, aws):
    config = batch_project()
    events = []
    t0 = time.perf_counter()
    rt, result = _run(config, events)
    took = time.perf_counter() - t0
    warnings = [e for e in events if type(e).__name__ == "RunWarning"]
    assert result.status == "succeeded", (result.message, warnings, list(rt.ds.read_log(rt.run_id, "train", "2")))
    print(f"\nbatch end to end (local -> batch -> local): {took:.1f}s")
    ds = rt.ds
    lines = [text for _, _, text in ds.read_log(rt.run_id, "train", "2")]
    assert "hello from batch 21" in lines and "to stderr" in lines
    assert any(type(e).__name__ == "LogLine" and e.text == "hello from batch 21" for e in events)
    # results through the client API, read from S3
    from workbench import Flow

    run = Flow("BatchDemoFlow").latest_run
    assert run.successful
    assert run["end"].task.data.z == 43
    assert run["train"].task.data.y == 42
    assert run["train"].task.data.where_train != "local"  # it ran in the Batch job's container
    assert run["start"].task.data.where_start == "local"
    # the package went up once, under the flow
    assert len(ds.storage.list("BatchDemoFlow/packages")) == 1
    # a second run reuses the job definition
    batch = aws.client("batch")
    n_defs = len(batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"])
    _, again = _run(config)
    assert again.status == "succeeded"
    assert len(batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]) == n_defs == 1


def test_preflight_refuses_what_no_compute_environment_fits(aws, tmp_path):
    from workbench.backends.batch import BatchBackend
    from workbench.errors import ResourceError

    queue = aws.batch_queue("small-q", managed={"maxvCpus": 16, "instanceTypes": ["m5.xlarge"]})
    config = ProjectConfig(root=tmp_path)
    config.model.batch.job_queue = queue
    config.model.batch.image = "img"
    config.model.batch.endpoint_url = aws.endpoint
    backend = BatchBackend(config)
    backend.check(StepSettings(backend="batch", cpu=4, memory=8192))
    with pytest.raises(ResourceError) as err:
        backend.check(StepSettings(backend="batch", cpu=8, memory=32768, gpu=1))
    msg = str(err.value)
    assert "cpu=8 memory=32G gpu=1 on job queue small-q" in msg and "m5.xlarge" in msg and "\n" not in msg
    cap = backend.capacity()
    assert (cap.cpu, cap.memory, cap.gpu) == (4, 16384, 0)


def test_batch_step_with_a_local_datastore_says_what_to_configure(tmp_path, monkeypatch):
    from workbench.errors import UsageError

    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "batch_demo.py").write_text(FLOW)
    (tmp_path / "workbench.toml").write_text('[flows.BatchDemoFlow.steps.train]\nbackend = "batch"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_DATASTORE", raising=False)
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    with pytest.raises(UsageError) as err:
        _run(load_config(tmp_path))
    assert "train" in str(err.value) and "s3://bucket/prefix" in str(err.value)


class _FakeLogs:
    """CloudWatch Logs as a list of pages; the forward token stays put at the end, as the real API's does."""

    def __init__(self):
        self.events = []
        self.calls = 0

    def get_log_events(self, logGroupName, logStreamName, startFromHead, limit=10_000, nextToken=None):
        assert logGroupName == "/aws/batch/job" and startFromHead
        self.calls += 1
        start = int(nextToken.split("/")[1]) if nextToken else 0
        page = self.events[start : start + limit]
        return {"events": page, "nextForwardToken": f"f/{start + len(page)}"}


def test_logs_are_followed_while_running_and_drained_at_the_end(monkeypatch):
    monkeypatch.setenv("WORKBENCH_BATCH_LOG_SETTLE", "0")
    backend, fake, jobs, _, exits = _backend_with_fake({"job-0": "RUNNING"})
    logs = _FakeLogs()
    backend._clients["logs"] = logs
    seen = []
    job = jobs[0]
    job.on_log = lambda stream, text, ts: seen.append(text)
    fake.describe_jobs = lambda jobs: {
        "jobs": [{"jobId": "job-0", "status": fake.statuses["job-0"], "container": {"logStreamName": "s/1"}}]
    }
    logs.events += [{"message": f"line {i}", "timestamp": 1000 * i} for i in range(3)]
    backend.poll_once([job])
    assert seen == ["line 0", "line 1", "line 2"]
    logs.events += [{"message": "line 3", "timestamp": 4000}]
    job.log_fetched = 0  # due again
    backend.poll_once([job])
    assert seen[-1] == "line 3" and len(seen) == 4 and not exits
    logs.events += [{"message": "last", "timestamp": 5000}]
    fake.statuses["job-0"] = "SUCCEEDED"
    backend.poll_once([job])
    assert seen[-1] == "last" and len(seen) == 5
    assert len(exits) == 1 and exits[0].status == "succeeded"


def test_an_ended_jobs_log_is_one_call_after_the_settle_time_and_pages_only_when_cut_short(monkeypatch):
    from workbench.backends import batch_logs

    monkeypatch.setenv("WORKBENCH_BATCH_LOG_SETTLE", "0")
    backend, fake, jobs, _, exits = _backend_with_fake({"job-0": "SUCCEEDED", "job-1": "SUCCEEDED"})
    logs = _FakeLogs()
    backend._clients["logs"] = logs
    fake.describe_jobs = lambda jobs: {
        "jobs": [{"jobId": j, "status": "SUCCEEDED", "container": {"logStreamName": f"s/{j}"}} for j in jobs]
    }
    seen = []
    for job in jobs[:2]:
        job.on_log = lambda stream, text, ts: seen.append(text)
    logs.events += [{"message": f"line {i}", "timestamp": 1000 * i} for i in range(5)]
    backend.poll_once(jobs[:1])
    assert logs.calls == 1 and seen == [f"line {i}" for i in range(5)] and len(exits) == 1
    monkeypatch.setattr(batch_logs, "LOG_PAGE_LIMIT", 2)  # pages of 2: a full page means more may follow
    seen.clear()
    backend.poll_once(jobs[1:2])
    assert seen == [f"line {i}" for i in range(5)] and logs.calls == 1 + 3 and len(exits) == 2


def test_live_logs_are_read_for_a_few_running_jobs_a_round_oldest_first():
    from workbench.backends import batch

    backend, fake, jobs, _, exits = _backend_with_fake({})
    logs = _FakeLogs()
    backend._clients["logs"] = logs
    fake.describe_jobs = lambda jobs: {
        "jobs": [{"jobId": j, "status": "RUNNING", "container": {"logStreamName": f"s/{j}"}} for j in jobs]
    }
    backend.poll_once(jobs)  # 250 running jobs: one round reads a few logs, not 250
    assert logs.calls == batch.LIVE_LOG_JOBS_PER_ROUND
    read_first = {j.job_id for j in jobs if j.log_fetched}
    backend.poll_once(jobs)
    read_next = {j.job_id for j in jobs if j.log_fetched} - read_first
    assert logs.calls == 2 * batch.LIVE_LOG_JOBS_PER_ROUND and len(read_next) == batch.LIVE_LOG_JOBS_PER_ROUND
    assert not exits


def test_single_step_rerun_on_batch_reproduces_the_full_runs_artifacts(batch_project, aws):
    """`workbench run FLOW --step train`: the step again, on Batch, with the inputs of the last run."""
    from workbench import Flow
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    config = batch_project()
    _, full = _run(config)
    assert full.status == "succeeded", full.message
    graph = load_graph(str(config.root / "flows" / "batch_demo.py"))
    events = []
    single = Runtime(
        graph, config, origin_run_id=full.run_id, rerun_steps={"train"}, only_step="train", sink=events.append
    ).run()
    assert single.status == "succeeded", single.message
    assert sorted(type(e).__name__ for e in events if type(e).__name__ in ("TaskCloned", "TaskStarted")) == [
        "TaskCloned",
        "TaskStarted",
    ]  # start reused, train run; end not run
    a, b = Flow("BatchDemoFlow")[full.run_id], Flow("BatchDemoFlow")[single.run_id]
    assert b["train"].task.artifacts["y"]["sha"] == a["train"].task.artifacts["y"]["sha"]
    assert b["train"].task.data.where_train != "local" and "end" not in b
    assert b["train"].task._doc["attempts"][-1]["backend"] == "batch"
