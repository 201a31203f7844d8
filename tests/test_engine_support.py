"""The real Docker engine the other tests rely on: base image, limits, labels."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

# `tests/` is not a package and pytest's rootdir is not on sys.path under a
# plain `pytest` run (only under `python -m pytest`): make `tests.support`
# importable either way.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.support.engine import base_image, count_containers, docker_client_or_skip  # noqa: E402


@pytest.fixture(scope="module")
def client():
    c = docker_client_or_skip()
    yield c
    c.close()


@pytest.fixture(scope="module")
def image(client):
    return base_image(client)


def _remove(container):
    try:
        container.remove(force=True)
    except Exception:
        pass


def test_base_image_has_python_boto3_numpy(client, image):
    out = client.containers.run(
        image,
        ["python3", "-c", "import boto3, numpy; print(numpy.arange(3).sum())"],
        network_mode="host",
        remove=True,
    )
    assert out.decode().strip() == "3"


def test_memory_limit_is_enforced_oom_kill(client, image):
    """mem_limit must really be enforced (cgroup v1 here): 200 MB in 32 MB gets OOM-killed."""
    container = client.containers.run(
        image,
        ["python3", "-c", "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); print('survived')"],
        mem_limit="32m",
        memswap_limit="32m",
        network_mode="none",
        detach=True,
    )
    try:
        result = container.wait(timeout=60)
        container.reload()
        state = container.attrs["State"]
        assert state["OOMKilled"] is True, (result, state, container.logs())
        assert result["StatusCode"] == 137, result
        assert b"survived" not in container.logs()
    finally:
        _remove(container)


def test_count_containers_by_labels(client, image):
    run_id = uuid.uuid4().hex
    labels = {"workbench.test": "engine-support", "workbench.run": run_id}
    started = []
    try:
        for step in ("start", "end"):
            started.append(
                client.containers.create(
                    image, ["true"], labels={**labels, "workbench.step": step}, network_mode="none"
                )
            )
        assert count_containers(client, labels) == 2
        assert count_containers(client, {**labels, "workbench.step": "end"}) == 1
        assert count_containers(client, {"workbench.run": None, "workbench.test": "engine-support"}) >= 2
        assert count_containers(client, {"workbench.run": uuid.uuid4().hex}) == 0
    finally:
        for c in started:
            _remove(c)
    assert count_containers(client, labels) == 0


def test_skip_or_fail_without_engine(monkeypatch):
    """Unreachable engine: skip normally, fail under WORKBENCH_REQUIRE_DOCKER=1."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.delenv("WORKBENCH_REQUIRE_DOCKER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Docker engine"):
        docker_client_or_skip()
    monkeypatch.setenv("WORKBENCH_REQUIRE_DOCKER", "1")
    with pytest.raises(pytest.fail.Exception, match="no Docker engine"):
        docker_client_or_skip()


def test_missing_base_image_hint(client, monkeypatch):
    monkeypatch.setenv("WORKBENCH_BASE_IMAGE", f"workbench-missing-{uuid.uuid4().hex[:8]}:none")
    monkeypatch.delenv("WORKBENCH_REQUIRE_DOCKER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="scripts/build-base-image.sh"):
        base_image(client)
    monkeypatch.setenv("WORKBENCH_REQUIRE_DOCKER", "1")
    with pytest.raises(pytest.fail.Exception, match="scripts/build-base-image.sh"):
        base_image(client)
