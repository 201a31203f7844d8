"""The backends the contract suite runs over: one class per backend, listed in ``BACKENDS``.

Adding a backend to the suite is one change here: a :class:`ContractBackend` subclass that says how to set up
its engine or server (shared by the whole module), what a project needs in workbench.toml to use it, what of a
run is still alive in that engine (processes, containers, jobs, pods), and what it cannot do, with the reason
(``oom`` and ``live_logs``: ``None`` means it can). Then add the class to ``BACKENDS``.

The ``contract`` fixture is module-scoped and parametrized over ``BACKENDS``: pytest runs every test of a
module for one backend before starting the next, so each server (moto, the Kubernetes emulator) starts once.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import ClassVar, Optional

import pytest

from tests.support.engine import base_image, containers_named, docker_client_or_skip
from tests.support.moto_server import REGION, AwsTestbed, moto_server, use_moto  # noqa: F401  (fixture)
from tests.support.remote_projects import fast_batch_polling, fast_kube_polling

from .harness import Harness, read_proc

DUMMY_CREDENTIALS = 'env = { AWS_ACCESS_KEY_ID = "testing", AWS_SECRET_ACCESS_KEY = "testing" }'


class ContractBackend:
    """What the contract suite needs to know about one backend."""

    name: ClassVar[str]
    project_name: str = ""  # [project] name of the suite's project (set before setup)
    #: None, or why this backend cannot be asked to enforce a memory limit (the OOM scenario is skipped)
    oom: ClassVar[Optional[str]] = None
    #: words the OOM reason must contain, where memory is enforced (the flow asks for 64 MiB)
    oom_words: ClassVar[tuple[str, ...]] = ()
    #: None, or why log lines only arrive after the task has ended (the "live" half of the logs scenario skips)
    live_logs: ClassVar[Optional[str]] = None
    #: seconds the engine may take, after a run has returned, to remove what the run had started
    cleanup_grace: ClassVar[float] = 0.0

    def setup(self, request, stack: contextlib.ExitStack, env: pytest.MonkeyPatch, project: Path) -> None:
        """Start or reach the engine/server (once per module); undo everything through ``stack``/``env``."""

    def toml(self) -> str:
        """workbench.toml sections (after [project]) this backend needs."""
        return ""

    def step_table(self) -> str:
        """Extra lines of each ``[flows.F.steps.S]`` table whose step runs on this backend."""
        return ""

    def running(self, run_id: str, step: str) -> int:
        """How many tasks of ``step`` in run ``run_id`` are running now, as the engine sees it."""
        raise NotImplementedError

    def leftovers(self, run_id: str, events: list) -> list[str]:
        """Whatever of run ``run_id`` is still alive or present in the engine (should be nothing after a run)."""
        raise NotImplementedError


class LocalContract(ContractBackend):
    name = "local"
    oom = "the local backend does not enforce memory limits (tasks are plain processes)"

    def running(self, run_id, step):
        return len(_marked_processes(run_id))

    def leftovers(self, run_id, events):
        """Processes started by the run: the marked children, anything in a task's process group, and any child
        process of this test process (the warm worker)."""
        task_pids = {
            int(w[4:])
            for e in events
            if type(e).__name__ == "LogLine" and run_id in e.pathspec
            for w in e.text.split()
            if w.startswith("pid=")
        }
        marked = _marked_processes(run_id)
        out = []
        for pid, info in read_proc().items():
            if info["state"] == "Z":
                continue  # a zombie holds nothing: it is gone but for its exit status
            if pid in marked or info["pgrp"] in task_pids or info["ppid"] == os.getpid():
                out.append(f"process {pid}: {info['cmdline'][:120]}")
        return out


def _marked_processes(run_id: str) -> set[int]:
    marker = f"contract-{run_id}"
    return {pid for pid, info in read_proc().items() if info["state"] != "Z" and marker in info["cmdline"]}


class DockerContract(ContractBackend):
    name = "docker"
    oom_words = ("killed: out of memory (limit 64M)",)

    def setup(self, request, stack, env, project):
        self.client = docker_client_or_skip()
        self.image = base_image(self.client)
        stack.callback(self._remove_ours)

    def _remove_ours(self):
        for c in self.client.containers.list(all=True, filters={"label": f"workbench.project={self.project_name}"}):
            c.remove(force=True)

    def toml(self):
        return f'[docker]\nimage = "{self.image}"\n'

    def running(self, run_id, step):
        return len(
            self.client.containers.list(filters={"label": [f"workbench.run={run_id}", f"workbench.step={step}"]})
        )

    def leftovers(self, run_id, events):
        return [
            f"container {c.name} ({c.status})"
            for c in self.client.containers.list(all=True, filters={"label": f"workbench.run={run_id}"})
        ]


def _s3_datastore(bucket: str, endpoint: str) -> str:
    return f'[datastore]\nroot = "s3://{bucket}/wb"\nendpoint_url = "{endpoint}"\nregion = "{REGION}"\n'


class BatchContract(ContractBackend):
    name = "batch"
    oom = "moto's Batch records a job's memory but does not enforce it (no limit on the job's container)"
    live_logs = "moto's Batch delivers a job's CloudWatch log stream only after its container has exited"
    cleanup_grace = 20.0

    def setup(self, request, stack, env, project):
        self.docker = docker_client_or_skip()
        self.image = base_image(self.docker)
        pytest.importorskip("boto3")
        self.endpoint = request.getfixturevalue("moto_server")
        use_moto(env, self.endpoint)
        fast_batch_polling(env, "0.2")
        self.aws = AwsTestbed(self.endpoint)
        self.bucket = self.aws.bucket()
        self.queue = self.aws.batch_queue(f"wbc-{uuid.uuid4().hex[:8]}")

    def toml(self):
        return (
            _s3_datastore(self.bucket, self.endpoint)
            + f'\n[batch]\njob_queue = "{self.queue}"\nimage = "{self.image}"\nendpoint_url = "{self.endpoint}"\n'
        )

    def step_table(self):
        return DUMMY_CREDENTIALS

    def _jobs(self, run_id: str) -> list[dict]:
        return [j for j in self.aws.jobs(self.queue) if run_id in j["jobName"]]

    def running(self, run_id, step):
        return sum(1 for j in self._jobs(run_id) if j["status"] == "RUNNING" and f"-{step}-{run_id}" in j["jobName"])

    def _ended_array(self, job_id: str) -> bool:
        """An array job's parent whose children have all ended. moto only moves a parent on (to SUCCEEDED) when it
        is described after every child succeeded; with a failed or terminated child it stays SUBMITTED, where AWS
        says FAILED: the children say whether anything of it is left."""
        batch = self.aws.client("batch")
        if ":" in job_id or not batch.describe_jobs(jobs=[job_id])["jobs"][0].get("arrayProperties"):
            return False
        children = batch.list_jobs(arrayJobId=job_id)["jobSummaryList"]
        return bool(children) and all(c["status"] in ("SUCCEEDED", "FAILED") for c in children)

    def leftovers(self, run_id, events):
        jobs = [
            f"job {j['jobName']} {j['status']}"
            for j in self._jobs(run_id)
            if j["status"] not in ("SUCCEEDED", "FAILED") and not self._ended_array(j["jobId"])
        ]
        containers = [f"container {c.name} ({c.status})" for c in containers_named(self.docker, run_id)]
        return jobs + containers


class KubernetesContract(ContractBackend):
    name = "kubernetes"
    oom_words = ("OOMKilled", "memory limit of 64Mi")
    cleanup_grace = 20.0

    def setup(self, request, stack, env, project):
        pytest.importorskip("kubernetes")
        pytest.importorskip("boto3")
        self.docker = docker_client_or_skip()
        self.image = base_image(self.docker)
        self.endpoint = request.getfixturevalue("moto_server")
        use_moto(env, self.endpoint)
        fast_kube_polling(env, "0.2")
        env.delenv("KUBECONFIG", raising=False)
        self.bucket = AwsTestbed(self.endpoint).bucket()
        from tests.k8s_emulator.server import KubeEmulator

        self.emu = KubeEmulator(
            node_capacity={"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "0"},
            docker_client=self.docker,
            grace_period_cap=2.0,
            backoff_seconds=0.5,
        ).start()
        stack.callback(self._stop)
        self.kubeconfig = self.emu.write_kubeconfig(project / "kubeconfig")
        self._validate_manifests(env)
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration)
        api = stack.enter_context(client.ApiClient(configuration))
        self.batch, self.core = client.BatchV1Api(api), client.CoreV1Api(api)

    def _stop(self):
        self.emu.stop()
        assert self.emu.containers() == [], "the emulator left containers behind"

    @staticmethod
    def _validate_manifests(env: pytest.MonkeyPatch) -> None:
        """Every Job the backend submits is checked against the official batch/v1 schema first."""
        kv = pytest.importorskip("kubernetes_validate")
        from workbench.backends.kubernetes import KubernetesBackend

        original = KubernetesBackend.manifest_for

        def manifest_for(self, spec):
            manifest = original(self, spec)
            kv.validate(manifest, "1.31", strict=True)
            return manifest

        env.setattr(KubernetesBackend, "manifest_for", manifest_for)

    def toml(self):
        return (
            _s3_datastore(self.bucket, self.endpoint)
            + f'\n[kubernetes]\nkubeconfig = "kubeconfig"\nimage = "{self.image}"\nnamespace = "default"\n'
        )

    def step_table(self):
        return DUMMY_CREDENTIALS

    def _selector(self, run_id: str, step: Optional[str] = None) -> str:
        from workbench.backends.k8s_manifest import label_value

        return f"workbench.run={label_value(run_id)}" + (f",workbench.step={label_value(step)}" if step else "")

    def running(self, run_id, step):
        pods = self.core.list_namespaced_pod("default", label_selector=self._selector(run_id, step)).items
        return sum(1 for p in pods if p.status.phase == "Running")

    def leftovers(self, run_id, events):
        selector = self._selector(run_id)
        jobs = [
            f"job {j.metadata.name}" for j in self.batch.list_namespaced_job("default", label_selector=selector).items
        ]
        pods = [
            f"pod {p.metadata.name} ({p.status.phase})"
            for p in self.core.list_namespaced_pod("default", label_selector=selector).items
        ]
        containers = [f"container {c.name} ({c.status})" for c in self.emu.containers()]
        return jobs + pods + containers


BACKENDS: list[type[ContractBackend]] = [LocalContract, DockerContract, BatchContract, KubernetesContract]


@pytest.fixture(scope="module", params=BACKENDS, ids=[b.name for b in BACKENDS])
def contract(request, tmp_path_factory):
    """A project whose contract-flow steps (all but start and end) run on one backend, and a harness to run
    them; shared by every test of the module for that backend."""
    backend = request.param()
    backend.project_name = f"wbc-{backend.name}-{uuid.uuid4().hex[:8]}"  # labels containers: unique per session
    project = tmp_path_factory.mktemp(f"contract-{backend.name}")
    with contextlib.ExitStack() as stack:
        env = stack.enter_context(pytest.MonkeyPatch.context())
        for var in ("WORKBENCH_DATASTORE", "WORKBENCH_CONFIG"):
            env.delenv(var, raising=False)
        backend.setup(request, stack, env, project)
        harness = Harness(backend, project, env)
        yield harness
        harness.close()
