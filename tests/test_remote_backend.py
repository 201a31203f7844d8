"""The remote-job base shared by Batch and Kubernetes (workbench.backends.remote): the submitter, the poller's
back-off, on_exit exactly once and only after the log has drained, cancel in every phase, end_run.

An in-process scripted backend drives the lifecycle's races in milliseconds; the same behaviour is then
checked end to end with faults injected into the real clients: Batch on moto's server (real containers) and
Kubernetes on the API emulator."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.support.moto_server import aws, moto_server  # noqa: E402,F401  (fixtures)
from tests.support.remote_projects import TEST_CREDENTIALS, batch_testbed, kube_testbed, write_project  # noqa: E402
from workbench.backends.base import TaskExit, TaskSpec  # noqa: E402
from workbench.backends.remote import RemoteBackend, RemoteJob, Submitter, Throttled  # noqa: E402
from workbench.config import ProjectConfig  # noqa: E402
from workbench.errors import BackendError  # noqa: E402
from workbench.settings import StepSettings  # noqa: E402


def _wait(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def _spec(task_id: str) -> TaskSpec:
    return TaskSpec(
        flow="F",
        run_id="1",
        step="s",
        task_id=task_id,
        attempt=0,
        settings=StepSettings(),
        datastore_url="s3://b/p",
        project_root="/p",
        flow_file="f.py",
        class_name="F",
    )


class ScriptedRemote(RemoteBackend):
    """A remote backend whose API is a dict: ``ended[task_id]`` is what the next poll finds."""

    name = "scripted"
    poll_env = "WORKBENCH_TEST_NO_SUCH_VARIABLE"
    poll_default = 0.05
    poll_max = 0.4
    log_drain = 0.5
    end_run_wait = 2.0
    submit_rate = submit_rate_max = 1000.0

    def __init__(self):
        super().__init__(ProjectConfig(root=Path("/tmp")))
        self.sent: list[str] = []
        self.terminated: list[str] = []
        self.ended: dict[str, TaskExit] = {}
        self.poll_times: list[float] = []
        self.poll_faults = 0
        self.refuse: set[str] = set()
        self.gate: threading.Event | None = None  # submit_job waits on it
        self.in_submit = threading.Event()
        self.logs_open: set[str] = set()
        self.logs_stopped: list[str] = []
        self.warnings: list[str] = []

    def upload_package(self, ctx) -> str:
        return "s3://b/p/package"

    def submit_job(self, job: RemoteJob) -> None:
        self.in_submit.set()
        if self.gate is not None:
            self.gate.wait(5)
        if job.spec.task_id in self.refuse:
            raise BackendError(f"scripted: job {job.spec.task_id} refused")
        self.sent.append(job.spec.task_id)

    def poll(self, active):
        self.poll_times.append(time.time())
        if self.poll_faults:
            self.poll_faults -= 1
            raise ConnectionError("the API did not answer")
        for job in active:
            result = self.ended.get(job.spec.task_id)
            if result is not None:
                self.conclude(job, result)
        return False

    def terminate(self, job):
        self.terminated.append(job.spec.task_id)
        self.ended[job.spec.task_id] = self._requested_exit(job)

    def _requested_exit(self, job):
        return TaskExit("cancelled", None, job.requested or "cancelled")

    def drain_logs(self, job):
        return job.spec.task_id not in self.logs_open

    def stop_logs(self, job):
        self.logs_stopped.append(job.spec.task_id)


class Recorder:
    """on_log / on_exit of every task, in the order they came."""

    def __init__(self):
        self.events: list[tuple[str, str, object]] = []
        self.lock = threading.Lock()

    def callbacks(self, task_id):
        def on_log(stream, text, ts):
            with self.lock:
                self.events.append(("log", task_id, text))

        def on_exit(result):
            with self.lock:
                self.events.append(("exit", task_id, result))

        return on_log, on_exit

    def exits(self, task_id=None):
        return [e[2] for e in self.events if e[0] == "exit" and (task_id is None or e[1] == task_id)]


@pytest.fixture
def scripted():
    backend = ScriptedRemote()
    ctx = SimpleNamespace(warn=backend.warnings.append, datastore=SimpleNamespace(storage=None), run_id="1")
    backend.start_run(ctx)
    rec = Recorder()

    def submit(task_id):
        return backend.submit(_spec(task_id), *rec.callbacks(task_id))

    yield SimpleNamespace(backend=backend, rec=rec, submit=submit, ctx=ctx)
    backend.end_run(ctx)


# ---------------------------------------------------------------------------------------- in process


def test_submit_returns_before_the_api_call_and_each_task_is_reported_once(scripted):
    b = scripted.backend
    b.gate = threading.Event()
    t0 = time.perf_counter()
    scripted.submit("1")
    assert time.perf_counter() - t0 < 0.05 and b.sent == []  # the API call waits on another thread
    b.gate.set()
    assert _wait(lambda: b.sent == ["1"])
    b.ended["1"] = TaskExit("succeeded", 0)
    assert _wait(lambda: scripted.rec.exits("1"))
    time.sleep(0.3)  # more poll rounds, then end_run: still one report
    b.end_run(scripted.ctx)
    assert [e.status for e in scripted.rec.exits("1")] == ["succeeded"]


def test_many_jobs_racing_cancel_and_conclusion_get_exactly_one_on_exit(scripted):
    b = scripted.backend
    handles = [scripted.submit(str(i)) for i in range(200)]
    assert _wait(lambda: len(b.sent) == 200)
    for i in range(0, 200, 2):
        b.ended[str(i)] = TaskExit("succeeded", 0)
    for h in handles:  # cancel everything while the poller reports the even ones
        h.cancel("cancelled")
    assert _wait(lambda: len(scripted.rec.exits()) == 200)
    b.end_run(scripted.ctx)
    for h in handles:
        h.cancel("again")
    per_task = {}
    for e in scripted.rec.events:
        per_task[e[1]] = per_task.get(e[1], 0) + 1
    assert per_task == {str(i): 1 for i in range(200)}


def test_cancel_while_queued_never_sends_the_job(scripted):
    b = scripted.backend
    b.gate = threading.Event()
    scripted.submit("1")
    assert b.in_submit.wait(2)  # the submitter holds job 1 in its API call; 2 and 3 wait in the queue
    h2, h3 = scripted.submit("2"), scripted.submit("3")
    h2.cancel("cancelled by the user")
    h3.cancel("timed out after 5s")
    assert [e.status for e in scripted.rec.exits("2")] == ["cancelled"]  # at once: nothing to stop
    b.gate.set()
    assert _wait(lambda: b.sent == ["1"])
    time.sleep(0.2)
    assert b.sent == ["1"] and b.terminated == []
    assert len(scripted.rec.exits("3")) == 1


def test_cancel_during_the_submit_call_terminates_the_job_once_accepted(scripted):
    b = scripted.backend
    b.gate = threading.Event()
    h = scripted.submit("1")
    assert b.in_submit.wait(2)
    h.cancel("cancelled mid-submit")
    time.sleep(0.1)
    assert scripted.rec.exits("1") == [] and b.terminated == []  # the API has not said yes yet
    b.gate.set()
    assert _wait(lambda: scripted.rec.exits("1"))
    assert b.terminated == ["1"] and b.sent == ["1"]
    assert [(e.status, e.reason) for e in scripted.rec.exits("1")] == [("cancelled", "cancelled mid-submit")]


def test_a_refused_submission_is_a_failed_task(scripted):
    b = scripted.backend
    b.refuse = {"1"}
    scripted.submit("1")
    scripted.submit("2")
    assert _wait(lambda: scripted.rec.exits("1"))
    [exit1] = scripted.rec.exits("1")
    assert exit1.status == "failed" and exit1.reason == "scripted: job 1 refused"
    assert _wait(lambda: b.sent == ["2"])  # the next job goes on


def test_on_exit_waits_for_the_log_to_drain_then_gives_up_after_log_drain(scripted):
    b = scripted.backend
    rec = scripted.rec
    h1 = scripted.submit("1")
    scripted.submit("2")
    assert _wait(lambda: len(b.sent) == 2)
    b.logs_open = {"1", "2"}
    b.ended["1"] = b.ended["2"] = TaskExit("succeeded", 0)
    time.sleep(0.2)
    assert rec.exits() == []  # concluded, but their logs are still coming
    h1.job.on_log("stdout", "last line", time.time())
    b.logs_open.discard("1")
    assert _wait(lambda: rec.exits("1"), 0.25)  # drained: reported on the next round
    assert [e[0] for e in rec.events if e[1] == "1"] == ["log", "exit"]
    assert rec.exits("2") == []
    assert _wait(lambda: rec.exits("2"), 1.0)  # never drained: reported once log_drain (0.5 s) has passed
    assert b.logs_stopped == ["2"]


def test_the_poller_backs_off_while_the_api_fails_and_says_so_once(scripted):
    b = scripted.backend
    b.poll_faults = 4
    scripted.submit("1")
    assert _wait(lambda: len(b.poll_times) >= 5)
    gaps = [round(t1 - t0, 2) for t0, t1 in zip(b.poll_times, b.poll_times[1:], strict=False)][:4]
    # 0.05 s between rounds normally; doubled after each failure, up to poll_max (0.4 s)
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.38 and gaps[3] >= 0.38, gaps
    assert all(g < 0.6 for g in gaps), gaps
    assert len([w for w in b.warnings if "retrying" in w]) == 1
    b.ended["1"] = TaskExit("succeeded", 0)
    assert _wait(lambda: scripted.rec.exits("1"), 2)


def test_the_poller_slows_down_while_nothing_changes_and_wakes_on_submit(scripted):
    b = scripted.backend
    scripted.submit("1")
    assert _wait(lambda: len(b.poll_times) >= 7, 5)
    gaps = [t1 - t0 for t0, t1 in zip(b.poll_times, b.poll_times[1:], strict=False)]
    assert gaps[0] < 0.12 and max(gaps) > 0.15 and all(g < 0.6 for g in gaps), gaps
    n = len(b.poll_times)
    scripted.submit("2")  # a submit wakes the poller at once
    assert _wait(lambda: len(b.poll_times) > n, 0.3)


def test_end_run_reports_what_never_ended_exactly_once(scripted):
    b = scripted.backend
    b.terminate = lambda job: b.terminated.append(job.spec.task_id)  # the API never confirms the stop
    scripted.submit("1")
    assert _wait(lambda: b.sent == ["1"])
    t0 = time.time()
    b.end_run(scripted.ctx)
    assert time.time() - t0 < b.end_run_wait + 1
    assert b.terminated == ["1"]
    assert [(e.status, e.reason) for e in scripted.rec.exits("1")] == [("cancelled", "the run ended")]


def test_submitter_halves_its_rate_when_throttled_and_keeps_the_order():
    sent, attempts = [], []
    throttle = {"left": 2}
    jobs = [RemoteJob(_spec(str(i)), lambda *a: None, lambda e: None) for i in range(6)]

    def send(batch):
        attempts.append([j.spec.task_id for j in batch])
        sent.append(batch[0].spec.task_id)
        if throttle["left"]:  # the first of the batch went through, then the API said "slow down"
            throttle["left"] -= 1
            raise Throttled(batch[1:], retry_after=0.05)
        sent.extend(j.spec.task_id for j in batch[1:])

    warnings = []
    sub = Submitter(send, rate=40.0, max_rate=50.0, batch_size=3, warn=warnings.append, name="test-submitter")
    for job in jobs:
        sub.put(job)
    sub.start()
    try:
        assert _wait(lambda: len(sent) == 6, 3)
    finally:
        sub.stop()
    # the unsent rest of a throttled batch goes back to the front, in order; every job goes exactly once
    assert attempts[:3] == [["0", "1", "2"], ["1", "2", "3"], ["2", "3", "4"]]
    assert sent == ["0", "1", "2", "3", "4", "5"]
    assert sub.throttled == 2 and sub.rate < 20.0  # 40 -> 20 -> 10, then +1 a successful batch
    assert len(warnings) == 1 and "throttling" in warnings[0]


# ---------------------------------------------------------------------------------------- Batch on moto

FLOW = textwrap.dedent("""
    from workbench import FlowSpec, step

    class RemoteFaultFlow(FlowSpec):
        @step
        def start(self):
            self.x = 1
            self.next(self.work)

        @step
        def work(self):
            for i in range(3):
                print("line", i)
            self.y = self.x + 1
            self.next(self.end)

        @step
        def end(self):
            pass
""").lstrip()


def _client_error(code):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "Rate exceeded"}}, "Op")


class _Faulty:
    """A real client whose named calls fail the first few times."""

    def __init__(self, real, faults: dict):
        self._real = real
        self.faults = faults
        self.times: dict[str, list[float]] = {}

    def __getattr__(self, name):
        fn = getattr(self._real, name)
        if name not in self.faults:
            return fn

        def call(*args, **kwargs):
            self.times.setdefault(name, []).append(time.time())
            left, make = self.faults[name]
            if left > 0:
                self.faults[name] = (left - 1, make)
                raise make()
            return fn(*args, **kwargs)

        return call


def _count_callbacks(monkeypatch, cls):
    """Wrap every submit's callbacks: on_exit calls per task and whether any log line came after its on_exit."""
    seen = {"exits": {}, "late_logs": []}
    original = cls.submit

    def submit(self, spec, on_log, on_exit):
        def counted_exit(result):
            seen["exits"][spec.ref] = seen["exits"].get(spec.ref, 0) + 1
            on_exit(result)

        def checked_log(stream, text, ts):
            if seen["exits"].get(spec.ref):
                seen["late_logs"].append(text)
            on_log(stream, text, ts)

        return original(self, spec, checked_log, counted_exit)

    monkeypatch.setattr(cls, "submit", submit)
    return seen


def _run(config):
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    events = []
    rt = Runtime(load_graph(str(config.root / "flows" / "fault_flow.py")), config, sink=events.append)
    return rt, rt.run(), events


def test_batch_rides_out_throttled_submits_and_failing_polls(aws, tmp_path, monkeypatch):
    pytest.importorskip("boto3")
    from workbench.backends.batch import BatchBackend

    bed = batch_testbed(aws, monkeypatch, poll="0.2")
    step = f"""
        [flows.RemoteFaultFlow.steps.work]
        backend = "batch"
        memory = "512M"
        env = {{ {TEST_CREDENTIALS} }}
    """
    config = write_project(tmp_path, monkeypatch, "fault_flow.py", FLOW, bed.toml("rf") + textwrap.dedent(step))
    monkeypatch.setattr(BatchBackend, "poll_max", 1.6)
    faulty = {}
    original = BatchBackend._client

    def client(self, service):
        real = original(self, service)
        if service != "batch":
            return real
        if "batch" not in faulty:  # the SubmitJob throttled twice (after botocore's own retries), DescribeJobs 3 times
            faulty["batch"] = _Faulty(
                real,
                {
                    "submit_job": (2, lambda: _client_error("TooManyRequestsException")),
                    "describe_jobs": (3, lambda: _client_error("ThrottlingException")),
                },
            )
        return faulty["batch"]

    monkeypatch.setattr(BatchBackend, "_client", client)
    seen = _count_callbacks(monkeypatch, BatchBackend)
    rt, result, events = _run(config)
    warnings = [e.message for e in events if type(e).__name__ == "RunWarning"]
    assert result.status == "succeeded", (result.message, warnings)
    lines = [text for _, _, text in rt.ds.read_log(rt.run_id, "work", "2")]
    assert [text for text in lines if text.startswith("line ")] == ["line 0", "line 1", "line 2"]
    assert seen["exits"] == {f"RemoteFaultFlow/{rt.run_id}/work/2/0": 1} and seen["late_logs"] == []
    times = faulty["batch"].times
    assert len(times["submit_job"]) == 3  # two throttled, then accepted
    describe = times["describe_jobs"]
    gaps = [b - a for a, b in zip(describe, describe[1:4], strict=False)]
    assert gaps[0] >= 0.35 and gaps[1] >= 0.75 and gaps[2] >= 1.5, gaps  # 0.2 s doubled per failure, to 1.6 s
    assert any("throttling submissions" in w for w in warnings), warnings
    assert len([w for w in warnings if "reading the status" in w]) == 1, warnings


# ---------------------------------------------------------------------------------------- Kubernetes emulator


def test_kubernetes_rides_out_a_429_on_create_and_failing_lists(aws, tmp_path, monkeypatch):
    pytest.importorskip("kubernetes")
    from kubernetes.client.exceptions import ApiException

    from workbench.backends.kubernetes import KubernetesBackend

    with kube_testbed(aws, tmp_path, monkeypatch, poll="0.2") as bed:
        step = f"""
            [flows.RemoteFaultFlow.steps.work]
            backend = "kubernetes"
            memory = "256M"
            env = {{ {TEST_CREDENTIALS} }}
        """
        config = write_project(tmp_path, monkeypatch, "fault_flow.py", FLOW, bed.toml("rf") + textwrap.dedent(step))

        def too_many():
            exc = ApiException(status=429, reason="Too Many Requests")
            exc.headers = {"Retry-After": "0.3"}
            return exc

        made = []
        original = KubernetesBackend.__init__

        def init(self, config):
            original(self, config)
            real_client = self.api.client
            wrapped = {}

            def client(kind):
                if kind not in wrapped:
                    faults = {
                        "batch": {"create_namespaced_job": (1, too_many)},
                        "core": {"list_namespaced_pod": (2, lambda: ConnectionResetError("reset by peer"))},
                    }
                    wrapped[kind] = _Faulty(real_client(kind), faults.get(kind, {}))
                return wrapped[kind]

            self.api.client = client
            made.append(self)

        monkeypatch.setattr(KubernetesBackend, "__init__", init)
        seen = _count_callbacks(monkeypatch, KubernetesBackend)
        rt, result, events = _run(config)
        warnings = [e.message for e in events if type(e).__name__ == "RunWarning"]
        assert result.status == "succeeded", (result.message, warnings)
        lines = [text for _, _, text in rt.ds.read_log(rt.run_id, "work", "2")]
        assert [text for text in lines if text.startswith("line ")] == ["line 0", "line 1", "line 2"]
        assert seen["exits"] == {f"RemoteFaultFlow/{rt.run_id}/work/2/0": 1} and seen["late_logs"] == []
        backend = made[-1]
        assert backend.calls["create_namespaced_job"] == 2  # refused once (429), then created
        assert backend._submitter.throttled == 1
        assert any("throttling submissions" in w for w in warnings), warnings
        assert len([w for w in warnings if "reading the status" in w]) == 1, warnings
