"""Projects whose steps run on AWS Batch (moto's server) or Kubernetes (the API emulator in tests/k8s_emulator),
with moto's S3 as the datastore: the setup that the end-to-end array and gang tests of both backends share.

- :func:`batch_testbed`: the Docker engine and base image, a bucket, a job queue, and the Batch poll and log
  settle intervals at test speed.
- :func:`kube_testbed` (a context manager): a started emulator whose kubeconfig is in the project, a bucket,
  the Kubernetes poll interval at test speed; on exit the emulator stops and must have left no container.
- ``testbed.toml(name)``: ``[project]``, ``[datastore]`` and the backend's section, to which a test appends its
  ``[flows.F.steps.S]`` table (:data:`TEST_CREDENTIALS` is the ``env`` a step on S3 needs).
- :func:`write_project`: the flow file, ``.gitignore`` and ``workbench.toml`` into the project, the current
  directory inside it, and its config loaded.
- :func:`fast_batch_polling`, :func:`fast_kube_polling`: the first poll interval at test speed, for any test that
  runs Batch or Kubernetes jobs (the testbeds call them).
- :func:`validated`: wraps manifest builders so every manifest sent is checked against the official schema.
- :data:`ARRAY_FLOW`: a foreach whose indexes can fail once or sleep, for the array tests of every backend.

Use with the ``aws`` fixture of :mod:`tests.support.moto_server` (which resets moto between tests).
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.engine import base_image, docker_client_or_skip
from tests.support.moto_server import REGION, AwsTestbed

#: the ``env`` of a step that runs in a container and reads or writes moto's S3
TEST_CREDENTIALS = 'AWS_ACCESS_KEY_ID = "testing", AWS_SECRET_ACCESS_KEY = "testing"'
#: seconds between status rounds: the backends' defaults are for real clouds, far too slow for a test
POLL = "0.3"
#: the emulator's one node: room for the 10 pods at once of the widest array test
EMULATOR_CAPACITY = {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "0"}

#: ``start -> work (foreach over ARRAY_WIDTH items) -> join -> end``. Index ARRAY_FAIL raises on its first
#: attempt; every index sleeps ARRAY_SLEEP seconds, then prints the ids each backend gives it.
ARRAY_FLOW = textwrap.dedent("""
    import os
    import time
    from workbench import FlowSpec, current, step

    class ArrayFlow(FlowSpec):
        @step
        def start(self):
            self.items = list(range(int(os.environ.get("ARRAY_WIDTH", "4"))))
            self.next(self.work, foreach="items")

        @step
        def work(self):
            if self.input == int(os.environ.get("ARRAY_FAIL", "-1")) and current.retry_count == 0:
                raise RuntimeError(f"index {self.input} fails on its first attempt")
            time.sleep(float(os.environ.get("ARRAY_SLEEP", "0")))
            print(f"index {self.input} job {os.environ.get('AWS_BATCH_JOB_ID')}", flush=True)
            print(f"index {self.input} completion {os.environ.get('JOB_COMPLETION_INDEX')} "
                  f"pod {os.environ.get('WORKBENCH_KUBERNETES_POD')}", flush=True)
            self.out = self.input * 10
            self.next(self.join)

        @step
        def join(self, inputs):
            self.total = sum(i.out for i in inputs)
            self.next(self.end)

        @step
        def end(self):
            pass
""").lstrip()


def s3_datastore_toml(bucket: str, endpoint: str) -> str:
    return f'[datastore]\nroot = "s3://{bucket}/wb"\nendpoint_url = "{endpoint}"\nregion = "{REGION}"\n'


@dataclass
class BatchTestbed:
    docker: Any  # docker.DockerClient
    image: str
    endpoint: str
    bucket: str
    queue: str

    def toml(self, project: str) -> str:
        return (
            f'[project]\nname = "{project}"\n\n{s3_datastore_toml(self.bucket, self.endpoint)}\n'
            f'[batch]\njob_queue = "{self.queue}"\nimage = "{self.image}"\nendpoint_url = "{self.endpoint}"\n'
        )


def batch_testbed(
    aws: AwsTestbed, monkeypatch: pytest.MonkeyPatch, queue: str = "wb-queue", *, poll: str = POLL
) -> BatchTestbed:
    """The engine, image, a bucket and a job queue on moto; Batch polled every ``poll`` seconds."""
    client = docker_client_or_skip()
    image = base_image(client)
    bucket = aws.bucket()
    name = aws.batch_queue(queue)
    fast_batch_polling(monkeypatch, poll)
    return BatchTestbed(client, image, aws.endpoint, bucket, name)


def fast_batch_polling(env: pytest.MonkeyPatch, poll: str = POLL) -> None:
    """Batch polled every ``poll`` seconds; an ended job's log read after half a second (production: 2 s).

    The back-off while nothing changes keeps its production cap (10 s). Capping it at 1 s made a single long
    job's end seen sooner (test_batch_backend 86 s -> 46 s at load 8, 39 s -> 36 s at load 2) but the gang tests
    slower (test_parallel_batch 92 s -> 106 s and 50 s -> 64 s in two back-to-back pairs), reason not yet found."""
    env.setenv("WORKBENCH_BATCH_POLL", poll)
    env.setenv("WORKBENCH_BATCH_LOG_SETTLE", "0.5")


def fast_kube_polling(env: pytest.MonkeyPatch, poll: str = POLL) -> None:
    """Kubernetes polled every ``poll`` seconds (its back-off keeps the production cap of 5 s: capped at 1 s the
    gang tests ran slower, test_parallel_kubernetes 82 s -> 113 s at the same load)."""
    env.setenv("WORKBENCH_K8S_POLL", poll)


@dataclass
class KubeTestbed:
    emu: Any  # tests.k8s_emulator.server.KubeEmulator
    image: str
    endpoint: str
    bucket: str

    def toml(self, project: str, *, parallelism: int | None = None) -> str:
        extra = "" if parallelism is None else f"parallelism = {parallelism}\n"
        return (
            f'[project]\nname = "{project}"\n\n{s3_datastore_toml(self.bucket, self.endpoint)}\n'
            f'[kubernetes]\nkubeconfig = "kubeconfig"\nimage = "{self.image}"\nnamespace = "default"\n{extra}'
        )


@contextlib.contextmanager
def kube_testbed(
    aws: AwsTestbed, root: Path, monkeypatch: pytest.MonkeyPatch, *, poll: str = POLL
) -> Iterator[KubeTestbed]:
    """A started emulator with its kubeconfig at ``root/kubeconfig``, and a bucket; Kubernetes polled every
    ``poll`` seconds. On leaving, the emulator stops and must have removed every container it started."""
    from tests.k8s_emulator.server import KubeEmulator

    client = docker_client_or_skip()
    image = base_image(client)
    emu = KubeEmulator(
        node_capacity=EMULATOR_CAPACITY, docker_client=client, grace_period_cap=2.0, backoff_seconds=0.5
    ).start()
    try:
        fast_kube_polling(monkeypatch, poll)
        monkeypatch.delenv("KUBECONFIG", raising=False)
        emu.write_kubeconfig(root / "kubeconfig")
        yield KubeTestbed(emu, image, aws.endpoint, aws.bucket())
    finally:
        emu.stop()
    assert emu.containers() == [], "the emulator left containers behind"


def write_project(root: Path, monkeypatch: pytest.MonkeyPatch, flow_file: str, flow_text: str, toml: str):
    """``root/flows/<flow_file>``, ``.gitignore`` and ``workbench.toml``; the current directory in ``root`` and
    no datastore or config from the environment. Returns the loaded config."""
    from workbench.config import load_config

    (root / "flows").mkdir(exist_ok=True)
    (root / "flows" / flow_file).write_text(flow_text)
    (root / ".gitignore").write_text(".workbench/\nkubeconfig\n")
    (root / "workbench.toml").write_text(toml)
    monkeypatch.chdir(root)
    for var in ("WORKBENCH_DATASTORE", "WORKBENCH_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return load_config(root)


def validated(monkeypatch: pytest.MonkeyPatch, owner: Any, *builders: str) -> dict[str, list]:
    """Replace each manifest builder ``owner.<name>`` by one that checks what it builds against the official
    Kubernetes 1.31 schema (strict) before it is sent; returns the manifests built, by builder name."""
    kv = pytest.importorskip("kubernetes_validate")
    sent: dict[str, list] = {name: [] for name in builders}
    for name in builders:
        original = getattr(owner, name)

        def checked(*args, _original=original, _name=name, **kwargs):
            manifest = _original(*args, **kwargs)
            kv.validate(manifest, "1.31", strict=True)
            sent[_name].append(manifest)
            return manifest

        monkeypatch.setattr(owner, name, checked)
    return sent
