"""Access to the real local Docker engine for tests.

Tests that need a Docker engine call :func:`docker_client_or_skip` (and
:func:`base_image` when they run containers). Without an engine they are
skipped -- unless ``WORKBENCH_REQUIRE_DOCKER=1`` (set in CI), where a missing
engine or image is a failure rather than a silent skip.

Engine: ``bash scripts/start-docker.sh``; image: ``bash scripts/build-base-image.sh``.
The engine runs without a bridge network: use ``network_mode="host"`` or
``network_mode="none"``.
"""

from __future__ import annotations

import os

import pytest

DEFAULT_BASE_IMAGE = "workbench-base:bookworm"


def _docker_required() -> bool:
    return os.environ.get("WORKBENCH_REQUIRE_DOCKER", "") == "1"


def _skip_or_fail(reason: str):
    if _docker_required():
        pytest.fail(f"{reason} (WORKBENCH_REQUIRE_DOCKER=1)", pytrace=False)
    pytest.skip(reason)


def docker_client_or_skip():
    """A pinged ``docker.DockerClient`` for the local engine, or skip/fail."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - depends on environment
        _skip_or_fail(f"no Docker engine: docker SDK not installed ({exc})")
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # DockerException, requests errors, FileNotFoundError...
        _skip_or_fail(f"no Docker engine: {type(exc).__name__}: {exc} (start one with scripts/start-docker.sh)")
    return client


def base_image(client=None) -> str:
    """Name of the local base image; skip/fail if it is not built."""
    name = os.environ.get("WORKBENCH_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    if client is None:
        client = docker_client_or_skip()
    import docker

    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        _skip_or_fail(f"no Docker base image {name!r}: build it with scripts/build-base-image.sh")
    except docker.errors.APIError as exc:
        _skip_or_fail(f"no Docker base image {name!r}: {exc}")
    return name


def count_containers(client, label_filters: dict) -> int:
    """Number of containers (running or not) carrying all the given labels.

    A value of ``None`` matches the label's presence with any value.
    """
    labels = [k if v is None else f"{k}={v}" for k, v in label_filters.items()]
    return len(client.containers.list(all=True, filters={"label": labels}))


def containers_named(client, part: str) -> list:
    """Containers (running or not) whose name contains ``part``. The engine filters by name, and a container
    removed between the listing and its inspection (moto and the emulator remove theirs as jobs end; other
    users of the engine too) is gone, not an error."""
    found = client.containers.list(all=True, filters={"name": part}, ignore_removed=True)
    return [c for c in found if part in c.name]
