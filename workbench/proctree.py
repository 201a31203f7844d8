"""Finding a local task's leftover processes, wherever they went.

A task's process group is not enough: a step may start a helper with ``start_new_session=True`` (its
own session and group), which outlives ``killpg`` and keeps the task's output pipes open. So every local
task process carries a mark in its environment (``WORKBENCH_TASK_MARK=<flow>/<run>/<step>/<task>/<attempt>``),
which every descendant inherits unless it clears its environment on purpose, and leftovers are found by
that mark in ``/proc`` (Linux; elsewhere only the process group is killed).
"""

from __future__ import annotations

import os
import signal
from typing import Iterator

MARK_VAR = "WORKBENCH_TASK_MARK"


def task_mark(flow: str, run_id: str, step: str, task_id: str, attempt: int) -> str:
    return f"{flow}/{run_id}/{step}/{task_id}/{attempt}"


def marked_pids(prefix: str) -> Iterator[int]:
    """Pids of processes on this host whose mark is ``prefix`` or, when it ends with '/', starts with it
    (``flow/run/`` matches every task of a run). Processes we may not read are skipped."""
    needle = f"{MARK_VAR}={prefix}".encode()
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for name in entries:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if any(item == needle or (prefix.endswith("/") and item.startswith(needle)) for item in env.split(b"\0")):
            yield int(name)


def kill_marked(prefix: str, sig: int = signal.SIGKILL) -> list[int]:
    """Signal every process carrying a mark that starts with ``prefix``; the pids signalled."""
    killed = []
    for pid in marked_pids(prefix):
        try:
            os.kill(pid, sig)
            killed.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return killed
