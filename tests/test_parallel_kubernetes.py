"""@parallel on Kubernetes, end to end against the API emulator (tests/k8s_emulator: pods run as real containers on
the local Docker engine) with moto's S3 as the datastore: a 3-node gang is ONE Indexed Job plus ONE headless
Service; the nodes exchange a value through node 0, reached by its DNS name ``<job>-0.<service>``; each node is
its own task (artifacts, log, usage); one node failing fails the gang and leaves nothing running. Every manifest
sent is checked against the official batch/v1 and core/v1 schemas."""

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
from tests.support.remote_projects import TEST_CREDENTIALS, kube_testbed, validated, write_project  # noqa: E402

pytest.importorskip("kubernetes")
pytest.importorskip("boto3")

FLOW_FILE = Path(__file__).parent / "flows" / "gang_exchange.py"


@pytest.fixture
def kube_gang(aws, tmp_path, monkeypatch):
    import workbench.backends.k8s_gang as k8s_gang

    # every gang Job sent is valid batch/v1 (the official schema), and every Service valid core/v1
    sent = validated(monkeypatch, k8s_gang, "gang_job_manifest", "headless_service_manifest")
    with kube_testbed(aws, tmp_path, monkeypatch) as bed:

        def make(retries: int = 0):
            toml = bed.toml("gk") + textwrap.dedent(f"""
                [flows.GangExchangeFlow.steps.train]
                backend = "kubernetes"
                cpu = 0.25
                memory = "256M"
                retries = {retries}
                env = {{ {TEST_CREDENTIALS} }}
            """)
            return write_project(tmp_path, monkeypatch, "gang_exchange.py", FLOW_FILE.read_text(), toml)

        yield SimpleNamespace(
            make=make,
            emu=bed.emu,
            sent={"jobs": sent["gang_job_manifest"], "services": sent["headless_service_manifest"]},
        )


def _runtime(config, events, **params):
    """The flow's Runtime, with every parameter of the gang flow spelled out."""
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    params = {"nodes": 3, "fail_node": -1, "fail_once": False, "hold": 0, **params}
    return Runtime(
        load_graph(str(config.root / "flows" / "gang_exchange.py")), config, params=params, sink=events.append
    )


def _run(config, **params):
    """Run the flow to its end: (runtime, result, events)."""
    events: list = []
    rt = _runtime(config, events, **params)
    return rt, rt.run(), events


def _why(run_id):
    """Each train task's reason and last log lines, for a failure message."""
    from workbench import Flow

    run = Flow("GangExchangeFlow")[run_id]
    return [(t.id, t._doc["reason"], [text for _, _, text in t.logs()][-5:]) for t in run["train"]]


def _left(emu, run_id):
    """What of the run is still in the cluster: pods, Jobs, Services."""

    def of_run(kind):
        return [
            o["metadata"]["name"]
            for o in emu.store.list(kind)[0]
            if (o["metadata"].get("labels") or {}).get("workbench.run") == run_id
        ]

    return {kind: of_run(kind) for kind in ("pods", "jobs", "services") if of_run(kind)}


def test_three_nodes_exchange_a_value_through_node_0(kube_gang):
    from workbench import Flow

    config = kube_gang.make()
    rt, result, events = _run(config)
    warnings = [e.message for e in events if type(e).__name__ == "RunWarning"]
    assert result.status == "succeeded", (result.message, warnings, _why(rt.run_id))

    # ONE Indexed Job of 3 pods at once, and ONE headless Service whose name is the pods' subdomain
    [job], [service] = kube_gang.sent["jobs"], kube_gang.sent["services"]
    name = job["metadata"]["name"]
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["maxFailedIndexes"] == 0 and spec["template"]["spec"]["subdomain"] == name
    assert service["metadata"]["name"] == name and service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"workbench.job": name}
    env = {e["name"]: e.get("value") for e in spec["template"]["spec"]["containers"][0]["env"]}
    assert env["WORKBENCH_GANG_MAIN_HOST"] == f"{name}-0.{name}"
    backend = rt._backends["kubernetes"]
    assert (backend.calls["create_namespaced_job"], backend.calls["create_namespaced_service"]) == (1, 1)

    run = Flow("GangExchangeFlow")[rt.run_id]
    assert run.successful
    # every node learned the same total through node 0: 10 + 20 + 30
    assert run["join"].task.data.totals == [(0, 60), (1, 60), (2, 60)]
    tasks = sorted(run["train"], key=lambda t: t.data.node_index)
    assert len(tasks) == 3
    for i, t in enumerate(tasks):
        assert t.successful and (t.data.node_index, t.data.num_nodes) == (i, 3)
        # <job>-0.<service> resolved (the emulator maps it to loopback: its pods share the host network)
        assert t.data.main_ip == "127.0.0.1"
        assert t.usage["job"] == name and t.usage["index"] == i and t.usage["pod"].startswith(f"{name}-{i}-")
        lines = [text for _, _, text in t.logs()]  # each node's own log, from its own pod
        assert f"node {i} of 3, main_ip 127.0.0.1" in lines and f"node {i} total 60" in lines, lines
        assert not any(line.startswith(f"node {j} ") for j in range(3) if j != i for line in lines), lines
    assert _left(kube_gang.emu, rt.run_id) == {}


def test_a_failing_node_fails_the_gang_and_leaves_nothing_running(kube_gang):
    from workbench import Flow

    config = kube_gang.make()
    rt, result, events = _run(config, fail_node=2)  # nodes 0 and 1 wait for node 2, which raises
    assert result.status == "failed"
    run = Flow("GangExchangeFlow")[rt.run_id]
    tasks = sorted(run["train"], key=lambda t: t.index)
    assert len(tasks) == 3 and not any(t.successful for t in tasks)
    reasons = [t._doc["reason"] for t in tasks]
    assert reasons[2] == "RuntimeError: node 2 fails", reasons
    assert all(r.startswith("node 2 of the gang failed: RuntimeError: node 2 fails") for r in reasons[:2]), reasons
    lines = [text for _, _, text in tasks[2].logs()]
    assert any("node 2 fails" in line for line in lines), lines
    assert "join" not in [s.id for s in run]
    # the whole gang went: Job, pods and Service, and their containers
    assert _left(kube_gang.emu, rt.run_id) == {}
    assert kube_gang.emu.containers() == []
    finished = [e for e in events if type(e).__name__ == "TaskFinished" and e.step == "train"]
    assert len(finished) == 3


def test_gang_manifest_asks_for_gpus_on_every_node():
    """No GPU here: check only the spec that would be sent (the limits of the gang's pod template)."""
    from workbench.backends.k8s_gang import gang_job_manifest, headless_service_manifest
    from workbench.backends.k8s_manifest import JobOptions, job_manifest
    from workbench.settings import StepSettings

    kv = pytest.importorskip("kubernetes_validate")
    settings = StepSettings(cpu=4, memory=16384, gpu=2)
    single = job_manifest(
        name="wb-f-train-2-0-abc",
        settings=settings,
        image="img:1",
        command=["python3", "-m", "workbench.task", "run", "F/1/train/2/0"],
        env={},
        labels={"workbench.run": "1"},
        options=JobOptions(),
        template=None,
    )
    job = gang_job_manifest(single, name="wb-f-train-2g4-0-abc", nodes=4, array_ref="F/1/array-train-0-2")
    kv.validate(job, "1.31", strict=True)
    kv.validate(headless_service_manifest(job), "1.31", strict=True)
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["command"][-2:] == ["--array", "F/1/array-train-0-2"]
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 4


def test_a_gang_that_fails_once_is_retried_whole(kube_gang):
    from workbench import Flow

    config = kube_gang.make(retries=1)
    rt, result, events = _run(config, fail_node=1, fail_once=True)
    assert result.status == "succeeded", (result.message, _why(rt.run_id))
    # attempt 0 and attempt 1 of the gang: one Indexed Job (and one Service) each
    names = [j["metadata"]["name"] for j in kube_gang.sent["jobs"]]
    assert len(names) == 2 and names[0] != names[1] and len(kube_gang.sent["services"]) == 2
    run = Flow("GangExchangeFlow")[rt.run_id]
    assert run["join"].task.data.totals == [(0, 60), (1, 60), (2, 60)]
    for t in run["train"]:
        attempts = t._doc["attempts"]
        assert [a["status"] for a in attempts] == ["retrying", "succeeded"], attempts
        assert [a["usage"]["job"] for a in attempts] == names
    assert _left(kube_gang.emu, rt.run_id) == {}


def test_cancel_mid_gang_deletes_job_and_service_and_leaves_nothing(kube_gang):
    config = kube_gang.make()
    events: list = []
    rt = _runtime(config, events, hold=120)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", rt.run()))
    thread.start()
    try:
        deadline, running = time.time() + 120, []
        while time.time() < deadline:
            running = [
                p
                for p in kube_gang.emu.store.list("pods")[0]
                if (p["metadata"].get("labels") or {}).get("workbench.run") == rt.run_id
                and (p.get("status") or {}).get("phase") == "Running"
            ]
            if len(running) == 3:
                break
            time.sleep(0.3)
        assert len(running) == 3, "the gang's three pods never ran"
        backend = rt._backends["kubernetes"]
        before = backend.calls["delete_job"], backend.calls["delete_service"], backend.calls["delete_pod"]
        rt.cancel("stop it")
    finally:
        thread.join(120)
    assert box["result"].status == "cancelled"
    after = backend.calls["delete_job"], backend.calls["delete_service"], backend.calls["delete_pod"]
    assert tuple(a - b for a, b in zip(after, before, strict=True)) == (1, 1, 0)  # the whole gang, once
    assert _left(kube_gang.emu, rt.run_id) == {} and kube_gang.emu.containers() == []
    finished = [e for e in events if type(e).__name__ == "TaskFinished" and e.step == "train"]
    assert len(finished) == 3 and all(e.status == "cancelled" for e in finished)
