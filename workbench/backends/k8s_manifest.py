"""The Kubernetes Job for one task, as a plain dict: pure functions, no API calls, no client import.

:func:`job_manifest` starts from the Job template (``templates/kubernetes-job.yaml``, or the user's own
``[kubernetes] template``) and sets on top of it what the step's settings say: requests and limits, GPUs,
/dev/shm, node selector, tolerations, service account, image pull secrets, secrets as ``envFrom``, labels,
the environment and the command (the code-package bootstrap). The tests validate what it returns against
the official OpenAPI schema (kubernetes-validate).
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError

CONTAINER = "task"
TEMPLATE_NAME = "kubernetes-job.yaml"
GPU_KEYS = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu", "intel": "gpu.intel.com/i915"}
LABEL_PREFIX = "workbench."
JOB_LABEL = "workbench.job"  # on the pod template: which Job a pod belongs to
ATTEMPT_LABEL = "workbench.attempt"
MAX_JOB_NAME = 52  # pods are named <job>-<5 chars>, and the job name is a label value (63 chars at most)

# used when neither the user's nor the packaged template can be found
DEFAULT_TEMPLATE: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"labels": {"app.kubernetes.io/managed-by": "workbench"}},
    "spec": {
        "backoffLimit": 0,
        "completions": 1,
        "parallelism": 1,
        "ttlSecondsAfterFinished": 600,
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/managed-by": "workbench"}},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 30,
                "containers": [{"name": CONTAINER, "imagePullPolicy": "IfNotPresent"}],
            },
        },
    },
}


# ---------------------------------------------------------------------------------------- names and labels


def label_value(value: Any) -> str:
    """A valid label value: at most 63 of [A-Za-z0-9-_.], starting and ending with a letter or digit.
    Values that had to be shortened keep a short hash so that they stay distinct."""
    text = str(value)
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", text)
    if len(clean) > 63:
        clean = clean[:54] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return clean.strip("_.-")


def dns_label(text: str) -> str:
    """Lower case letters, digits and '-', starting with a letter, ending with a letter or digit."""
    out = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    out = re.sub(r"-{2,}", "-", out)
    return out if out[:1].isalpha() else f"x{out}"


def job_name(flow: str, step: str, task_id: str, attempt: int, run_id: str) -> str:
    """``wb-<flow>-<step>-<task>-<attempt>-<hash>``: readable, unique per run and attempt, a valid DNS label."""
    digest = hashlib.sha1(f"{flow}/{run_id}/{step}/{task_id}/{attempt}".encode()).hexdigest()[:8]
    tail = f"-{dns_label(str(task_id)).lstrip('x') or '0'}-{attempt}-{digest}"
    head = dns_label(f"wb-{flow}-{step}")[: MAX_JOB_NAME - len(tail)].rstrip("-")
    return f"{head}{tail}"


# ---------------------------------------------------------------------------------------- quantities


def cpu_quantity(cpu: float) -> str:
    """1 -> "1", 0.5 -> "500m", 2.25 -> "2250m"."""
    if float(cpu).is_integer():
        return str(int(cpu))
    return f"{int(math.ceil(cpu * 1000))}m"


def mib_quantity(mib: float) -> str:
    """MiB -> "<n>Gi" when whole GiB, else "<n>Mi"."""
    mib = int(math.ceil(mib))
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def gpu_key(vendor: Optional[str]) -> str:
    vendor = (vendor or "nvidia").strip()
    if "/" in vendor:  # an explicit resource name, e.g. "nvidia.com/mig-1g.5gb"
        return vendor
    try:
        return GPU_KEYS[vendor.lower()]
    except KeyError:
        raise ConfigError(
            f"kubernetes: unknown gpu_vendor {vendor!r} (choose from {', '.join(GPU_KEYS)}, or give "
            f'the resource name, e.g. "nvidia.com/gpu")'
        ) from None


# ---------------------------------------------------------------------------------------- template


def packaged_template() -> Optional[Path]:
    here = Path(__file__).resolve().parents[1]
    for candidate in (here / "_templates" / TEMPLATE_NAME, here.parent / "templates" / TEMPLATE_NAME):
        if candidate.is_file():
            return candidate
    return None


def load_template(path: Optional[str] = None, base_dir: Optional[str] = None) -> dict[str, Any]:
    """The Job template: the user's file (relative to ``base_dir``), else the packaged one, else built in."""
    import yaml  # PyYAML: a dependency of the kubernetes client

    p: Optional[Path]
    if path:
        p = Path(path).expanduser()
        if not p.is_absolute() and base_dir:
            p = Path(base_dir) / p
        where = f"[kubernetes] template {p}"
    else:
        p = packaged_template()
        where = f"the packaged template {p}"
        if p is None:
            return copy.deepcopy(DEFAULT_TEMPLATE)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or data.get("kind", "Job") != "Job":
        raise ConfigError(f"{where} must hold one batch/v1 Job")
    data.setdefault("apiVersion", "batch/v1")
    data.setdefault("kind", "Job")
    return data


# ---------------------------------------------------------------------------------------- the Job


@dataclass
class JobOptions:
    """Cluster-side choices for one task: [kubernetes] in workbench.toml, overridden by @kubernetes(...)."""

    namespace: str = "default"
    service_account: Optional[str] = None
    image_pull_secrets: list[str] = field(default_factory=list)
    image_pull_policy: Optional[str] = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    gpu_vendor: str = "nvidia"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    ttl_seconds: Optional[int] = None  # None: keep the template's
    deadline_grace: int = 0  # seconds added to the step's timeout for activeDeadlineSeconds

    @classmethod
    def from_config(cls, section, settings) -> "JobOptions":
        """``section``: config.KubernetesSection; ``settings.extra``: @kubernetes arguments (win)."""
        extra = dict(settings.extra or {})

        def listify(value) -> list:
            if value is None:
                return []
            return [value] if isinstance(value, (str, dict)) else list(value)

        return cls(
            namespace=settings.namespace or extra.get("namespace") or section.namespace or "default",
            service_account=extra.get("service_account") or section.service_account,
            image_pull_secrets=[*section.image_pull_secrets, *listify(extra.get("image_pull_secrets"))],
            image_pull_policy=extra.get("image_pull_policy"),
            node_selector={**section.node_selector, **(extra.get("node_selector") or {})},
            tolerations=[*section.tolerations, *listify(extra.get("tolerations"))],
            secrets=list(dict.fromkeys([*section.secrets, *listify(extra.get("secrets"))])),
            gpu_vendor=extra.get("gpu_vendor") or section.gpu_vendor or "nvidia",
            labels={str(k): str(v) for k, v in (extra.get("labels") or {}).items()},
            annotations={str(k): str(v) for k, v in (extra.get("annotations") or {}).items()},
        )


def resources(settings, gpu_vendor: str = "nvidia") -> dict[str, dict[str, str]]:
    """requests for cpu, memory, ephemeral-storage (disk); limits: memory = its request (an OOM kill is real),
    ephemeral-storage = its request, and GPUs (an extended resource: limits only, requests default to them)."""
    requests = {"cpu": cpu_quantity(settings.cpu), "memory": mib_quantity(settings.memory)}
    limits = {"memory": requests["memory"]}
    if settings.disk:
        requests["ephemeral-storage"] = limits["ephemeral-storage"] = mib_quantity(settings.disk)
    if settings.gpu:
        limits[gpu_key(gpu_vendor)] = str(int(settings.gpu))
    return {"requests": requests, "limits": limits}


def _env_list(env: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": str(k), "value": str(v)} for k, v in env.items()]
    for name, path in (
        ("WORKBENCH_KUBERNETES_POD", "metadata.name"),
        ("WORKBENCH_KUBERNETES_NAMESPACE", "metadata.namespace"),
        ("WORKBENCH_KUBERNETES_NODE", "spec.nodeName"),
    ):
        if name not in env:
            out.append({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
    return out


def job_manifest(
    *,
    name: str,
    settings,
    image: str,
    command: list[str],
    env: dict[str, str],
    labels: dict[str, str],
    options: Optional[JobOptions] = None,
    template: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """The batch/v1 Job for one task. ``labels``: workbench.* ids (values are sanitised here)."""
    opts = options or JobOptions()
    job = copy.deepcopy(template if template is not None else DEFAULT_TEMPLATE)
    all_labels = {
        **{k: label_value(v) for k, v in opts.labels.items()},
        **{k: label_value(v) for k, v in labels.items() if v is not None and label_value(v)},
    }

    meta = job.setdefault("metadata", {})
    meta.pop("generateName", None)
    meta["name"] = name
    meta["namespace"] = opts.namespace
    meta["labels"] = {**(meta.get("labels") or {}), **all_labels}
    if opts.annotations:
        meta["annotations"] = {**(meta.get("annotations") or {}), **opts.annotations}

    spec = job.setdefault("spec", {})
    spec["backoffLimit"] = 0  # the runtime owns retries, whatever the template says
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    if opts.ttl_seconds is not None:
        spec["ttlSecondsAfterFinished"] = int(opts.ttl_seconds)
    else:
        spec.setdefault("ttlSecondsAfterFinished", 600)
    if settings.timeout:
        spec["activeDeadlineSeconds"] = int(settings.timeout) + int(opts.deadline_grace)

    tmeta = spec.setdefault("template", {}).setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), **all_labels, JOB_LABEL: name}
    if opts.annotations:
        tmeta["annotations"] = {**(tmeta.get("annotations") or {}), **opts.annotations}
    pod = spec["template"].setdefault("spec", {})
    pod["restartPolicy"] = "Never"
    if opts.service_account:
        pod["serviceAccountName"] = opts.service_account
    if opts.image_pull_secrets:
        have = [s.get("name") for s in pod.get("imagePullSecrets") or []]
        pod["imagePullSecrets"] = [
            *(pod.get("imagePullSecrets") or []),
            *({"name": s} for s in opts.image_pull_secrets if s not in have),
        ]
    if opts.node_selector:
        pod["nodeSelector"] = {
            **(pod.get("nodeSelector") or {}),
            **{str(k): str(v) for k, v in opts.node_selector.items()},
        }
    if opts.tolerations:
        pod["tolerations"] = [*(pod.get("tolerations") or []), *(dict(t) for t in opts.tolerations)]

    containers = pod.setdefault("containers", [])
    container = next((c for c in containers if c.get("name") == CONTAINER), None)
    if container is None:
        container = {"name": CONTAINER}
        containers.insert(0, container)
    container["image"] = image
    if opts.image_pull_policy:
        container["imagePullPolicy"] = opts.image_pull_policy
    container["command"] = list(command)
    container.pop("args", None)
    ours = _env_list(env)
    names = {e["name"] for e in ours}
    container["env"] = [*(e for e in container.get("env") or [] if e.get("name") not in names), *ours]
    if opts.secrets:
        container["envFrom"] = [*(container.get("envFrom") or []), *({"secretRef": {"name": s}} for s in opts.secrets)]
    res = resources(settings, opts.gpu_vendor)
    current = container.get("resources") or {}
    container["resources"] = {
        "requests": {**(current.get("requests") or {}), **res["requests"]},
        "limits": {**(current.get("limits") or {}), **res["limits"]},
    }
    if settings.shared_memory:
        volumes = [v for v in pod.get("volumes") or [] if v.get("name") != "dshm"]
        volumes.append(
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": mib_quantity(settings.shared_memory)}}
        )
        pod["volumes"] = volumes
        mounts = [m for m in container.get("volumeMounts") or [] if m.get("mountPath") != "/dev/shm"]
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        container["volumeMounts"] = mounts
    return job


def describe_request(settings, gpu_vendor: str = "nvidia") -> str:
    """ "cpu 4, memory 16Gi, nvidia.com/gpu 1" as the pod asks for it."""
    res = resources(settings, gpu_vendor)
    parts = [f"{k} {v}" for k, v in res["requests"].items()]
    parts += [f"{k} {v}" for k, v in res["limits"].items() if k not in res["requests"]]
    return ", ".join(parts)


def indexed_job_manifest(
    single: dict[str, Any],
    *,
    name: str,
    completions: int,
    parallelism: int,
    array_ref: str,
    array_labels: dict[str, str],
) -> dict[str, Any]:
    """An Indexed Job running ``completions`` sibling tasks, from the manifest of the first one (``single``):

    - completionMode Indexed; each index gets one pod with JOB_COMPLETION_INDEX set by the Job controller, and
      the task entrypoint finds its task in the manifest ``array_ref`` (``--array`` replaces the task ref).
    - backoffLimitPerIndex 0: a failed index is not retried by Kubernetes and does not stop the others (the
      runtime retries it alone, as a new Job); backoffLimit ``completions`` lets every index fail once.
    - no activeDeadlineSeconds: it would bound the whole Job, not one task (each task's own timer and the
      runtime's hard deadline stop a task that runs too long).
    - labels: the per-task ones (``workbench.task``) give way to ``array_labels`` on the Job and its pods."""
    job = copy.deepcopy(single)
    job["metadata"]["name"] = name
    for meta in (job["metadata"], job["spec"]["template"]["metadata"]):
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != "workbench.task"}
        meta["labels"] = {**labels, **{k: label_value(v) for k, v in array_labels.items()}}
    job["spec"]["template"]["metadata"]["labels"][JOB_LABEL] = name
    spec = job["spec"]
    spec.update(
        completionMode="Indexed",
        completions=int(completions),
        parallelism=max(1, int(parallelism)),
        backoffLimitPerIndex=0,
        backoffLimit=int(completions),
    )
    spec.pop("activeDeadlineSeconds", None)
    container = next(c for c in spec["template"]["spec"]["containers"] if c.get("name") == CONTAINER)
    command = list(container["command"])
    command[-1:] = ["--array", array_ref]  # the bootstrap execs the entrypoint; its last argument was the task ref
    container["command"] = command
    return job
