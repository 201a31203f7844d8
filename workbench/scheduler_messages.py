"""The scheduler's vocabulary: the events it is fed and the instructions it returns.

:class:`workbench.scheduler.Scheduler` takes a :data:`SchedulerEvent` (something that happened) and returns
a list of :data:`Instruction` (what to do about it); the driver (:mod:`workbench.runtime`) builds the events
and carries the instructions out. They live here, apart from the decisions, so both sides share one small
module; :mod:`workbench.scheduler` re-exports every name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

from . import events as ev
from .backends.base import TaskExit
from .datastore.records import AttemptRecord, RunStatus, TaskRecord, TaskSpecRecord
from .settings import StepSettings


# ---------------------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class RunStart:
    now: float


@dataclass(frozen=True)
class TaskExited:
    """A backend reported the end of ``attempt`` of task ``key``; ``report`` is its attempt-<n>.json."""

    key: str
    attempt: int
    exit: TaskExit
    report: Optional[AttemptRecord]
    now: float


@dataclass(frozen=True)
class CancelRequested:
    reason: str
    now: float


@dataclass(frozen=True)
class Abort:
    """The driver hit an error it cannot carry on after (a WorkbenchError): stop, the run fails."""

    message: str
    now: float


@dataclass(frozen=True)
class Tick:
    """Time passed: release retries whose delay is over, cancel tasks past their hard deadline."""

    now: float


@dataclass(frozen=True)
class StopExpired:
    """The tasks cancelled while stopping did not answer in time: count them cancelled and finish."""

    now: float


SchedulerEvent = Union[RunStart, TaskExited, CancelRequested, Abort, Tick, StopExpired]


# ---------------------------------------------------------------------------------------- instructions
@dataclass(frozen=True)
class Submit:
    """Write ``spec`` (spec-<attempt>.json) and hand the attempt to backend ``backend``.
    ``input_shas``: the artifacts it reads (what a remote task needs staged)."""

    key: str
    backend: str
    spec: TaskSpecRecord
    settings: StepSettings
    input_shas: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Cancel:
    key: str
    reason: str
    timeout: bool = False


@dataclass(frozen=True)
class WriteTask:
    record: TaskRecord


@dataclass(frozen=True)
class Emit:
    event: ev.Event


@dataclass(frozen=True)
class FinishRun:
    status: RunStatus
    message: str = ""
    failed: tuple[str, ...] = ()  # pathspecs


Instruction = Union[Submit, Cancel, WriteTask, Emit, FinishRun]
StackKey = tuple[tuple[str, int], ...]  # a foreach index path: ((step, index), ...), outermost first


def summary(instructions: list[Instruction]) -> list[tuple[Any, ...]]:
    """A compact, comparable form of an instruction list (for tests and debugging)."""
    rows: list[tuple[Any, ...]] = []
    for i in instructions:
        if isinstance(i, Submit):
            rows.append(("submit", i.spec.step, i.key, i.spec.attempt))
        elif isinstance(i, Cancel):
            rows.append(("cancel", i.key, i.reason, i.timeout))
        elif isinstance(i, WriteTask):
            rows.append(("write", i.record.step, i.record.task_id, str(i.record.status)))
        elif isinstance(i, Emit):
            rows.append(("emit", type(i.event).__name__, getattr(i.event, "pathspec", "")))
        elif isinstance(i, FinishRun):
            rows.append(("finish", str(i.status), i.message))
    return rows
