"""The scheduler's state per task: :class:`_Task` (one per task of a run, all alive at once in a wide foreach,
so kept small) and :class:`_Split` (what the children of one fan-out share). Kept apart from
:mod:`workbench.scheduler` to keep each file small; the scheduler is their only writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .datastore.records import AttemptSummary, TaskStatus
from .scheduler_messages import StackKey
from .settings import StepSettings


# ------------------------------------------------------------------------------------------ task state
@dataclass(frozen=True, slots=True)
class _Split:
    """One fan-out (a foreach task's children): what its frames share. Every child holds this one object and its
    own index, and builds its frame when asked (:attr:`_Task.foreach_stack`), so a 10,000-wide foreach keeps one
    frame-maker and 10,000 ints rather than 10,000 stacks of frame dicts."""

    outer: list[dict[str, Any]]  # the fanning task's own stack, shared by all its children (never changed)
    step: str
    var: Optional[str]
    num_splits: int

    def stack(self, index: int) -> list[dict[str, Any]]:
        return self.outer + [{"step": self.step, "var": self.var, "index": index, "num_splits": self.num_splits}]


_NO_ARTIFACTS: dict[str, dict[str, Any]] = {}  # shared by every task that has none yet: never changed in place


def _no_artifacts() -> dict[str, dict[str, Any]]:
    return _NO_ARTIFACTS


_NO_ATTEMPTS: tuple[AttemptSummary, ...] = ()


@dataclass(slots=True)  # one per task of a run, all alive at once in a wide foreach: no per-instance __dict__
class _Task:
    step: str
    task_id: str
    stack: list[dict[str, Any]]  # frames {step, var, index, num_splits}; an index of a fan-out: those outside it
    parents: list["_Task"]  # siblings of a fan-out share one list (never changed in place)
    settings: StepSettings
    split: Optional[_Split] = None  # an index of a fan-out (or a successor of one in its branch): its shared part
    index: int = 0  # ... and which index
    attempt: int = 0
    status: TaskStatus = TaskStatus.PENDING
    artifacts: dict[str, dict[str, Any]] = field(default_factory=_no_artifacts)  # replaced, never changed in place
    num_splits: Optional[int] = None
    foreach_artifact: Optional[str] = None
    started: float = 0.0
    deadline: Optional[float] = None
    attempts: Sequence[AttemptSummary] = _NO_ATTEMPTS  # replaced, never changed in place
    cloned_from: Optional[str] = None
    iteration: int = 0  # a recursive switch step: which pass of the loop
    switch_to: Optional[str] = None  # a switch step: the case it took
    parallel: Optional[dict[str, Any]] = None  # a @parallel gang member: {gang, node_index, num_nodes}
    catch_fallback: Optional[str] = None  # @catch of a task that never ran: why (its last attempt stores it)

    @property
    def foreach_stack(self) -> list[dict[str, Any]]:
        """Its frames, outermost first (a new list for an index of a fan-out: do not keep it per task)."""
        return self.split.stack(self.index) if self.split is not None else self.stack

    @property
    def last_index(self) -> Optional[int]:
        """Its index in the innermost foreach (None outside any)."""
        if self.split is not None:
            return self.index
        return self.stack[-1]["index"] if self.stack else None

    @property
    def stack_key(self) -> StackKey:
        return tuple((f["step"], f["index"]) for f in self.foreach_stack)
