"""The container a task runs in, described without talking to the engine.

:func:`container_config` turns a task spec into the ``create_container`` keyword arguments (mounts,
environment, hard limits, labels); it is pure so the security and limit rules it encodes can be tested
without a Docker engine. :mod:`.docker` is its only user and re-exports these names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ..datastore.outbox import ENV_OUTBOX
from ..errors import ConfigError
from ..redact import looks_secret
from .base import TaskSpec
from .docker_status import MIB, USAGE_SCRIPT

OWNER_LABEL = "workbench.owner"
RUN_LABEL = "workbench.run"


def package_dir() -> str:
    """The workbench package directory on this machine (mounted into every container)."""
    return str(Path(__file__).resolve().parents[1])


def datastore_dir(url: str) -> Optional[str]:
    if url.startswith("s3://"):
        return None
    return url[len("file://") :] if url.startswith("file://") else url


def container_config(
    spec: TaskSpec,
    *,
    image: str,
    network: str = "host",
    user: str = "0:0",
    owner: str = "",
    pkg_dir: Optional[str] = None,
    pycache: Optional[str] = None,
    extra_env: Optional[dict[str, str]] = None,
    outbox: Optional[str] = None,
    credentials_file: Optional[str] = None,
    secret_env_file: Optional[str] = None,
) -> dict[str, Any]:
    """Everything sent to the engine to create the task's container, without talking to it.

    Returns ``create_container`` keyword arguments; ``host_config`` holds the keyword arguments of
    ``APIClient.create_host_config`` (limits, mounts, network). Nothing the task can write is shared:
    the datastore and the bytecode cache are read-only, ``outbox`` (the task's own: a directory, the one
    writable mount; or with an S3 datastore an ``s3://`` prefix, not mounted) is where its outputs go, and
    credentials come as a read-only file, not as environment variables.
    """
    from docker.types import DeviceRequest

    if network not in ("host", "none"):
        raise ConfigError(f'[docker] network = {network!r}: only "host" or "none" (never a bridge)')
    s = spec.settings
    pkg_dir = pkg_dir or package_dir()
    binds: dict[str, dict[str, str]] = {}
    for path, mode in (
        (spec.project_root, "ro"),
        (pkg_dir, "ro"),
        (datastore_dir(spec.datastore_url), "ro"),
        (pycache, "ro"),
        (credentials_file, "ro"),
        (secret_env_file, "ro"),
        (outbox if outbox and not outbox.startswith("s3://") else None, "rw"),  # an S3 outbox is a prefix
    ):
        if path and (path not in binds or mode == "rw"):
            binds[path] = {"bind": path, "mode": mode}
    env = {"PYTHONPATH": str(Path(pkg_dir).parent), "PYTHONUNBUFFERED": "1"}
    if outbox:
        env[ENV_OUTBOX] = outbox
    if credentials_file and os.path.isdir(credentials_file):  # a task's own, refreshed (credential_process)
        env["AWS_CONFIG_FILE"] = os.path.join(credentials_file, "config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    elif credentials_file:
        env["AWS_SHARED_CREDENTIALS_FILE"] = credentials_file
        env["AWS_CONFIG_FILE"] = "/dev/null"
    if secret_env_file:  # the step's secret-looking env: <redacted> in its spec, never in `docker inspect`
        env["WORKBENCH_SECRET_ENV_FILE"] = secret_env_file
    if pycache:
        env["PYTHONPYCACHEPREFIX"] = pycache
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    if os.environ.get("USER"):
        env["USER"] = os.environ["USER"]
    if not user.startswith("0:"):
        env["HOME"] = "/tmp"
    if getattr(s, "profile", False):  # --profile: this machine's pyinstrument, read-only (workbench.profiling)
        from ..profiling import container_profiler_mount

        env["PYTHONPATH"] = container_profiler_mount(binds, env["PYTHONPATH"])
    env.update(extra_env or {})
    # secret-looking step env stays out of `docker inspect`: the task reads it from secret_env_file
    env.update({str(k): str(v) for k, v in (s.env or {}).items() if not looks_secret(k, v)})

    host_config: dict[str, Any] = {
        "binds": binds,
        "network_mode": network,
        "nano_cpus": int(round(s.cpu * 1e9)),
        "mem_limit": int(s.memory) * MIB,
        "memswap_limit": int(s.memory) * MIB,  # equal to the memory limit: no swap
    }
    if s.shared_memory:
        host_config["shm_size"] = int(s.shared_memory) * MIB
    if s.gpu:
        host_config["device_requests"] = [DeviceRequest(count=int(s.gpu), capabilities=[["gpu"]])]
    labels = dict(spec.labels)
    labels.setdefault("workbench.flow", spec.flow)
    labels.setdefault(RUN_LABEL, spec.run_id)
    labels.setdefault("workbench.step", spec.step)
    labels.setdefault("workbench.task", spec.task_id)
    labels["workbench.attempt"] = str(spec.attempt)
    if owner:
        labels[OWNER_LABEL] = owner
    return {
        "image": image,
        "command": ["/bin/sh", "-c", USAGE_SCRIPT, "workbench-task", *spec.command(python="python3")],
        "working_dir": spec.project_root,
        "user": user,
        "environment": env,
        "labels": labels,
        "name": _container_name(spec),
        "host_config": host_config,
    }


def write_secret_env(directory: str, spec: TaskSpec) -> Optional[str]:
    """A task's secret-looking step env as a 0600 JSON file in ``directory`` (the run's private tmpfs
    directory, :func:`workbench.aws.secret_dir`), or None when it has none. The caller removes it."""
    import json

    from ..redact import secret_env

    secrets = secret_env(spec.settings.env or {})
    if not secrets:
        return None
    path = os.path.join(directory, f"env-{_container_name(spec)}-{os.urandom(4).hex()}.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(secrets, f)
    return path


def _container_name(spec: TaskSpec) -> str:
    raw = f"wb-{spec.flow}-{spec.run_id}-{spec.step}-{spec.task_id}-{spec.attempt}"
    return "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in raw)[:200]
