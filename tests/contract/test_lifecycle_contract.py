"""The run lifecycle over every backend, through the real CLI in a subprocess: SIGTERM cancels and leaves
nothing; after kill -9 of the runtime the run reads `crashed` and `workbench cancel` removes whatever the
backend still holds (processes, containers, Batch jobs, Kubernetes Jobs). Times are printed (-s) for the report."""

import json
import signal
import subprocess
import sys
import threading
import time

FLOW = "flows/contract_flows.py:CancelFlow"


def _start(contract):
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "run", FLOW, "--max-workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=contract.root,
    )
    try:
        first = ""
        for first in proc.stdout:  # warnings may come first
            if " started" in first:
                break
        assert " started" in first, first
        run_id = first.split("CancelFlow/")[1].split()[0]
        assert contract.wait_running(run_id, "wait", 2, timeout=120) == 2, "both tasks should be running"
    except BaseException:
        proc.kill()
        raise
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its output flowing
    return proc, run_id


def _runs(contract) -> dict:
    p = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "runs", "--json"],
        capture_output=True,
        text=True,
        cwd=contract.root,
        timeout=60,
    )
    return {r["run_id"]: r for r in json.loads(p.stdout)}


def _nothing_left(contract, run_id: str) -> list:
    deadline = time.time() + contract.backend.cleanup_grace
    while True:
        left = contract.backend.leftovers(run_id, [])
        if not left or time.time() >= deadline:
            return left
        time.sleep(0.3)


def test_sigterm_cancels_and_leaves_nothing(contract):
    proc, run_id = _start(contract)
    began = time.time()
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    proc.wait(timeout=120)
    exited = time.time() - began
    assert proc.returncode == 143, err
    assert _runs(contract)[run_id]["status"] == "cancelled"
    left = _nothing_left(contract, run_id)
    clean = time.time() - began
    print(f"\n[lifecycle] {contract.name}: SIGTERM -> exit {exited:.1f}s, nothing left after {clean:.1f}s")
    assert left == [], left
    assert exited < 60


def test_kill_9_then_cancel_leaves_nothing(contract):
    proc, run_id = _start(contract)
    proc.kill()
    proc.wait()
    record = _runs(contract)[run_id]
    assert record["status"] == "crashed", record
    still = contract.backend.leftovers(run_id, [])
    began = time.time()
    p = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "cancel", run_id],
        capture_output=True,
        text=True,
        cwd=contract.root,
        timeout=180,
    )
    assert p.returncode == 0, p.stderr
    assert _runs(contract)[run_id]["status"] == "cancelled"
    left = _nothing_left(contract, run_id)
    print(
        f"\n[lifecycle] {contract.name}: kill -9 left {len(still)} thing(s) ({still[:3]}); "
        f"cancel took {time.time() - began:.1f}s; left after cancel: {left}; cancel said: {p.stderr.strip()!r}"
    )
    assert left == [], left
