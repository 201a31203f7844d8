"""Typed events a run emits. Front ends (CLI renderer, TUI, JSON/JUnit writers) only render these.

Every event is a frozen dataclass with a ``kind`` and a wall-clock ``ts``; ``to_dict`` gives the
JSON-lines form that ``workbench run --json`` prints.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Event:
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["event"] = type(self).__name__
        return data


@dataclass(frozen=True)
class RunStarted(Event):
    flow: str
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    origin_run_id: Optional[str] = None
    steps: tuple[str, ...] = ()
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class TaskStarted(Event):
    pathspec: str
    step: str
    attempt: int
    backend: str
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class TaskCloned(Event):
    """A task reused from the origin run of a resume (or single-step re-run)."""

    pathspec: str
    step: str
    origin_pathspec: str
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class LogLine(Event):
    pathspec: str
    stream: str  # "stdout" | "stderr"
    text: str
    attempt: int = 0
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class TaskRetrying(Event):
    pathspec: str
    step: str
    attempt: int  # the attempt that failed
    reason: str
    delay: float
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class TaskWaiting(Event):
    """A submitted remote task is not running yet, and why (Batch's status and statusReason, the Kubernetes
    scheduler's words; workbench.backends.waiting); ``reason`` is "" once it runs."""

    pathspec: str
    step: str
    backend: str
    reason: str
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class TaskFinished(Event):
    """A task ended. ``status`` is a :class:`~workbench.datastore.records.TaskStatus` (a str): succeeded,
    failed, timeout, cancelled or oom."""

    pathspec: str
    step: str
    status: str
    attempt: int
    duration: float
    reason: str = ""
    exit_code: Optional[int] = None
    traceback: str = ""
    ts: float = field(default_factory=_now)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class RunWarning(Event):
    message: str
    pathspec: str = ""
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class RunFinished(Event):
    """The run ended. ``status`` is succeeded, failed or cancelled."""

    flow: str
    run_id: str
    status: str
    duration: float
    failed: tuple[str, ...] = ()  # pathspecs of failed tasks
    message: str = ""
    ts: float = field(default_factory=_now)


EventSink = Callable[[Event], None]

__all__ = [
    "Event",
    "RunStarted",
    "TaskStarted",
    "TaskCloned",
    "LogLine",
    "TaskRetrying",
    "TaskWaiting",
    "TaskFinished",
    "RunWarning",
    "RunFinished",
    "EventSink",
]
