"""The job definitions of AWS Batch tasks: pure builders from a step's settings (no API call).

:func:`job_definition` gives the ``register_job_definition`` arguments, named by a hash of their content so
equal steps share one registered definition; the run-specific values (package, datastore, task or array
manifest) stay Batch parameters (``Ref::...``) of :func:`task_command_template`. Used by
:mod:`workbench.backends.batch` only.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Optional

from ..units import format_memory
from .base import TaskSpec

MIN_ATTEMPT_SECONDS = 60  # Batch's minimum attemptDurationSeconds
TIMEOUT_GRACE = 30  # the task's own timer fires first and reports; Batch's is the backstop


def resource_requirements(settings) -> list[dict[str, str]]:
    """VCPU (whole vCPUs on EC2: rounded up), MEMORY in MiB, GPU when > 0."""
    reqs = [
        {"type": "VCPU", "value": str(max(1, math.ceil(settings.cpu)))},
        {"type": "MEMORY", "value": str(int(settings.memory))},
    ]
    if settings.gpu:
        reqs.append({"type": "GPU", "value": str(int(settings.gpu))})
    return reqs


def task_command_template(spec: TaskSpec, array: bool = False) -> list[str]:
    """The container command with the run-specific values as Batch parameters. An array job's children all run
    the same command: ``--array Ref::array`` names the manifest where each finds its task by its index."""
    from ..package import ROOT_PLACEHOLDER, bootstrap_command

    cmd = spec.command(python="python3", datastore_url="Ref::datastore", root=ROOT_PLACEHOLDER)
    assert cmd[-1] == spec.ref
    cmd[-1:] = ["--array", "Ref::array"] if array else ["Ref::task"]
    return bootstrap_command("Ref::package", cmd)


def job_definition(
    settings,
    *,
    image: str,
    command: list[str],
    environment: dict[str, str],
    job_role: Optional[str] = None,
    name_prefix: str = "workbench",
) -> dict[str, Any]:
    """The ``register_job_definition`` arguments for a step's settings; the name ends with a hash of the rest,
    so equal content gives the same name (registered once, then reused)."""
    props: dict[str, Any] = {
        "image": image,
        "command": list(command),
        "environment": [{"name": k, "value": str(v)} for k, v in sorted(environment.items())],
        "resourceRequirements": resource_requirements(settings),
    }
    if job_role:
        props["jobRoleArn"] = job_role
    if settings.shared_memory:
        props["linuxParameters"] = {"sharedMemorySize": int(settings.shared_memory)}
    body: dict[str, Any] = {
        "type": "container",
        "platformCapabilities": ["EC2"],
        "containerProperties": props,
        "retryStrategy": {"attempts": 1},
    }  # the runtime retries, with its own bookkeeping
    if settings.timeout:
        body["timeout"] = {"attemptDurationSeconds": max(MIN_ATTEMPT_SECONDS, int(settings.timeout) + TIMEOUT_GRACE)}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    return {"jobDefinitionName": f"{name_prefix}-{digest}", **body, "tags": {"workbench.content": digest}}


def job_name(spec: TaskSpec) -> str:
    """Batch job names: up to 128 letters, digits, hyphens and underscores."""
    raw = f"{spec.flow}-{spec.step}-{spec.run_id}-{spec.task_id}-{spec.attempt}"
    return re.sub(r"[^A-Za-z0-9_-]", "_", raw)[-128:]


def describe_request(settings, queue: str) -> str:
    parts = [f"cpu={settings.cpu:g}", f"memory={format_memory(settings.memory)}"]
    if settings.gpu:
        parts.append(f"gpu={settings.gpu}")
    return f"{' '.join(parts)} on job queue {queue}"


def runnable_warning(step: str, job_id: str, seconds: float, settings, queue: str) -> str:
    return (
        f"batch: step {step} (job {job_id}) has been RUNNABLE for {seconds:.0f}s, asking for "
        f"{describe_request(settings, queue)}. That usually means no compute environment of the queue can "
        f"fit the request (instance types too small, maxvCpus reached, GPUs not allowed) or it is still "
        f"scaling up; check the queue's compute environments"
    )
