"""A foreach on Kubernetes as one Indexed Job, end to end against the API emulator (tests/k8s_emulator: pods run as
real containers on the local Docker engine) with moto's S3 as the datastore: every index's artifacts and log come
back as its own task, a failing index is retried alone (a new single Job), parallelism comes from
``[kubernetes] parallelism``, and cancelling mid-array deletes the Job in one call and leaves nothing."""

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
from tests.support.remote_projects import (  # noqa: E402
    ARRAY_FLOW,
    TEST_CREDENTIALS,
    kube_testbed,
    validated,
    write_project,
)

pytest.importorskip("kubernetes")
pytest.importorskip("boto3")

WIDTH = 50  # the figure; PARALLELISM bounds the pods alive at once
PARALLELISM = 10


@pytest.fixture
def kube_array(aws, tmp_path, monkeypatch):
    import workbench.backends.k8s_indexed as k8s_indexed

    sent = validated(monkeypatch, k8s_indexed, "indexed_job_manifest")  # every Indexed Job sent is valid batch/v1
    with kube_testbed(aws, tmp_path, monkeypatch) as bed:

        def make(*, width: int, fail: int = -1, sleep: float = 0.0):
            monkeypatch.setenv("ARRAY_WIDTH", str(width))
            toml = bed.toml("ia", parallelism=PARALLELISM) + textwrap.dedent(f'''
                [flows.ArrayFlow.steps.work]
                backend = "kubernetes"
                cpu = 0.25
                memory = "256M"
                retries = 1
                env = {{ ARRAY_FAIL = "{fail}", ARRAY_SLEEP = "{sleep}", {TEST_CREDENTIALS} }}
            ''')
            return write_project(tmp_path, monkeypatch, "array_flow.py", ARRAY_FLOW, toml)

        yield SimpleNamespace(make=make, emu=bed.emu, indexed=sent["indexed_job_manifest"])


def _runtime(config, events):
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    return Runtime(load_graph(str(config.root / "flows" / "array_flow.py")), config, sink=events.append)


def _backend(rt, name="kubernetes"):
    found = getattr(rt, "_backends", None) or getattr(getattr(rt, "driver", None), "backends", None) or {}
    return found[name]


def _pods(emu, run_id=None):
    pods = emu.store.list("pods")[0]
    return [p for p in pods if run_id is None or (p["metadata"].get("labels") or {}).get("workbench.run") == run_id]


def test_foreach_is_one_indexed_job_and_a_failing_index_is_retried_alone(kube_array):
    from workbench import Flow

    config = kube_array.make(width=WIDTH, fail=3)
    events = []
    rt = _runtime(config, events)
    peak = {"n": 0}
    stop = threading.Event()

    def watch():  # the most pods of the run live at once: the Indexed Job's parallelism bounds it
        while not stop.is_set():
            live = [
                p
                for p in _pods(kube_array.emu)
                if (p.get("status") or {}).get("phase") in ("Pending", "Running")
                and "batch.kubernetes.io/job-completion-index" in (p["metadata"].get("annotations") or {})
            ]
            peak["n"] = max(peak["n"], len(live))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.time()
    try:
        result = rt.run()
    finally:
        stop.set()
        watcher.join(5)
    took = time.time() - t0
    warnings = [e.message for e in events if type(e).__name__ == "RunWarning"]
    assert result.status == "succeeded", (result.message, warnings)
    # the foreach went out as ONE Indexed Job; the failed index came back alone, as one single Job
    [job] = kube_array.indexed
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == WIDTH
    assert job["spec"]["parallelism"] == PARALLELISM and job["spec"]["backoffLimitPerIndex"] == 0
    assert _backend(rt).calls["create_namespaced_job"] == 2
    assert 0 < peak["n"] <= PARALLELISM, peak
    print(f"\n{WIDTH}-wide foreach on Kubernetes (emulator) as one Indexed Job: {took:.1f}s, peak {peak['n']} pods")

    run = Flow("ArrayFlow")[rt.run_id]
    assert run.successful and run["join"].task.data.total == sum(i * 10 for i in range(WIDTH))
    tasks = sorted(run["work"], key=lambda t: t.index)
    assert [t.index for t in tasks] == list(range(WIDTH))
    name = job["metadata"]["name"]
    for t in tasks:
        assert t.successful and t.data.out == t.index * 10
        lines = [text for _, _, text in t.logs()]
        if t.index == 3:
            attempts = t._doc["attempts"]
            assert [a["status"] for a in attempts] == ["retrying", "succeeded"], attempts
            assert "index 3 fails on its first attempt" in attempts[0]["reason"]
            assert attempts[0]["usage"]["job"] == name and attempts[0]["usage"]["index"] == 3
            assert attempts[1]["usage"]["job"] != name and "index" not in attempts[1]["usage"]
            assert any(line.startswith("index 3 completion None pod ") for line in lines), lines
        else:
            # its own log, from its own pod <job>-<index>-*, with JOB_COMPLETION_INDEX = its index
            assert any(
                line.startswith(f"index {t.index} completion {t.index} pod {name}-{t.index}-") for line in lines
            ), lines
            assert t.usage["job"] == name and t.usage["index"] == t.index
    assert _pods(kube_array.emu, rt.run_id) == [] and kube_array.emu.store.list("jobs")[0] == []


def test_cancel_mid_array_deletes_the_indexed_job_in_one_call_and_leaves_nothing(kube_array):
    config = kube_array.make(width=6, sleep=120)
    events = []
    rt = _runtime(config, events)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", rt.run()))
    thread.start()
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            running = [p for p in _pods(kube_array.emu, rt.run_id) if (p.get("status") or {}).get("phase") == "Running"]
            if len(running) == 6:
                break
            time.sleep(0.3)
        assert len(running) == 6, "the six pods of the Indexed Job never ran"
        backend = _backend(rt)
        before = backend.calls["delete_job"], backend.calls["delete_pod"]
        rt.cancel("stop it")
    finally:
        thread.join(120)
    assert box["result"].status == "cancelled"
    assert (backend.calls["delete_job"] - before[0], backend.calls["delete_pod"] - before[1]) == (1, 0)
    assert _pods(kube_array.emu, rt.run_id) == [] and kube_array.emu.store.list("jobs")[0] == []
    assert kube_array.emu.containers() == []
    finished = [e for e in events if type(e).__name__ == "TaskFinished" and e.step == "work"]
    assert len(finished) == 6 and all(e.status == "cancelled" for e in finished)
