"""A task is its container's PID 1 on Kubernetes and AWS Batch (no init process), and the kernel ignores a signal
PID 1 has no handler for: a cancelled pod's SIGTERM used to do nothing until the grace period's SIGKILL (30 s on
a real cluster). The task entrypoint (and the package bootstrap before it) end at once on SIGTERM, as any other
process does. Checked on the real engine, with the base image the remote backends use."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.engine import base_image, docker_client_or_skip

REPO = str(Path(__file__).resolve().parents[1])

HOLD = "import time; print('ready', flush=True); time.sleep(120)"


def _term_exit(client, image, code: str, wait: float = 10.0) -> tuple[int, float]:
    """Run ``code`` as PID 1, send SIGTERM once it is ready: (exit code, seconds from the signal to the exit)."""
    container = client.containers.run(
        image, ["python3", "-c", code], volumes={REPO: {"bind": "/wb", "mode": "ro"}}, working_dir="/wb", detach=True
    )
    try:
        deadline = time.time() + 60
        while b"ready" not in container.logs() and time.time() < deadline:
            time.sleep(0.1)
        assert b"ready" in container.logs(), container.logs()
        sent = time.time()
        container.kill(signal="SIGTERM")
        try:
            status = container.wait(timeout=wait)["StatusCode"]
        except Exception:  # noqa: BLE001 - still running: the signal was ignored
            return -1, time.time() - sent
        return status, time.time() - sent
    finally:
        container.remove(force=True)


def test_the_task_entrypoint_ends_on_sigterm_as_pid_1():
    client = docker_client_or_skip()
    image = base_image(client)
    code, took = _term_exit(client, image, "from workbench.task import _end_on_sigterm_as_pid_1 as f; f(); " + HOLD)
    assert code == 143 and took < 5, (code, took)


def test_the_package_bootstrap_ends_on_sigterm_as_pid_1():
    from workbench.package import BOOTSTRAP

    client = docker_client_or_skip()
    image = base_image(client)
    first_lines = BOOTSTRAP.split("import boto3")[0]  # the bootstrap's start, before it fetches the package
    code, took = _term_exit(client, image, first_lines + HOLD)
    assert code == 143 and took < 5, (code, took)


def test_without_a_handler_pid_1_ignores_sigterm():
    """The premise, so that the two tests above can fail: a plain Python PID 1 outlives SIGTERM."""
    client = docker_client_or_skip()
    image = base_image(client)
    code, _ = _term_exit(client, image, HOLD, wait=3.0)
    assert code == -1
