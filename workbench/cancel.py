"""``workbench cancel RUN``: stop a run, whether its runtime is alive, detached, or dead.

1. If the run's runtime is alive on this host (its pid, from the run record), send it SIGTERM: it
   cancels like Ctrl-C (tasks stopped, backends cleaned up, the record written) — wait for that, bounded.
2. Whatever happened, ask every backend the run used to release what it still holds for it, from the
   held entries the runtime recorded before each submit (:mod:`workbench.liveness`): containers by the
   run's label, Batch jobs by name in their queue, Kubernetes Jobs by label, local processes by mark.
3. A run still not in a final state is marked cancelled.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .datastore import FlowDatastore
from .datastore.records import RunRecord, RunStatus
from .errors import UsageError, WorkbenchError
from .liveness import pid_alive, read_held, runtime_gone, this_host

RUNTIME_STOP_WAIT = float(os.environ.get("WORKBENCH_CANCEL_WAIT", "90"))


@dataclass
class CancelResult:
    run_id: str
    status: str  # the run's status afterwards
    signalled: Optional[int] = None  # the runtime pid we signalled
    removed: list[str] = field(default_factory=list)  # what backends removed, in words
    notes: list[str] = field(default_factory=list)


def cancel_run(
    ds: FlowDatastore,
    config,
    run_id: str,
    *,
    say: Callable[[str], None] = lambda s: None,
    wait: float = RUNTIME_STOP_WAIT,
) -> CancelResult:
    """Stop run ``run_id`` of ``ds``'s flow and remove what it left (see the module docstring)."""
    record = ds.read_run(run_id, observed=False)
    if record is None:
        raise UsageError(f"no run {run_id} of flow {ds.flow} in {ds.url}")
    result = CancelResult(run_id, str(record.status))
    if record.status is RunStatus.RUNNING and runtime_gone(record) is None:
        if record.runtime_pid is not None and record.runtime_host == this_host() and pid_alive(record.runtime_pid):
            say(f"run {run_id}: asking its runtime (pid {record.runtime_pid}) to cancel")
            os.kill(record.runtime_pid, signal.SIGTERM)
            result.signalled = record.runtime_pid
            record = _wait_final(ds, run_id, wait) or record
        elif record.runtime_host and record.runtime_host != this_host():
            result.notes.append(
                f"its runtime runs on {record.runtime_host} (pid {record.runtime_pid}): only cleaned up from here"
            )
    result.removed = release_all(ds, config, record, say)
    if record.status is RunStatus.RUNNING:
        latest = ds.read_run(run_id, observed=False) or record
        if latest.status is RunStatus.RUNNING:
            latest.status, latest.finished_at = RunStatus.CANCELLED, time.time()
            gone = runtime_gone(latest) or "stopped by `workbench cancel`"
            latest.message = f"cancelled by `workbench cancel` ({gone})"
            ds.write_run(latest)
        record = latest
    result.status = str(record.status)
    return result


def _wait_final(ds: FlowDatastore, run_id: str, wait: float) -> Optional[RunRecord]:
    deadline = time.time() + wait
    while time.time() < deadline:
        record = ds.read_run(run_id, observed=False)
        if record is not None and record.status is not RunStatus.RUNNING:
            return record
        time.sleep(0.2)
    return None


def release_all(ds: FlowDatastore, config, record: RunRecord, say: Callable[[str], None]) -> list[str]:
    """Ask each backend the run used (its record, its held entries) to remove what it still holds."""
    from .backends import create_backend

    held = read_held(ds, record.run_id)
    names = sorted({h.backend for h in held} | set(record.backends))
    removed: list[str] = []
    for name in names:
        refs = [h.ref for h in held if h.backend == name]
        try:
            backend = create_backend(name, config)
            gone = backend.release(ds.flow, record.run_id, refs, say)
        except WorkbenchError as exc:
            say(f"{name}: could not clean up: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - one backend failing must not stop the others
            say(f"{name}: could not clean up: {type(exc).__name__}: {exc}")
            continue
        for what in gone:
            say(f"{name}: removed {what}")
        removed += gone
    return removed
