"""@parallel on AWS Batch, end to end against moto's server (real containers on the local Docker engine): a 3-node
gang is ONE multi-node parallel job; the nodes exchange a value through node 0 (moto runs every node on the host's
network, so node 0 is 127.0.0.1 to the others); each node is its own task (artifacts, and its own log, split out
of the job's one log stream in moto); a failing node fails the gang and leaves no container running."""

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
from tests.support.remote_projects import TEST_CREDENTIALS, batch_testbed, write_project  # noqa: E402

pytest.importorskip("boto3")

FLOW_FILE = Path(__file__).parent / "flows" / "gang_exchange.py"


@pytest.fixture
def gang_project(aws, tmp_path, monkeypatch):
    bed = batch_testbed(aws, monkeypatch, "gang-queue")
    toml = bed.toml("gb") + textwrap.dedent(f"""
        [flows.GangExchangeFlow.steps.train]
        backend = "batch"
        cpu = 1
        memory = "256M"
        env = {{ {TEST_CREDENTIALS} }}
    """)
    config = write_project(tmp_path, monkeypatch, "gang_exchange.py", FLOW_FILE.read_text(), toml)
    return config, bed.queue, bed.docker


def _runtime(config, events, retries=0, **params):
    """The flow's Runtime, with every parameter of the gang flow spelled out."""
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    params = {"nodes": 3, "fail_node": -1, "fail_once": False, "hold": 0, **params}
    return Runtime(
        load_graph(str(config.root / "flows" / "gang_exchange.py")),
        config,
        params=params,
        sink=events.append,
        step_overrides={"train": {"retries": retries}},
    )


def _run(config, **params):
    """Run the flow to its end: (runtime, result, events)."""
    events: list = []
    rt = _runtime(config, events, **params)
    return rt, rt.run(), events


def _submissions(aws, queue: str, run_id: str) -> list[dict]:
    ids = [j["jobId"] for j in aws.jobs(queue) if run_id in j["jobName"]]
    return aws.client("batch").describe_jobs(jobs=ids)["jobs"] if ids else []


def _why(run_id):
    from workbench import Flow

    run = Flow("GangExchangeFlow")[run_id]
    return [(t.id, t._doc["reason"], [text for _, _, text in t.logs()][-5:]) for t in run["train"]]


def test_three_nodes_exchange_a_value_through_node_0(gang_project, aws):
    from workbench import Flow

    config, queue, _ = gang_project
    rt, result, events = _run(config)
    warnings = [e.message for e in events if type(e).__name__ == "RunWarning"]
    assert result.status == "succeeded", (result.message, warnings, _why(rt.run_id))

    # ONE multi-node job: 3 nodes, node i's own command (its task) through its own parameter
    [job] = [s for s in _submissions(aws, queue, rt.run_id) if s.get("nodeProperties")]
    assert job["status"] == "SUCCEEDED" and job["jobName"].endswith("-g3")
    props = job["nodeProperties"]
    assert (props["numNodes"], props["mainNode"]) == (3, 0)
    assert [r["targetNodes"] for r in props["nodeRangeProperties"]] == ["0", "1", "2"]
    assert [r["container"]["command"][-1] for r in props["nodeRangeProperties"]] == [
        "Ref::node0task",
        "Ref::node1task",
        "Ref::node2task",
    ]
    assert [s for s in _submissions(aws, queue, rt.run_id) if not s.get("nodeProperties")] == []

    run = Flow("GangExchangeFlow")[rt.run_id]
    assert run.successful
    # every node learned the same total through node 0: 10 + 20 + 30
    assert run["join"].task.data.totals == [(0, 60), (1, 60), (2, 60)]
    tasks = sorted(run["train"], key=lambda t: t.data.node_index)
    for i, t in enumerate(tasks):
        assert t.successful and (t.data.node_index, t.data.num_nodes) == (i, 3)
        # nodes 1, 2: moto's AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS is "" on the host network -> 127.0.0.1;
        # node 0: its own address (its host name does not resolve in these containers -> 127.0.0.1)
        assert t.data.main_ip == "127.0.0.1"
        assert t.usage["batch_job_id"] == f"{job['jobId']}#{i}"
        lines = [text for _, _, text in t.logs()]  # its own lines only, out of the job's one stream in moto
        assert f"node {i} of 3, main_ip 127.0.0.1" in lines and f"node {i} total 60" in lines, lines
        assert not any(line.startswith(f"node {j} ") for j in range(3) if j != i for line in lines), lines


def test_a_failing_node_fails_the_gang_and_leaves_nothing_running(gang_project, aws):
    """Node 0 fails while the others are still trying to reach it. (moto waits for the nodes in order, so only
    a failure of node 0 is seen before the others end; on AWS each node's job <id>#<i> reports on its own.)"""
    from workbench import Flow

    config, queue, docker_client = gang_project
    rt, result, events = _run(config, fail_node=0)
    assert result.status == "failed"
    [job] = _submissions(aws, queue, rt.run_id)
    assert job["status"] == "FAILED"
    run = Flow("GangExchangeFlow")[rt.run_id]
    tasks = sorted(run["train"], key=lambda t: t.index)
    assert len(tasks) == 3 and not any(t.successful for t in tasks)
    reasons = [t._doc["reason"] for t in tasks]
    assert reasons[0] == "RuntimeError: node 0 fails", reasons
    # the other nodes say the gang failed: either the scheduler heard node 0 first and stopped them ("node 0 of the
    # gang failed: ..."), or moto's one status for the whole job reached them first (it reports one exit code)
    assert all(
        "the gang's multi-node job failed" in r or r.startswith("node 0 of the gang failed: RuntimeError: node 0 fails")
        for r in reasons[1:]
    ), reasons
    assert any("node 0 fails" in text for _, _, text in tasks[0].logs())
    assert "join" not in [s.id for s in run]
    # no node's container is left, running or not
    assert [c.name for c in containers_named(docker_client, job["jobId"])] == []
    finished = [e for e in events if type(e).__name__ == "TaskFinished" and e.step == "train"]
    assert len(finished) == 3


def test_gang_job_definition_asks_for_gpus_on_every_node():
    """No GPU here: check only the definition that would be registered."""
    from workbench.backends.batch_gang import gang_job_definition
    from workbench.settings import StepSettings

    body = gang_job_definition(
        StepSettings(cpu=4, memory=16384, gpu=2, timeout=600),
        image="img:1",
        command_for_node=lambda i: ["python3", "-m", "workbench.task", "run", f"Ref::node{i}task"],
        environment={"A": "1"},
        nodes=2,
    )
    assert body["type"] == "multinode" and body["nodeProperties"]["numNodes"] == 2
    for i, node in enumerate(body["nodeProperties"]["nodeRangeProperties"]):
        reqs = {r["type"]: r["value"] for r in node["container"]["resourceRequirements"]}
        assert reqs == {"VCPU": "4", "MEMORY": "16384", "GPU": "2"}
        env = {e["name"]: e["value"] for e in node["container"]["environment"]}
        assert env.get("WORKBENCH_GANG_MAIN") == ("self" if i == 0 else None) and env["A"] == "1"
    assert body["timeout"]["attemptDurationSeconds"] == 630
    again = gang_job_definition(
        StepSettings(cpu=4, memory=16384, gpu=2, timeout=600),
        image="img:1",
        command_for_node=lambda i: ["python3", "-m", "workbench.task", "run", f"Ref::node{i}task"],
        environment={"A": "1"},
        nodes=2,
    )
    assert again["jobDefinitionName"] == body["jobDefinitionName"]  # registered once, reused


def test_cancel_mid_gang_terminates_the_job_once_and_leaves_nothing(gang_project, aws):
    config, queue, docker_client = gang_project
    events: list = []
    rt = _runtime(config, events, hold=120)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", rt.run()))
    thread.start()
    try:
        deadline, subs = time.time() + 120, []
        while time.time() < deadline:
            subs = _submissions(aws, queue, rt.run_id)
            if subs and subs[0]["status"] == "RUNNING":
                break
            time.sleep(0.5)
        assert subs and subs[0]["status"] == "RUNNING", subs
        backend = rt._backends["batch"]
        before = backend.calls["terminate_job"]
        rt.cancel("stop it")
    finally:
        thread.join(120)
    assert box["result"].status == "cancelled"
    assert backend.calls["terminate_job"] - before == 1  # the whole gang, whichever node was asked first
    [job] = _submissions(aws, queue, rt.run_id)
    assert job["status"] == "FAILED"
    assert [c.name for c in containers_named(docker_client, job["jobId"])] == []
    finished = [e for e in events if type(e).__name__ == "TaskFinished" and e.step == "train"]
    assert len(finished) == 3 and all(e.status == "cancelled" for e in finished)


def test_a_gang_that_fails_once_is_retried_whole(gang_project, aws):
    from workbench import Flow

    config, queue, _ = gang_project
    rt, result, events = _run(config, retries=1, fail_node=0, fail_once=True)
    assert result.status == "succeeded", (result.message, _why(rt.run_id))
    jobs = sorted(_submissions(aws, queue, rt.run_id), key=lambda j: j["createdAt"])
    assert [j["status"] for j in jobs] == ["FAILED", "SUCCEEDED"]  # one multi-node job per attempt
    run = Flow("GangExchangeFlow")[rt.run_id]
    assert run["join"].task.data.totals == [(0, 60), (1, 60), (2, 60)]
    for t in run["train"]:
        attempts = t._doc["attempts"]
        assert [a["status"] for a in attempts] == ["retrying", "succeeded"], attempts
        assert [a["usage"]["batch_job_id"].split("#")[0] for a in attempts] == [j["jobId"] for j in jobs]


def test_the_node_wrapper_tags_every_line_and_keeps_the_exit_code():
    """What splits moto's one stream per node: every line of node i starts with [node i]; the task's exit code
    (or 128 + the signal that killed it) is the node's."""
    import subprocess

    from workbench.backends.batch_gang import node_command, split_node_lines

    cmd = node_command(2, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    cmd[0] = sys.executable
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 3 and sorted(done.stdout.splitlines()) == ["[node 2] err", "[node 2] out"]
    killed = node_command(0, ["sh", "-c", "kill -9 $$"])
    killed[0] = sys.executable
    assert subprocess.run(killed, capture_output=True, timeout=30).returncode == 128 + 9
    events = [{"message": "[node 1] b", "timestamp": 2000}, {"message": "untagged"}, {"message": "[node 0] a"}]
    assert split_node_lines(events) == [(1, "b", 2.0), (0, "a", 0.0)]
