"""Run liveness: is the runtime of a ``running`` run still there, and what did it leave behind?

- The runtime stamps ``heartbeat_at`` (and its pid and host) into ``run.json`` every
  ``HEARTBEAT_INTERVAL`` seconds (:class:`Heartbeat`). A reader (:func:`observed_status`, used by the
  datastore's one reader of run records, so the CLI, the client and the TUI all agree) sees a running
  run as ``crashed`` when its heartbeat is older than ``HEARTBEAT_STALE`` or, on the runtime's own host,
  its pid is gone.
- Before each submit the runtime appends a *held* entry (:class:`HeldEntry`) to the run's
  ``held.jsonl``: which backend, which task and what the backend will name it by. ``workbench cancel``
  (:mod:`workbench.cancel`) hands these to each backend's ``release`` so whatever a dead runtime left
  (containers, Batch jobs, Kubernetes Jobs, local processes) is removed.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from .datastore.records import RunRecord, RunStatus

if TYPE_CHECKING:
    from .datastore import FlowDatastore

HEARTBEAT_INTERVAL = float(os.environ.get("WORKBENCH_HEARTBEAT_INTERVAL", "5"))
HEARTBEAT_STALE = float(os.environ.get("WORKBENCH_HEARTBEAT_STALE", "60"))  # several missed beats, not one slow write
HELD_LOG = "held.jsonl"


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid: Optional[int]) -> Optional[bool]:
    """True/False for a pid on this host; None when it cannot be told (no pid)."""
    if not pid:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) is as dead as it gets
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def runtime_gone(record: RunRecord, now: Optional[float] = None) -> Optional[str]:
    """Why the runtime of a running run is known to be gone (words), or None while it may be alive.
    A record written before heartbeats existed has no heartbeat: it cannot be judged."""
    if record.status is not RunStatus.RUNNING or record.heartbeat_at is None:
        return None
    now = time.time() if now is None else now
    if record.runtime_host == this_host() and pid_alive(record.runtime_pid) is False:
        return f"its runtime (pid {record.runtime_pid}) is gone"
    age = now - record.heartbeat_at
    if age > HEARTBEAT_STALE:
        return f"no heartbeat from its runtime for {age:.0f}s"
    return None


def observed_status(record: RunRecord, now: Optional[float] = None) -> RunRecord:
    """The record as a reader should see it: a running run whose runtime is gone reads as crashed."""
    why = runtime_gone(record, now)
    if why is not None:
        record.status = RunStatus.CRASHED
        record.message = record.message or f"crashed: {why}; `workbench cancel {record.run_id}` removes what it left"
    return record


def stamp(record: RunRecord, *, detached: bool = False) -> None:
    """Fill in who is running ``record`` (this process) and a first heartbeat."""
    record.runtime_pid, record.runtime_host, record.heartbeat_at = os.getpid(), this_host(), time.time()
    record.detached = record.detached or detached


class Heartbeat:
    """Rewrites the run's record every ``interval`` seconds from its own thread, until :meth:`stop`.
    ``write`` is serialised with the runtime's own writes of the record by ``lock``."""

    def __init__(
        self,
        record: RunRecord,
        write: Callable[[RunRecord], None],
        lock: threading.Lock,
        interval: float = HEARTBEAT_INTERVAL,
    ):
        self.record, self.write, self.lock, self.interval = record, write, lock, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="workbench-heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        """No beat is written after this returns (the final record is the runtime's)."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self.lock:
                if self._stop.is_set() or self.record.status is not RunStatus.RUNNING:
                    return
                self.record.heartbeat_at = time.time()
                try:
                    self.write(self.record)
                except Exception:  # noqa: BLE001 - a failed beat is retried at the next one
                    pass


@dataclass
class HeldEntry:
    """What one backend will hold for one task attempt, recorded before it is submitted."""

    backend: str
    pathspec: str
    attempt: int
    ref: dict[str, Any] = field(default_factory=dict)  # backend-specific names (job name, queue, namespace)
    at: float = 0.0

    @classmethod
    def from_dict(cls, data: dict) -> "HeldEntry":
        return cls(
            backend=str(data.get("backend", "")),
            pathspec=str(data.get("pathspec", "")),
            attempt=int(data.get("attempt") or 0),
            ref=dict(data.get("ref") or {}),
            at=float(data.get("at") or 0),
        )


def held_key(ds: "FlowDatastore", run_id: str) -> str:
    return f"{ds.flow}/runs/{run_id}/{HELD_LOG}"


def append_held(ds: "FlowDatastore", run_id: str, *entries: HeldEntry) -> None:
    """Record ``entries`` durably (object stores upload them now, in one upload) before the backend is asked for
    anything: the runtime hands the tasks one event starts over together, so a 10,000-wide foreach is a few
    uploads of held.jsonl rather than one per task (each a re-upload of the whole, growing file)."""
    now = time.time()
    key = held_key(ds, run_id)
    lines = []
    for entry in entries:
        entry.at = entry.at or now
        lines.append(json.dumps(asdict(entry), separators=(",", ":"), default=str) + "\n")
    if not lines:
        return
    ds.storage.append_text(key, "".join(lines))
    flush = ds.storage.flush
    try:
        flush(key, keep=True)  # type: ignore[call-arg]
    except TypeError:  # a storage whose flush takes no keep flag (local: appends are already on disk)
        flush(key)


def read_held(ds: "FlowDatastore", run_id: str) -> list[HeldEntry]:
    """Every held entry of a run (a damaged line is skipped: it names nothing we could remove)."""
    try:
        raw = bytes(ds.storage.get(held_key(ds, run_id))).decode("utf-8", "replace")
    except KeyError:
        return []
    out = []
    for line in raw.splitlines():
        try:
            out.append(HeldEntry.from_dict(json.loads(line)))
        except (ValueError, TypeError, AttributeError):
            continue
    return out
