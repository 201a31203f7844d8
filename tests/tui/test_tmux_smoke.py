"""The real `workbench tui` command in a real terminal (tmux): it starts, draws the flows list, reacts
to keys, and quits cleanly with q (exit status 0)."""

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from .conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


SOCKET = f"wbtui-{os.getpid()}"  # a private tmux server: no clash with anyone's sessions


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], check=True, capture_output=True, text=True, timeout=10).stdout


def wait_screen(session: str, needle: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if needle in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not on screen within {timeout}s:\n{screen}")


def test_workbench_tui_under_tmux(tui_project):
    session = f"wbtui-{uuid.uuid4().hex[:8]}"
    status_file = tui_project / "exit-status"
    env = f"PYTHONPATH={shlex.quote(str(REPO))}{os.pathsep}${{PYTHONPATH:-}} TERM=xterm-256color"
    command = (
        f"cd {shlex.quote(str(tui_project))} && env {env} {shlex.quote(sys.executable)} -m workbench.cli tui; "
        f"echo $? > {shlex.quote(str(status_file))}; sleep 5"
    )
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", command)
    try:
        screen = wait_screen(session, "TrainFlow")
        assert "Flows (3)" in screen and "FanoutFlow" in screen and "HelloFlow" in screen
        assert "┌" in screen  # the DAG of the first flow is drawn
        tmux("send-keys", "-t", session, "3")  # the Runs tab
        wait_screen(session, "started (UTC)")
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not status_file.exists():
            time.sleep(0.1)
        assert status_file.exists(), "workbench tui did not exit after q"
        time.sleep(0.1)
        assert status_file.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True, timeout=10)
