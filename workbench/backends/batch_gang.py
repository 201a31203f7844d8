"""@parallel gangs on AWS Batch: one multi-node parallel job per gang (a mixin of
:class:`workbench.backends.batch.BatchBackend`, and the pure builder of its job definition).

- The job definition (:func:`gang_job_definition`, type ``multinode``, content-addressed like the single ones):
  ``numNodes`` = N, ``mainNode`` 0, and one ``nodeRangeProperties`` entry per node (``targetNodes`` "0", "1",
  ...) whose command ends with its own Batch parameter ``Ref::node<i>task``: the SubmitJob's parameters name
  each node's task. AWS sets AWS_BATCH_JOB_NODE_INDEX in every node, but moto (the test server) does not, so
  the node's index is carried by its own command rather than read from that variable. Node 0's range also
  sets ``WORKBENCH_GANG_MAIN=self``: AWS gives the main node's address to the other nodes only
  (AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS), so node 0 takes its own (:mod:`workbench.gang_address`).
- Each node's command runs its task under :data:`NODE_WRAPPER`, which prefixes every line the node prints with
  ``[node <i>] `` (stderr joins stdout; signals are passed on; the exit code is the task's), so a log that holds
  every node's lines can be split per node: moto's one stream interleaves the nodes' lines by timestamp.
- Status and logs: on AWS node ``i`` is job ``<id>#<i>``, described (100 a call) with its own status, exit code
  and log stream, and reported as its own task. moto knows no node jobs: it reports one status for the whole
  job (FAILED as soon as the first node, in node order, exits non-zero, after which it kills the others), one
  exit code (list_jobs) and one log stream ``<definition>/default/<id>`` holding every node's lines, node 0's
  interleaved by time, written when each container ends. When ``<id>#<i>`` is not found the job's own status
  stands for every node and its stream is split per node by the prefixes (which are taken off).
- Stop: terminate the job (every node goes with it), one call whichever node was cancelled.
"""

from __future__ import annotations

import collections
import copy
import hashlib
import json
import re
import time
from typing import Any, Callable, Optional

from .batch_jobs import job_definition, job_name
from .remote_gang import gang_of
from .remote_jobs import JobArray, RemoteJob

NODE_TAG = re.compile(r"^\[node (\d+)\] ")
#: ``python3 -c NODE_WRAPPER <index> <command...>``: run the command, prefix its output lines with ``[node <index>] ``
NODE_WRAPPER = """
import signal, subprocess, sys
tag = ("[node %s] " % sys.argv[1]).encode()
child = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda number, frame: child.send_signal(number))
for line in iter(child.stdout.readline, b""):
    sys.stdout.buffer.write(tag + line)
    sys.stdout.flush()
code = child.wait()
sys.exit(128 - code if code < 0 else code)
"""
MAIN_ENV = "WORKBENCH_GANG_MAIN"
LOG_FOLLOW_INTERVAL = 5.0  # seconds between reads of a running gang's shared log (as for one job's)
WHOLE_GANG_FAILED = "the gang's multi-node job failed; the API reports one exit code for all its nodes"


def node_parameter(index: int) -> str:
    """The Batch parameter carrying node ``index``'s task ref. No name is a prefix of another: moto substitutes
    the first parameter whose ``Ref::`` occurs in a command word, so ``node1`` would match ``Ref::node10``."""
    return f"node{index}task"


def node_command(index: int, command: list[str]) -> list[str]:
    """Node ``index``'s command: the task's command under the wrapper that tags its lines with the node."""
    return ["python3", "-c", NODE_WRAPPER, str(index), *command]


def gang_job_definition(
    settings,
    *,
    image: str,
    command_for_node: Callable[[int], list[str]],
    environment: dict[str, str],
    nodes: int,
    job_role: Optional[str] = None,
    name_prefix: str = "workbench-gang",
) -> dict[str, Any]:
    """The ``register_job_definition`` arguments of an N-node gang: each node's container is a single task's
    container (resources, role, shared memory) with its own command; named by a hash of the content."""
    single = job_definition(settings, image=image, command=[], environment=environment, job_role=job_role)
    ranges = []
    for i in range(nodes):
        container = copy.deepcopy(single["containerProperties"])
        container["command"] = node_command(i, command_for_node(i))
        if i == 0:
            container["environment"] = sorted(
                container["environment"] + [{"name": MAIN_ENV, "value": "self"}], key=lambda e: e["name"]
            )
        ranges.append({"targetNodes": str(i), "container": container})
    body: dict[str, Any] = {
        "type": "multinode",
        "platformCapabilities": ["EC2"],
        "nodeProperties": {"numNodes": nodes, "mainNode": 0, "nodeRangeProperties": ranges},
        "retryStrategy": {"attempts": 1},  # the runtime retries the whole gang
    }
    if "timeout" in single:
        body["timeout"] = single["timeout"]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    return {"jobDefinitionName": f"{name_prefix}-{digest}", **body, "tags": {"workbench.content": digest}}


def split_node_lines(events: list[dict[str, Any]]) -> list[tuple[int, str, float]]:
    """The lines of a shared log as (node, text without its tag, seconds); untagged lines belong to no node."""
    out = []
    for event in events:
        text = event.get("message", "")
        m = NODE_TAG.match(text)
        if m:
            out.append((int(m.group(1)), text[m.end() :].rstrip("\n"), event.get("timestamp", 0) / 1000.0))
    return out


class BatchGangs:
    """Gangs for :class:`BatchBackend` (which provides _client, _call, _definition_env, _update, ...)."""

    def submit_gang(self, jobs: list[RemoteJob]) -> None:
        from ..package import ROOT_PLACEHOLDER, bootstrap_command

        first = jobs[0]
        spec = first.spec
        s = spec.settings

        def command_for_node(i: int) -> list[str]:
            cmd = spec.command(python="python3", datastore_url="Ref::datastore", root=ROOT_PLACEHOLDER)
            cmd[-1] = f"Ref::{node_parameter(i)}"
            return bootstrap_command("Ref::package", cmd)

        body = gang_job_definition(
            s,
            image=self.image_for(s),  # type: ignore[attr-defined]
            command_for_node=command_for_node,
            environment=self.definition_env(spec),  # type: ignore[attr-defined]
            nodes=len(jobs),
            job_role=self.role_for(s),  # type: ignore[attr-defined]
        )
        arn = self.register_definition(body)  # type: ignore[attr-defined]
        tags = {
            k: re.sub(r"[^\w.:/=+\-@ ]", "_", v)[:256] for k, v in spec.labels.items() if v and k != "workbench.task"
        }
        parameters = {"package": self._package_url, "datastore": spec.datastore_url}  # type: ignore[attr-defined]
        parameters.update({node_parameter(i): job.spec.ref for i, job in enumerate(jobs)})
        self.calls["submit_job"] += 1  # type: ignore[attr-defined]
        resp = self._call(  # type: ignore[attr-defined]
            "submit multi-node job",
            self._client("batch").submit_job,  # type: ignore[attr-defined]
            jobName=job_name(spec)[:100] + f"-g{len(jobs)}",
            jobQueue=first.queue,  # type: ignore[attr-defined]
            jobDefinition=arn,
            parameters=parameters,
            tags=tags,
        )
        parent = resp["jobId"]
        gang = first.array
        assert gang is not None and gang.gang
        gang.name = parent
        for i, job in enumerate(jobs):
            job.job_id = f"{parent}#{i}"  # type: ignore[attr-defined]

    def terminate_gang(self, gang: JobArray) -> None:
        """Terminating the job terminates every node (AWS and moto alike)."""
        reason = next((j.requested for j in gang.jobs if j.requested), None)
        self._terminate_id(gang.name, reason)  # type: ignore[attr-defined]
        self._wake.set()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ polling
    def poll_gangs(self, jobs: list[Any]) -> bool:
        """Nodes as ``<id>#<i>`` (AWS); those the API does not know (moto) from their gang's job as a whole."""
        changed = False
        described = self._describe([j.job_id for j in jobs])
        alone: dict[int, JobArray] = {}
        for job in jobs:
            d = described.get(job.job_id)
            if d is not None:
                changed = self._update(job, d) or changed  # type: ignore[attr-defined]
            else:
                gang = gang_of(job)
                assert gang is not None
                alone[id(gang)] = gang
        if not alone:
            return changed
        wholes = self._describe([g.name for g in alone.values()])
        for gang in alone.values():
            d = wholes.get(gang.name)
            if d is not None:
                changed = self._update_whole_gang(gang, d) or changed
        return changed

    def _describe(self, ids: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        batch = self._client("batch")  # type: ignore[attr-defined]
        for i in range(0, len(ids), 100):
            self.calls["describe_jobs"] += 1  # type: ignore[attr-defined]
            for d in batch.describe_jobs(jobs=ids[i : i + 100])["jobs"]:
                out[d["jobId"]] = d
        return out

    def _update_whole_gang(self, gang: JobArray, d: dict) -> bool:
        """Every node from the gang's one description; its one log stream split per node first."""
        status = d.get("status", "")
        container = dict(d.get("container") or {})
        stream = container.pop("logStreamName", None)  # shared by every node: never followed as one node's
        state = gang.__dict__.setdefault("log_state", {"token": None, "fetched": 0.0, "seen": collections.Counter()})
        ended = status in ("SUCCEEDED", "FAILED")
        if stream and (ended or status == "RUNNING" and time.time() - state["fetched"] >= LOG_FOLLOW_INTERVAL):
            state["fetched"] = time.time()
            self._follow_gang_log(gang, stream, again=ended)
        node_view = {**d, "container": container}
        if status == "FAILED":
            if container.get("exitCode") is None:
                container["exitCode"] = self._gang_exit_code(gang, d)
            node_view["statusReason"] = "; ".join(
                w for w in (d.get("statusReason"), WHOLE_GANG_FAILED) if w
            )  # the one exit code is the first failing node's, not necessarily this node's
        changed = False
        for job in gang.jobs:
            if not job.done and getattr(job, "ended", None) is None:
                changed = self._update(job, node_view) or changed  # type: ignore[attr-defined]
        return changed

    def _follow_gang_log(self, gang: JobArray, stream: str, *, again: bool = False) -> None:
        """Read the gang's shared stream on from where the last read stopped; ``again`` (the gang has ended):
        read it once more from the start. moto appends a node's lines when that node's container ends and keeps
        the stream sorted by time, so lines can land before a position already read (seen in CI: node 2's first
        line lost); every line is delivered once, those seen before are skipped by count."""
        from .batch import LOG_GROUP

        state = gang.__dict__["log_state"]
        seen: collections.Counter[tuple[int, str, float]] = state["seen"]
        this_pass: collections.Counter[tuple[int, str, float]] = collections.Counter()
        token = None if again else state["token"]
        logs = self._client("logs")  # type: ignore[attr-defined]
        nodes = {i: job for i, job in enumerate(gang.jobs)}
        for _ in range(10000):
            kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
            if token:
                kwargs["nextToken"] = token
            try:
                self.calls["get_log_events"] += 1  # type: ignore[attr-defined]
                resp = logs.get_log_events(**kwargs)
            except Exception:  # noqa: BLE001 - not there yet; the next round reads it
                return
            for line in split_node_lines(resp.get("events", [])):
                this_pass[line] += 1
                if this_pass[line] <= seen[line]:
                    continue  # delivered by an earlier read (or moved past the token by moto's sorting)
                seen[line] += 1
                node, text, ts = line
                job = nodes.get(node)
                if job is not None and not job.done:
                    job.on_log("stdout", text, ts)
            next_token = resp.get("nextForwardToken")
            if not next_token or next_token == token or not resp.get("events"):
                state["token"] = next_token or token
                return
            token = state["token"] = next_token

    def _gang_exit_code(self, gang: JobArray, d: dict) -> Optional[int]:
        """describe_jobs leaves the exit code out in moto; the job's summary in list_jobs has it."""
        queue = getattr(gang.jobs[0], "queue", "")
        try:
            self.calls["list_jobs"] += 1  # type: ignore[attr-defined]
            pages = self._client("batch").get_paginator("list_jobs").paginate(jobQueue=queue, jobStatus="FAILED")  # type: ignore[attr-defined]
            for page in pages:
                for summary in page.get("jobSummaryList", []):
                    if summary.get("jobId") == gang.name:
                        code = (summary.get("container") or {}).get("exitCode")
                        return int(code) if code is not None else None
        except Exception:  # noqa: BLE001
            return None
        return None
