"""Fixtures for the Kubernetes API server emulator.

``docker_engine`` skips the test when no Docker engine (or no base image) is reachable, unless
WORKBENCH_REQUIRE_DOCKER=1, in which case it waits a while for the engine and then fails.
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from .server import KubeEmulator

BASE_IMAGE = os.environ.get("WORKBENCH_BASE_IMAGE", "workbench-base:bookworm")


def _require_docker() -> bool:
    return os.environ.get("WORKBENCH_REQUIRE_DOCKER", "") not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def docker_engine():
    """A docker SDK client for a live engine that has BASE_IMAGE (skip, or fail if required)."""
    try:
        import docker
    except ImportError:
        if _require_docker():
            pytest.fail("the docker SDK is not installed (pip install docker)")
        pytest.skip("the docker SDK is not installed")
    wait = float(os.environ.get("WORKBENCH_DOCKER_WAIT", "900" if _require_docker() else "0"))
    deadline = time.monotonic() + wait
    problem = ""
    while True:
        try:
            client = docker.from_env(timeout=120)
            client.ping()
            client.images.get(BASE_IMAGE)
            break
        except docker.errors.ImageNotFound:
            problem = f"image {BASE_IMAGE} is not on the local engine (scripts/build-base-image.sh builds it)"
        except Exception as exc:  # no socket, engine starting, ...
            problem = f"no Docker engine reachable: {exc}"
        if time.monotonic() >= deadline:
            if _require_docker():
                pytest.fail(problem)
            pytest.skip(problem)
        time.sleep(2)
    yield client
    client.close()


@pytest.fixture
def emulator(docker_engine):
    """A started KubeEmulator; at teardown it must leave no docker container behind."""
    emu = KubeEmulator(docker_client=docker_engine, grace_period_cap=5.0, backoff_seconds=0.5)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()
        left = docker_engine.containers.list(all=True, filters={"label": f"k8s-emulator.instance={emu.instance}"})
        assert not left, f"emulator left containers behind: {[c.name for c in left]}"


class _NoDockerEngine:
    """Stands in for a docker client when only the API is exercised: no container, no image."""

    class containers:  # noqa: N801 - mirrors docker.DockerClient.containers
        @staticmethod
        def list(**_):
            return []

    class images:  # noqa: N801
        @staticmethod
        def get(name):
            import docker.errors

            raise docker.errors.ImageNotFound(f"No such image: {name}")


@pytest.fixture
def api_emulator():
    """An emulator whose kubelet sees an engine without images: the API and controllers, no Docker needed."""
    emu = KubeEmulator(docker_client=_NoDockerEngine(), backoff_seconds=0.5)
    emu.start()
    yield emu
    emu.stop()


def _clients(emulator, tmp_path):
    from kubernetes import client, config

    path = emulator.write_kubeconfig(tmp_path / "kubeconfig", namespace="default")
    configuration = client.Configuration()
    config.load_kube_config(config_file=path, client_configuration=configuration)
    api = client.ApiClient(configuration)
    yield SimpleNamespace(
        api=api,
        batch=client.BatchV1Api(api),
        core=client.CoreV1Api(api),
        namespace="default",
        kubeconfig=path,
        emulator=emulator,
        docker=emulator.docker_client,
        image=BASE_IMAGE,
    )
    api.close()


@pytest.fixture
def kube(emulator, tmp_path):
    """Official `kubernetes` client objects configured from a kubeconfig that targets the emulator."""
    yield from _clients(emulator, tmp_path)


@pytest.fixture
def kube_api(api_emulator, tmp_path):
    """Like ``kube`` but against ``api_emulator`` (runs without a Docker engine)."""
    yield from _clients(api_emulator, tmp_path)
