"""Why is it pending: a queued remote task's wait is reported live (TaskWaiting) with the platform's words,
against the Kubernetes API emulator (a real unschedulable pod), and for Batch's statusReason."""

from types import SimpleNamespace

from tests.support.moto_server import aws, moto_server  # noqa: F401 - fixtures
from tests.test_kubernetes_backend import _run, kube, kube_project  # noqa: F401 - fixtures


def test_an_unschedulable_pod_is_reported_waiting_with_the_schedulers_words(kube_project, kube, monkeypatch):  # noqa: F811
    monkeypatch.setenv("WORKBENCH_K8S_PENDING_TIMEOUT", "2")
    events = []
    rt, result = _run(kube_project(gpu=1), events)
    assert result.status == "failed"
    waits = [e for e in events if type(e).__name__ == "TaskWaiting"]
    assert waits, [type(e).__name__ for e in events]
    first = waits[0]
    assert first.pathspec.endswith("/train/2") and first.backend == "kubernetes" and first.step == "train"
    assert first.reason.startswith("Pending: unschedulable: insufficient nvidia.com/gpu: requested 1"), first.reason
    assert "0/1 nodes are available" in first.reason
    assert len({w.reason for w in waits}) == len(waits)  # reported on change, not on every poll
    finished = [e for e in events if type(e).__name__ == "TaskFinished" and e.step == "train"]
    assert finished and finished[0].ts >= first.ts


def test_an_ordinary_pod_reports_its_wait_then_clears_it(kube_project, kube):  # noqa: F811
    events = []
    _, result = _run(kube_project(), events)
    assert result.status == "succeeded"
    waits = [e for e in events if type(e).__name__ == "TaskWaiting" and e.step == "train"]
    # the emulator may start the container before the first poll; if a wait was seen, it ends with ""
    if waits:
        assert all(w.reason.startswith("Pending: ") for w in waits[:-1]) and waits[-1].reason == ""


def test_batch_status_reason_is_reported_once_per_change_and_cleared_when_running():
    """describe_jobs is replaced to inject a RUNNABLE job with AWS's statusReason (moto passes the states
    between SUBMITTED and RUNNING instantly, so it cannot show one)."""
    from tests.test_batch_backend import _backend_with_fake

    backend, fake, jobs, warnings, _ = _backend_with_fake({})
    said = []
    backend._ctx = SimpleNamespace(warn=warnings.append, waiting=lambda *a: said.append(a))
    reason = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue cannot meet"
    fake.describe_jobs = lambda jobs: {
        "jobs": [
            {"jobId": j, "status": fake.statuses.get(j, "RUNNABLE"), "statusReason": reason, "container": {}}
            for j in jobs
        ]
    }
    backend.poll_once(jobs[:1])
    backend.poll_once(jobs[:1])
    assert len(said) == 1
    pathspec, step, name, words = said[0]
    assert name == "batch" and pathspec == jobs[0].spec.pathspec
    assert (
        words.startswith(
            "RUNNABLE: queued: waiting for a compute environment with room (queue gpu-queue, "
            "asking cpu=4 memory=16384M gpu=2)"
        )
        and reason in words
    )
    fake.statuses["job-0"] = "RUNNING"
    backend.poll_once(jobs[:1])
    assert said[-1][3] == "" and len(said) == 2
