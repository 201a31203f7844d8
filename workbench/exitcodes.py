"""Exit codes in one place: what a task process returns, what the ``workbench`` command returns, and
how a backend turns a task's exit code into words (:func:`exit_from_code`).

Task processes (``python -m workbench.task run``):
    TASK_OK 0        the step succeeded (or @catch caught its exception)
    TASK_FAILED 1    the step raised, or its outputs could not be saved
    TASK_TIMEOUT 3   the step ran past its @timeout (the task's own alarm fired)

The ``workbench`` command:
    CLI_OK 0, CLI_FAILED 1 (a run or check failed), CLI_USAGE 2 (bad input: the one-line error),
    CLI_CANCELLED 130 (Ctrl-C, as a shell reports SIGINT).
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .backends.base import TaskExit

TASK_OK = 0
TASK_FAILED = 1
TASK_TIMEOUT = 3

CLI_OK = 0
CLI_FAILED = 1
CLI_USAGE = 2
CLI_CANCELLED = 130


# what a signal means to the person reading the task's stderr (Metaflow's runtime says "segmentation fault")
_SIGNAL_WORDS: dict[int, str] = {
    signal.SIGSEGV: " (segmentation fault: the process read or wrote memory it does not own)",
    signal.SIGBUS: " (bus error)",
    signal.SIGABRT: " (aborted)",
    signal.SIGFPE: " (floating-point exception)",
    signal.SIGILL: " (illegal instruction)",
    signal.SIGKILL: " (the kernel's OOM killer, or someone, killed it)",
}


def exit_from_code(
    code: Optional[int], requested: Optional[str], usage: dict[str, Any], *, timeout: bool = False
) -> "TaskExit":
    """Words for how a task process ended. ``code`` < 0 means killed by signal -code; ``requested`` is
    the reason the runtime gave when it cancelled the task (``timeout``: it was its hard deadline)."""
    from .backends.base import TaskExit
    from .datastore.records import TaskStatus

    if requested:
        return TaskExit(TaskStatus.TIMEOUT if timeout else TaskStatus.CANCELLED, code, requested, usage)
    if code == TASK_OK:
        return TaskExit(TaskStatus.SUCCEEDED, 0, "", usage)
    if code == TASK_TIMEOUT:
        return TaskExit(TaskStatus.TIMEOUT, code, "the step ran past its timeout", usage)
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = _SIGNAL_WORDS.get(-code, "")
        return TaskExit(TaskStatus.FAILED, code, f"killed by {name}{hint}", usage)
    return TaskExit(TaskStatus.FAILED, code, f"exited with code {code}", usage)
