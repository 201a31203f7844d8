"""Every run ends in a true state and leaves nothing running (local backend, real processes):
signals, a closed stdout, kill -9 of the runtime then `workbench cancel`, detached runs, a step that
starts a helper in its own session."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from workbench.proctree import marked_pids

from .conftest import write_flow

SLEEPY = """
from workbench import FlowSpec, step
import subprocess, sys, time

class SleepyFlow(FlowSpec):
    @step
    def start(self):
        print("started", flush=True)
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        for i in range(600):
            print("tick", i, flush=True)
            time.sleep(0.5)
        self.next(self.end)

    @step
    def end(self):
        pass
"""

HELPER = """
from workbench import FlowSpec, step
import subprocess, sys

class HelperFlow(FlowSpec):
    @step
    def start(self):
        # a daemon-like helper in its own session that keeps the task's stdout open and never exits
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        print("helper started", flush=True)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def wb(*args, cwd, **kw):
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120, **kw
    )


def start_wb(*args, cwd, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        **kw,
    )


def runs(cwd) -> list[dict]:
    return json.loads(wb("runs", "--json", cwd=cwd).stdout)


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def leftovers(flow: str) -> list[int]:
    return list(marked_pids(f"{flow}/"))


def _tick_seen(proc) -> None:
    for line in proc.stdout:
        if "tick" in line:
            return
    raise AssertionError("the run printed no tick")


@pytest.fixture(autouse=True)
def _no_leftovers():
    yield
    for pid in marked_pids("SleepyFlow/") or []:  # never leave a test's processes behind
        os.kill(pid, signal.SIGKILL)


def test_helper_in_own_session_does_not_hold_the_run(project):
    write_flow(project, "helper.py", HELPER)
    began = time.time()
    p = wb("run", "flows/helper.py", cwd=project)
    took = time.time() - began
    assert p.returncode == 0, p.stderr
    assert "helper started" in p.stdout
    assert took < 20, f"the run took {took:.1f}s: the helper held it"
    assert leftovers("HelperFlow") == []


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_stop_signal_cancels_and_leaves_nothing(project, sig, code):
    write_flow(project, "sleepy.py", SLEEPY)
    proc = start_wb("run", "flows/sleepy.py", cwd=project)
    _tick_seen(proc)
    began = time.time()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    took = time.time() - began
    assert proc.returncode == code, err
    assert "cancelling" in err
    [run] = runs(project)
    assert run["status"] == "cancelled"
    assert wait_for(lambda: leftovers("SleepyFlow") == [], 10, "no leftover process")
    assert took < 15


def test_second_signal_still_cleans_up(project):
    # a task that ignores SIGTERM keeps the run waiting for its kill grace, so the second Ctrl-C always lands
    # while the run is still stopping (with a task that dies at once, the run could be over before it)
    stubborn = SLEEPY.replace(
        'print("started", flush=True)',
        'import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); print("started", flush=True)',
    )
    assert stubborn != SLEEPY
    write_flow(project, "sleepy.py", stubborn)
    proc = start_wb("run", "flows/sleepy.py", cwd=project)
    _tick_seen(proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "removing what the run started" in err
    assert runs(project)[0]["status"] == "cancelled"
    assert wait_for(lambda: leftovers("SleepyFlow") == [], 10, "no leftover process")


def test_closed_stdout_is_never_success(project):
    write_flow(project, "sleepy.py", SLEEPY)
    p = subprocess.run(
        f'{sys.executable} -m workbench.cli run flows/sleepy.py | head -2; echo "status=${{PIPESTATUS[0]}}"',
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        cwd=project,
        timeout=120,
    )
    status = int(p.stdout.strip().splitlines()[-1].split("=")[1])
    assert status == 141, p.stderr
    [run] = runs(project)
    assert run["status"] == "cancelled" and "broken pipe" in run["message"]
    assert wait_for(lambda: leftovers("SleepyFlow") == [], 10, "no leftover process")


def test_kill_9_shows_crashed_then_cancel_removes_everything(project):
    write_flow(project, "sleepy.py", SLEEPY)
    proc = start_wb("run", "flows/sleepy.py", cwd=project)
    _tick_seen(proc)
    proc.kill()
    proc.wait()
    [run] = wait_for(lambda: [r for r in runs(project) if r["status"] == "crashed"], 10, "crashed status")
    assert "runtime" in run["message"]
    from workbench.client import Flow, namespace

    namespace(str(project / ".workbench"))
    assert Flow("SleepyFlow")[run["run_id"]].status == "crashed"
    p = wb("cancel", run["run_id"], cwd=project)
    assert p.returncode == 0, p.stderr
    assert "cancelled" in p.stdout
    assert runs(project)[0]["status"] == "cancelled"
    assert leftovers("SleepyFlow") == []


def test_detached_run_survives_its_cli_and_is_attached_and_cancelled_elsewhere(project):
    write_flow(project, "sleepy.py", SLEEPY)
    launcher = start_wb("run", "flows/sleepy.py", "--detach", cwd=project)
    run_id = launcher.stdout.readline().strip()
    assert run_id.isdigit(), launcher.stderr.read()
    launcher.kill()  # the CLI that started it goes away (as a closed terminal would)
    launcher.wait()
    attach = start_wb("attach", run_id, cwd=project)
    for line in attach.stdout:
        if "start/1 tick" in line:
            break
    assert runs(project)[0]["status"] == "running"
    began = time.time()
    p = wb("cancel", run_id, cwd=project)
    assert p.returncode == 0, p.stderr
    out, _ = attach.communicate(timeout=60)
    assert attach.returncode == 130 and f"run {run_id} cancelled" in out
    assert runs(project)[0]["status"] == "cancelled"
    assert leftovers("SleepyFlow") == []
    assert time.time() - began < 30
    [record] = [r for r in runs(project) if r["run_id"] == run_id]
    assert record["detached"] and os.path.exists(record["runtime_log"])
