"""The driver's data types: the messages backends' threads put on its one queue (:class:`LogMessage`,
:class:`ExitMessage`, :class:`Wake`), what it keeps about each submitted attempt (:class:`_Running`) and
what a run returns (:class:`RunResult`). :mod:`workbench.runtime` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from .backends import TaskExit, TaskHandle
from .exitcodes import CLI_CANCELLED, CLI_FAILED, CLI_OK


@dataclass(frozen=True)
class LogMessage:
    """One output line of a task, put on the queue by a backend's thread."""

    key: str
    stream: str
    text: str
    ts: float


@dataclass(frozen=True)
class ExitMessage:
    """A backend's on_exit for one attempt."""

    key: str
    attempt: int
    result: TaskExit


@dataclass(frozen=True)
class Wake:
    """Wakes the loop (a cancel from another thread)."""


Message = Union[LogMessage, ExitMessage, Wake]


@dataclass
class _Running:
    """What the driver keeps about a submitted attempt: where it reads and writes, its handle, its logs."""

    pathspec: str
    step: str
    task_id: str
    attempt: int
    staged: bool
    handle: Optional[TaskHandle] = None
    log_buffer: list[tuple[float, str, str]] = field(default_factory=list)  # (ts, stream, text)


@dataclass
class RunResult:
    flow: str
    run_id: str
    status: str  # succeeded | failed | cancelled
    failed: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def exit_code(self) -> int:
        return {"succeeded": CLI_OK, "failed": CLI_FAILED, "cancelled": CLI_CANCELLED}.get(self.status, CLI_FAILED)
