"""@parallel on AWS Batch as AWS reports it: every node of a multi-node job is a job of its own, ``<id>#<i>``, with
its own status and exit code. moto has no node jobs (it answers only for the parent), so this test runs a real
gang on moto's server and real containers, and injects AWS's node answers on top of moto's: DescribeJobs of
``<id>#<i>`` answers what AWS would for a gang whose node 1 has failed while the others are still running.
What a user checks: node 1's task fails with ITS exit code and the reason AWS gives, the other nodes are stopped
because node 1 failed (all or nothing), the gang's job is terminated once, and no container is left."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.moto_server import aws, moto_server  # noqa: F401  (fixtures)
from tests.test_parallel_batch import _runtime, _submissions, gang_project  # noqa: F401  (fixture)

pytest.importorskip("boto3")

FAILED_NODE = 1


class NodeJobsBatch:
    """The backend's boto3 Batch client, with AWS's node jobs: ``<id>#<i>`` described from the parent's real
    status in moto, except node FAILED_NODE, which has failed with exit code 7 once the parent is RUNNING."""

    def __init__(self, real):
        self._real = real
        self.node_queries = 0

    def __getattr__(self, name):
        return getattr(self._real, name)

    def describe_jobs(self, jobs):
        nodes = [j for j in jobs if "#" in j]
        answer = self._real.describe_jobs(jobs=[j for j in jobs if "#" not in j]) if len(nodes) < len(jobs) else {}
        out = list(answer.get("jobs", []))
        if nodes:
            self.node_queries += 1
            parents = {j.split("#")[0] for j in nodes}
            described = {d["jobId"]: d for d in self._real.describe_jobs(jobs=sorted(parents))["jobs"]}
            for node_id in nodes:
                parent_id, index = node_id.split("#")
                parent = described.get(parent_id)
                if parent is None:
                    continue
                status = parent["status"]
                node = {"jobId": node_id, "jobName": parent["jobName"], "status": status, "container": {}}
                if int(index) == FAILED_NODE and status in ("RUNNING", "SUCCEEDED", "FAILED"):
                    node["status"] = "FAILED"
                    node["statusReason"] = "Essential container in task exited"
                    node["container"] = {"exitCode": 7, "reason": "node 1 lost its GPU"}
                out.append(node)
        return {"jobs": out}


def test_a_node_job_failing_on_its_own_fails_the_gang_with_its_exit_code(gang_project, aws, monkeypatch):  # noqa: F811
    from workbench import Flow
    from workbench import aws as wb_aws

    config, queue, docker_client = gang_project
    clients: list[NodeJobsBatch] = []
    real_client = wb_aws.client

    def client(service, **kwargs):
        c = real_client(service, **kwargs)
        if service == "batch":
            clients.append(NodeJobsBatch(c))
            return clients[-1]
        return c

    monkeypatch.setattr(wb_aws, "client", client)
    events: list = []
    rt = _runtime(config, events, hold=120)  # every node would wait 2 minutes: only node 1's failure ends it early
    box = {}
    started = time.time()
    thread = threading.Thread(target=lambda: box.setdefault("result", rt.run()))
    thread.start()
    thread.join(240)
    assert not thread.is_alive(), "the gang was not stopped when node 1 failed"
    result = box["result"]
    assert result.status == "failed"
    assert time.time() - started < 110, "the run waited for the nodes to end instead of failing at node 1"
    assert clients and sum(c.node_queries for c in clients) > 0  # the per-node path was the one polled

    run = Flow("GangExchangeFlow")[rt.run_id]
    tasks = sorted(run["train"], key=lambda t: t.index)
    assert len(tasks) == 3 and not any(t.successful for t in tasks)
    node1 = tasks[FAILED_NODE]._doc
    [attempt] = node1.attempts
    assert (node1.status, attempt.exit_code) == ("failed", 7), node1
    assert node1.reason == "exited with code 7 (Essential container in task exited; node 1 lost its GPU)"
    assert attempt.usage["batch_job_id"] == f"{_submissions(aws, queue, rt.run_id)[0]['jobId']}#1"
    others = [tasks[i]._doc["reason"] for i in (0, 2)]
    assert all(r.startswith("node 1 of the gang failed") for r in others), others
    [job] = _submissions(aws, queue, rt.run_id)
    assert job["status"] == "FAILED"  # terminated: moto marks the stopped job FAILED
    assert rt._backends["batch"].calls["terminate_job"] == 1
    assert [c.name for c in docker_client.containers.list(all=True) if job["jobId"] in c.name] == []


def test_the_shared_gang_log_delivers_a_line_moto_sorted_in_before_a_read_position():
    """moto appends a node's lines when its container ends and keeps the stream sorted by time, with list
    positions as tokens: node 2's first line can land before where the follower had read to (seen in CI: lost).
    Read once more from the start when the gang ends; every line reaches its node exactly once."""
    from collections import Counter
    from types import SimpleNamespace

    from workbench.backends.batch_gang import BatchGangs
    from workbench.backends.remote_jobs import JobArray

    stream: list[dict] = []

    class Logs:
        def get_log_events(self, logGroupName, logStreamName, startFromHead, nextToken=None):  # noqa: N803
            start = int(nextToken.split("/")[1]) if nextToken else 0
            events = stream[start : start + 2]  # small pages
            return {"events": events, "nextForwardToken": f"f/{start + len(events)}"}

    def line(node, ts, text):
        return {"timestamp": ts, "message": f"[node {node}] {text}"}

    got: dict[int, list[str]] = {0: [], 1: [], 2: []}
    jobs = [SimpleNamespace(done=False, on_log=lambda _stream, text, _ts, i=i: got[i].append(text)) for i in range(3)]
    gang = JobArray(jobs, name="gang")  # type: ignore[arg-type]
    gangs = BatchGangs()
    gangs._client = lambda service: Logs()  # type: ignore[attr-defined]
    gangs.calls = Counter()  # type: ignore[attr-defined]
    gangs._update = lambda job, d: False  # type: ignore[attr-defined]

    stream += [line(0, 1000, "node 0 up"), line(1, 1500, "node 1 up"), line(0, 3000, "node 0 total 60")]
    gangs._update_whole_gang(gang, {"status": "RUNNING", "container": {"logStreamName": "s"}})
    assert got == {0: ["node 0 up", "node 0 total 60"], 1: ["node 1 up"], 2: []}
    # node 2's container ends: its lines go in by time, before the position already read
    stream[:] = sorted(
        stream + [line(2, 1200, "node 2 up"), line(2, 3100, "node 2 total 60")], key=lambda e: e["timestamp"]
    )
    gangs._update_whole_gang(gang, {"status": "SUCCEEDED", "container": {"logStreamName": "s"}})
    gangs._update_whole_gang(gang, {"status": "SUCCEEDED", "container": {"logStreamName": "s"}})  # a second round
    assert got == {0: ["node 0 up", "node 0 total 60"], 1: ["node 1 up"], 2: ["node 2 up", "node 2 total 60"]}
