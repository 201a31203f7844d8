"""@parallel gangs in the remote-job base (workbench.backends.remote_gang), in milliseconds with an in-process
backend whose API is a list of calls, and where a node finds node 0 (workbench.gang_address). The same
behaviour runs end to end in test_parallel_batch.py (moto) and test_parallel_kubernetes.py (the emulator)."""

from __future__ import annotations

import dataclasses
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.test_array_base import ArrayRemote, _spec, _wait  # noqa: E402
from workbench.gang_address import main_ip  # noqa: E402


class GangRemote(ArrayRemote):
    """ArrayRemote that also runs gangs: one ("gang", ids) call per gang, one ("terminate gang", ids) per stop."""

    def submit_gang(self, jobs):
        jobs[0].array.name = f"gang-{jobs[0].spec.task_id}"
        self.api.append(("gang", tuple(j.spec.task_id for j in jobs)))

    def terminate_gang(self, gang):
        self.api.append(("terminate gang", tuple(j.spec.task_id for j in gang.jobs)))
        for job in gang.unreported():
            self.conclude(job, self._requested_exit(job))


@pytest.fixture
def remote():
    backend = GangRemote()
    ctx = SimpleNamespace(warn=lambda m: None, datastore=SimpleNamespace(storage=None), run_id="1")
    backend.start_run(ctx)
    exits: dict[str, list] = {}
    handles = {}

    def submit(task_id, *, node=None, nodes=3, step="train", attempt=0):
        spec = _spec(task_id, step, attempt)
        if node is not None:
            spec = dataclasses.replace(
                spec, parallel={"gang": "start/1", "node_index": node, "num_nodes": nodes, "control_task_id": "2"}
            )
        exits[task_id] = []
        handles[task_id] = backend.submit(spec, lambda *a: None, exits[task_id].append)
        return handles[task_id]

    yield SimpleNamespace(backend=backend, submit=submit, exits=exits, handles=handles)
    backend.end_run(ctx)


def test_a_gang_goes_out_whole_in_node_order_never_mixed_with_an_array(remote):
    for task_id in ("10", "11"):  # a foreach's burst of the same step meanwhile
        remote.submit(task_id)
    remote.submit("4", node=2)
    remote.submit("2", node=0)
    remote.submit("3", node=1)
    assert _wait(lambda: len(remote.backend.api) == 2)
    assert sorted(remote.backend.api) == [("array", ("10", "11")), ("gang", ("2", "3", "4"))]


def test_a_gang_waits_for_its_last_node(remote):
    remote.submit("2", node=0)
    remote.submit("3", node=1)
    assert not _wait(lambda: remote.backend.api, timeout=0.5)  # two of three: nothing goes
    remote.submit("4", node=2)
    assert _wait(lambda: remote.backend.api == [("gang", ("2", "3", "4"))])


def test_a_node_cancelled_before_the_gang_went_out_takes_the_gang_with_it(remote):
    remote.submit("2", node=0)
    remote.submit("3", node=1)
    remote.handles["2"].cancel("node 0 of the gang failed")
    remote.submit("4", node=2)
    assert _wait(lambda: all(remote.exits[t] for t in ("2", "3", "4")))
    assert not [call for call in remote.backend.api if call[0] == "gang"]  # never sent
    assert [remote.exits[t][0].status for t in ("2", "3", "4")] == ["cancelled"] * 3
    assert "another node of the gang was stopped before it started" in remote.exits["3"][0].reason


def test_stopping_one_node_stops_the_whole_gang_in_one_call(remote):
    for node, task_id in enumerate(("2", "3", "4")):
        remote.submit(task_id, node=node)
    assert _wait(lambda: remote.backend.api == [("gang", ("2", "3", "4"))])
    remote.handles["3"].cancel("stop it")
    assert _wait(lambda: all(remote.exits[t] for t in ("2", "3", "4")))
    assert remote.backend.api[1:] == [("terminate gang", ("2", "3", "4"))]
    assert [len(remote.exits[t]) for t in ("2", "3", "4")] == [1, 1, 1]  # on_exit exactly once each
    assert remote.exits["3"][0].reason == "stop it"
    assert remote.exits["2"][0].reason == remote.exits["4"][0].reason == "the gang stopped: stop it"


def test_a_retried_gang_is_a_new_gang(remote):
    for node, task_id in enumerate(("2", "3")):
        remote.submit(task_id, node=node, nodes=2)
    assert _wait(lambda: remote.backend.api == [("gang", ("2", "3"))])
    for node, task_id in enumerate(("2", "3")):
        remote.submit(task_id, node=node, nodes=2, attempt=1)
    assert _wait(lambda: remote.backend.api == [("gang", ("2", "3"))] * 2)


# ---------------------------------------------------------------------------------------- node 0's address


def _never(host):
    raise socket.gaierror(-2, "Name or service not known")


@pytest.mark.parametrize(
    "env, want",
    [
        ({}, "127.0.0.1"),  # local and Docker: every node on this machine
        ({"MF_PARALLEL_MAIN_IP": "10.0.0.9", "WORKBENCH_GANG_MAIN_HOST": "x"}, "10.0.0.9"),  # Metaflow's wins
        ({"AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.1.2.3"}, "10.1.2.3"),  # Batch nodes 1..N-1
        ({"AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": ""}, "127.0.0.1"),  # moto on the host network
    ],
)
def test_main_ip_in_order(env, want):
    assert main_ip(env, resolve=_never, wait=0) == want


def test_kubernetes_node_0_is_resolved_and_waited_for():
    answers = iter([socket.gaierror(-2, "not yet"), "10.2.0.7"])

    def resolve(host):
        assert host == "wb-job-0.wb-job"
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert main_ip({"WORKBENCH_GANG_MAIN_HOST": "wb-job-0.wb-job"}, resolve=resolve, wait=10) == "10.2.0.7"


def test_an_unresolvable_node_0_falls_back_to_its_name(capsys):
    assert main_ip({"WORKBENCH_GANG_MAIN_HOST": "wb-job-0.wb-job"}, resolve=_never, wait=0) == "wb-job-0.wb-job"
    assert "did not resolve" in capsys.readouterr().err


def test_batch_node_0_takes_its_own_address():
    ip = main_ip({"WORKBENCH_GANG_MAIN": "self", "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.9.9.9"})
    assert ip != "10.9.9.9" and socket.inet_aton(ip)  # an address of its own host, never the variable
