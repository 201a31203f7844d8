"""The driver's data types: the messages backends' threads put on its one queue (:class:`LogMessage`,
:class:`ExitMessage`, :class:`Wake`), what it keeps about each submitted attempt (:class:`_Running`) and
what a run returns (:class:`RunResult`). :mod:`workbench.runtime` re-exports them.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from typing import Optional, Union

from .backends import Backend, TaskExit, TaskHandle, TaskSpec
from .exitcodes import CLI_CANCELLED, CLI_FAILED, CLI_OK
from .liveness import HeldEntry


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


@dataclass(slots=True)  # one per task in flight (10,000 in a wide foreach on Batch): no per-instance __dict__
class _Running:
    """What the driver keeps about a submitted attempt: where it reads and writes, its handle, its logs.
    Its :meth:`on_log` and :meth:`on_exit` are the callbacks the backend gets (bound methods: no closure per task)."""

    key: str  # the scheduler's key
    run_path: str  # FLOW/RUN, one string shared by every task of the run (the pathspec is made when asked)
    step: str
    task_id: str
    attempt: int
    staged: bool
    driver_queue: "queue.Queue[Message]"  # the driver's one queue
    handle: Optional[TaskHandle] = None
    log_buffer: Optional[list[tuple[float, str, str]]] = None  # (ts, stream, text); made by the first line

    @property
    def pathspec(self) -> str:
        return f"{self.run_path}/{self.step}/{self.task_id}"

    def buffer(self, ts: float, stream: str, text: str) -> None:
        if self.log_buffer is None:
            self.log_buffer = []
        self.log_buffer.append((ts, stream, text))

    def on_log(self, stream: str, text: str, ts: float) -> None:
        self.driver_queue.put(LogMessage(self.key, stream, text, ts))

    def on_exit(self, result: TaskExit) -> None:
        self.driver_queue.put(ExitMessage(self.key, self.attempt, result))


_Handover = tuple[Backend, TaskSpec, _Running, HeldEntry]  # a task prepared for its backend (Runtime._hand_over)


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
