"""The Kubernetes Job built for a task (pure functions): every field that matters asserted, and every
manifest validated against the official Kubernetes OpenAPI schema (kubernetes-validate, strict)."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from workbench.backends.base import TaskSpec  # noqa: E402
from workbench.backends.k8s_manifest import (  # noqa: E402
    JOB_LABEL,
    JobOptions,
    cpu_quantity,
    job_manifest,
    job_name,
    label_value,
    load_template,
    mib_quantity,
)
from workbench.config import ProjectConfig  # noqa: E402
from workbench.errors import ConfigError  # noqa: E402
from workbench.settings import StepSettings  # noqa: E402
from workbench.units import parse_memory  # noqa: E402

K8S_VERSION = "1.31"
LABELS = {
    "workbench.project": "My Project!",
    "workbench.flow": "TrainFlow",
    "workbench.run": "1700000000000000",
    "workbench.step": "train",
    "workbench.task": "7",
    "workbench.attempt": "0",
}


def validate(manifest: dict) -> dict:
    kv = pytest.importorskip("kubernetes_validate")
    kv.validate(manifest, K8S_VERSION, strict=True)
    return manifest


def _container(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


def test_gpu_cpu_memory_shm_tolerations_selector_secrets_field_by_field():
    s = StepSettings(
        backend="kubernetes",
        cpu=4,
        memory=parse_memory("16G"),
        gpu=1,
        shared_memory=parse_memory("2G"),
        disk=parse_memory("50G"),
        timeout=600,
        env={"MODE": "fast"},
    )
    opts = JobOptions(
        namespace="ml",
        service_account="trainer",
        image_pull_secrets=["regcred"],
        node_selector={"node.kubernetes.io/instance-type": "g5.xlarge"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        secrets=["aws-creds", "wandb"],
        labels={"team": "vision"},
        annotations={"owner": "ana"},
        deadline_grace=30,
    )
    command = ["python3", "-c", "BOOT", "s3://b/p/TrainFlow/packages/abc.tgz", "python3", "-m", "workbench.task"]
    job = validate(
        job_manifest(
            name="wb-trainflow-train-7-0-abcdef12",
            settings=s,
            image="registry.example/train:1",
            command=command,
            env={**s.env, "WORKBENCH_S3_ENDPOINT_URL": "http://s3.local"},
            labels=LABELS,
            options=opts,
            template=load_template(),
        )
    )
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    meta = job["metadata"]
    assert meta["name"] == "wb-trainflow-train-7-0-abcdef12" and meta["namespace"] == "ml"
    assert meta["labels"]["workbench.project"] == "My_Project"  # sanitised to a valid label value
    assert {
        k: meta["labels"][k]
        for k in (
            "workbench.flow",
            "workbench.run",
            "workbench.step",
            "workbench.task",
            "team",
            "app.kubernetes.io/managed-by",
        )
    } == {
        "workbench.flow": "TrainFlow",
        "workbench.run": "1700000000000000",
        "workbench.step": "train",
        "workbench.task": "7",
        "team": "vision",
        "app.kubernetes.io/managed-by": "workbench",
    }
    assert meta["annotations"] == {"owner": "ana"}
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 630
    assert spec["ttlSecondsAfterFinished"] == 600
    assert spec["completions"] == spec["parallelism"] == 1
    tmeta = spec["template"]["metadata"]
    assert tmeta["labels"][JOB_LABEL] == "wb-trainflow-train-7-0-abcdef12"
    assert tmeta["labels"]["workbench.run"] == "1700000000000000"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "trainer"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"node.kubernetes.io/instance-type": "g5.xlarge"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}]
    c = _container(job)
    assert c["name"] == "task" and c["image"] == "registry.example/train:1"
    assert c["command"] == command and "args" not in c
    assert c["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi", "ephemeral-storage": "50Gi"},
        "limits": {"memory": "16Gi", "ephemeral-storage": "50Gi", "nvidia.com/gpu": "1"},
    }
    assert c["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
    assert c["envFrom"] == [{"secretRef": {"name": "aws-creds"}}, {"secretRef": {"name": "wandb"}}]
    env = {e["name"]: e for e in c["env"]}
    assert env["MODE"] == {"name": "MODE", "value": "fast"}
    assert env["WORKBENCH_S3_ENDPOINT_URL"]["value"] == "http://s3.local"
    assert env["WORKBENCH_KUBERNETES_POD"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # never a credential in the manifest
    assert not any(k.startswith("AWS_SECRET") or k == "AWS_ACCESS_KEY_ID" for k in env)


def test_small_cpu_only_step_and_other_gpu_vendors():
    s = StepSettings(backend="kubernetes", cpu=0.5, memory=300)
    job = validate(
        job_manifest(name="wb-f-s-1-0-00000000", settings=s, image="img", command=["true"], env={}, labels=LABELS)
    )
    c = _container(job)
    assert c["resources"] == {"requests": {"cpu": "500m", "memory": "300Mi"}, "limits": {"memory": "300Mi"}}
    assert "activeDeadlineSeconds" not in job["spec"] and "volumes" not in job["spec"]["template"]["spec"]
    for vendor, key in (("amd", "amd.com/gpu"), ("nvidia.com/mig-1g.5gb", "nvidia.com/mig-1g.5gb")):
        s2 = StepSettings(backend="kubernetes", cpu=2, memory=2048, gpu=2)
        j2 = validate(
            job_manifest(
                name="wb-f-s-1-0-00000000",
                settings=s2,
                image="img",
                command=["true"],
                env={},
                labels=LABELS,
                options=JobOptions(gpu_vendor=vendor),
            )
        )
        assert _container(j2)["resources"]["limits"][key] == "2"
    with pytest.raises(ConfigError, match="unknown gpu_vendor"):
        job_manifest(
            name="x",
            settings=StepSettings(gpu=1),
            image="i",
            command=["true"],
            env={},
            labels={},
            options=JobOptions(gpu_vendor="voodoo"),
        )


def test_quantities_names_and_label_values():
    assert cpu_quantity(1) == "1" and cpu_quantity(0.25) == "250m" and cpu_quantity(2.5) == "2500m"
    assert mib_quantity(1024) == "1Gi" and mib_quantity(1536) == "1536Mi" and mib_quantity(64) == "64Mi"
    assert label_value("a b/c") == "a_b_c" and label_value("-x-") == "x"
    long = label_value("x" * 100)
    assert len(long) <= 63 and long != label_value("x" * 99)
    rx = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    for args in (
        ("TrainFlow", "train", "7", 0, "1700000000000000"),
        ("A_Very_Long_Flow_Name_That_Goes_On_And_On", "step_with_underscores_and_more", "123456", 3, "r"),
        ("9Flow", "_s", "1", 0, "r"),
    ):
        name = job_name(*args)
        assert rx.match(name) and len(name) <= 52, name
    assert job_name("F", "s", "1", 0, "r1") != job_name("F", "s", "1", 1, "r1") != job_name("F", "s", "1", 0, "r2")


def test_user_template_is_the_base_and_cannot_turn_on_retries(tmp_path):
    (tmp_path / "job.yaml").write_text(
        textwrap.dedent("""
        apiVersion: batch/v1
        kind: Job
        metadata:
          annotations: {cost-center: "42"}
        spec:
          backoffLimit: 6
          ttlSecondsAfterFinished: 60
          template:
            spec:
              priorityClassName: batch-low
              tolerations: [{key: spot, operator: Exists}]
              containers:
                - name: task
                  securityContext: {allowPrivilegeEscalation: false}
                  env: [{name: FROM_TEMPLATE, value: "1"}]
    """)
    )
    template = load_template("job.yaml", str(tmp_path))
    s = StepSettings(backend="kubernetes", cpu=1, memory=1024)
    job = validate(
        job_manifest(
            name="wb-f-s-1-0-00000000",
            settings=s,
            image="img",
            command=["true"],
            env={"A": "b"},
            labels=LABELS,
            template=template,
            options=JobOptions(tolerations=[{"key": "gpu", "operator": "Exists"}]),
        )
    )
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] == 60
    assert job["metadata"]["annotations"] == {"cost-center": "42"}
    pod = job["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "batch-low" and pod["restartPolicy"] == "Never"
    assert pod["tolerations"] == [{"key": "spot", "operator": "Exists"}, {"key": "gpu", "operator": "Exists"}]
    c = _container(job)
    assert c["securityContext"] == {"allowPrivilegeEscalation": False}
    assert [e["name"] for e in c["env"]][:2] == ["FROM_TEMPLATE", "A"]
    (tmp_path / "bad.yaml").write_text("kind: Pod\n")
    with pytest.raises(ConfigError, match="must hold one batch/v1 Job"):
        load_template("bad.yaml", str(tmp_path))
    with pytest.raises(ConfigError, match="cannot read"):
        load_template("missing.yaml", str(tmp_path))


def test_backend_manifest_from_config_and_decorator_arguments(tmp_path):
    from workbench.backends.kubernetes import KubernetesBackend

    config = ProjectConfig(root=tmp_path)
    k = config.model.kubernetes
    k.image, k.namespace, k.service_account = "wb:1", "team-a", "wb-runner"
    k.node_selector, k.secrets = {"pool": "cpu"}, ["aws-creds"]
    k.tolerations = [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    backend = KubernetesBackend(config)
    backend._package_url = "s3://bucket/wb/TrainFlow/packages/abc.tgz"
    backend._task_env = {"WORKBENCH_S3_ENDPOINT_URL": "", "WORKBENCH_S3_REGION": "eu-west-1"}
    s = StepSettings(
        backend="kubernetes",
        cpu=2,
        memory=4096,
        gpu=1,
        timeout=60,
        extra={
            "node_selector": {"pool": "gpu"},
            "secrets": ["hf-token"],
            "gpu_vendor": "amd",
            "image_pull_policy": "Always",
            "labels": {"team": "nlp"},
        },
    )
    spec = TaskSpec(
        flow="TrainFlow",
        run_id="1700000000000000",
        step="train",
        task_id="2",
        attempt=1,
        settings=s,
        datastore_url="s3://bucket/wb",
        project_root="/p",
        flow_file="flows/train.py",
        class_name="TrainFlow",
        labels={
            "workbench.flow": "TrainFlow",
            "workbench.run": "1700000000000000",
            "workbench.step": "train",
            "workbench.task": "2",
            "workbench.project": "demo",
        },
    )
    job = validate(backend.manifest_for(spec))
    assert job["metadata"]["namespace"] == "team-a"
    assert job["metadata"]["labels"]["workbench.attempt"] == "1" and job["metadata"]["labels"]["team"] == "nlp"
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu"} and pod["serviceAccountName"] == "wb-runner"
    assert pod["tolerations"][0]["key"] == "dedicated"
    c = _container(job)
    assert c["image"] == "wb:1" and c["imagePullPolicy"] == "Always"
    assert c["envFrom"] == [{"secretRef": {"name": "aws-creds"}}, {"secretRef": {"name": "hf-token"}}]
    assert c["resources"]["limits"]["amd.com/gpu"] == "1"
    assert c["command"][:2] == ["python3", "-c"]
    assert c["command"][3:] == [
        "s3://bucket/wb/TrainFlow/packages/abc.tgz",
        "python3",
        "-m",
        "workbench.task",
        "run",
        "--datastore",
        "s3://bucket/wb",
        "--root",
        "@ROOT@",
        "TrainFlow/1700000000000000/train/2/1",
    ]
    assert job["spec"]["activeDeadlineSeconds"] == 90
