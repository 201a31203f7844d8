"""Typed records: the documents a run leaves in the datastore (layout in :mod:`workbench.datastore`).

Each record is a dataclass with ``from_dict`` (tolerant: a missing field takes its default, an
unknown one is kept in ``extra`` and written back) and ``to_dict`` (the JSON form). Run directories
written before these records existed read the same way: the field names are the old keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Optional, Sequence, TypeVar


class TaskStatus(str, Enum):
    """Where a task (or one attempt of it) stands. Compares equal to its string value."""

    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"  # an attempt failed and another one follows
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    OOM = "oom"
    CANCELLED = "cancelled"
    ERROR = "error"

    __str__ = str.__str__
    __format__ = str.__format__  # type: ignore[assignment]  # str and Enum spell the same signature differently

    @property
    def is_terminal(self) -> bool:
        return self not in (TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.RETRYING)

    @property
    def ok(self) -> bool:
        return self is TaskStatus.SUCCEEDED

    @classmethod
    def parse(cls, value: Any) -> "TaskStatus":
        """A status read from disk or a backend; an unknown word counts as an error, not a crash."""
        try:
            return cls(value)
        except ValueError:
            return cls.ERROR


class RunStatus(str, Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CRASHED = "crashed"  # never written: what a reader sees of a running run whose runtime is gone

    __str__ = str.__str__
    __format__ = str.__format__  # type: ignore[assignment]  # str and Enum spell the same signature differently

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING

    @classmethod
    def parse(cls, value: Any) -> "RunStatus":
        try:
            return cls(value)
        except ValueError:
            return cls.FAILED


R = TypeVar("R", bound="_Record")


@dataclass
class _Record:
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)

    _ENUMS: ClassVar[dict[str, Any]] = {}  # field -> enum with .parse, set per subclass

    @classmethod
    def from_dict(cls: "type[R]", data: Optional[dict[str, Any]]) -> "R":
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        for name, enum in cls._ENUMS.items():
            if name in known:
                known[name] = enum.parse(known[name])
        for f in dataclasses.fields(cls):  # a null where a collection belongs reads as empty
            if f.name in known and known[f.name] is None and f.default_factory is not dataclasses.MISSING:
                known[f.name] = f.default_factory()
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out

    def __getitem__(self, name: str) -> Any:
        """Read-only ``record["status"]`` for scripts and tests written against the JSON documents
        (code in workbench reads attributes)."""
        if name != "extra" and name in {f.name for f in dataclasses.fields(self)}:
            return getattr(self, name)
        return self.extra[name]


@dataclass
class RunRecord(_Record):
    """``run.json``: one run, written by the runtime when it starts and again when it ends."""

    flow: str = ""
    run_id: str = ""
    status: RunStatus = RunStatus.RUNNING
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    params: dict[str, Any] = field(default_factory=dict)  # shortened values, for display
    configs: dict[str, Any] = field(default_factory=dict)  # Config name -> value, whole (a resume keeps them)
    origin_run_id: Optional[str] = None  # the run a resume or single-step run took its inputs from
    flow_file: str = ""
    only_step: Optional[str] = None
    user: Optional[str] = None
    backends: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # pathspecs of the tasks that failed
    message: str = ""
    # liveness (workbench.liveness): the runtime rewrites heartbeat_at while it runs
    heartbeat_at: Optional[float] = None
    runtime_pid: Optional[int] = None
    runtime_host: Optional[str] = None
    detached: bool = False  # started by `workbench run --detach`
    runtime_log: Optional[str] = None  # the detached runtime's own output (a path on runtime_host)

    _ENUMS: ClassVar[dict[str, Any]] = {"status": RunStatus}


@dataclass
class AttemptSummary(_Record):
    """One attempt of a task as the runtime saw it (an entry of ``TaskRecord.attempts``)."""

    attempt: int = 0
    status: TaskStatus = TaskStatus.FAILED
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    exit_code: Optional[int] = None
    reason: str = ""
    backend: str = ""
    usage: dict[str, Any] = field(default_factory=dict)  # peak_memory_mib, cpu_seconds, ...

    _ENUMS: ClassVar[dict[str, Any]] = {"status": TaskStatus}


@dataclass
class TaskRecord(_Record):
    """``task.json``: a task as the runtime saw it, written once when it ends (or is cloned)."""

    flow: str = ""
    run_id: str = ""
    step: str = ""
    task_id: str = ""
    pathspec: str = ""
    status: TaskStatus = TaskStatus.FAILED
    attempt: int = 0  # the last attempt
    attempts: list[AttemptSummary] = field(default_factory=list)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {sha, size, type, ...}
    foreach_stack: list[dict[str, Any]] = field(default_factory=list)  # frames {step, var, index, num_splits}
    foreach_num_splits: Optional[int] = None
    foreach_artifact: Optional[str] = None
    parents: list[str] = field(default_factory=list)  # pathspecs
    settings: dict[str, Any] = field(default_factory=dict)  # StepSettings.to_dict() as used
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    reason: str = ""
    traceback: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    cloned_from: Optional[str] = None  # the origin task's pathspec, for a cloned task
    switch_to: Optional[str] = None  # a switch step: the case it took
    iteration: int = 0  # a recursive switch step: which pass of the loop (0 first)
    parallel: Optional[dict[str, Any]] = None  # a @parallel task: {node_index, num_nodes, gang}

    _ENUMS: ClassVar[dict[str, Any]] = {"status": TaskStatus}

    @classmethod
    def from_dict(cls, data: Optional[dict[str, Any]]) -> "TaskRecord":
        record = super().from_dict(data)
        record.attempts = [a if isinstance(a, AttemptSummary) else AttemptSummary.from_dict(a) for a in record.attempts]
        record.reason = record.reason or ""
        record.traceback = record.traceback or ""
        return record

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["attempts"] = [a.to_dict() for a in self.attempts]
        return out

    @property
    def stack_key(self) -> tuple[tuple[str, int], ...]:
        """The foreach index path: ((step, index), ...) from the outermost foreach in."""
        return tuple((f["step"], f["index"]) for f in self.foreach_stack)


@dataclass
class AttemptRecord(_Record):
    """``attempt-<n>.json``: what the task process itself reported about one attempt."""

    status: TaskStatus = TaskStatus.FAILED
    attempt: int = 0
    pathspec: str = ""
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    reason: str = ""
    traceback: str = ""
    error: Optional[dict[str, str]] = None  # {type, message}
    caught: Optional[str] = None  # the reason @catch caught
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    foreach_artifact: Optional[str] = None
    foreach_num_splits: Optional[int] = None
    switch_to: Optional[str] = None  # a switch step: the case it took

    _ENUMS: ClassVar[dict[str, Any]] = {"status": TaskStatus}


@dataclass
class InputRef(_Record):
    """One parent of a task in its spec: which artifacts (name -> sha) it hands on."""

    pathspec: str = ""
    step: str = ""
    foreach_stack: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)


@dataclass
class TaskSpecRecord(_Record):
    """``spec-<n>.json``: everything one attempt needs, written by the runtime before it submits it."""

    flow: str = ""
    run_id: str = ""
    step: str = ""
    task_id: str = ""
    attempt: int = 0
    kind: str = ""  # the step's kind in the graph: start, linear, split, foreach, join, end
    next: list[str] = field(default_factory=list)
    foreach_var: Optional[str] = None
    flow_file: str = ""
    class_name: str = ""
    origin_run_id: Optional[str] = None
    settings: dict[str, Any] = field(default_factory=dict)
    foreach_stack: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)  # parameter name -> sha
    unresolved_params: list[str] = field(default_factory=list)  # computed by start itself
    inputs: Sequence[InputRef] = field(default_factory=list)  # a foreach's join: SplitInputs (input_split)
    parallel: Optional[dict[str, Any]] = None  # a @parallel task: {node_index, num_nodes, gang}
    catch_fallback: Optional[str] = None  # @catch: the step never ran (why); store the failure, run nothing

    @classmethod
    def from_dict(cls, data: Optional[dict[str, Any]]) -> "TaskSpecRecord":
        record = super().from_dict(data)
        split = record.extra.pop("input_split", None)
        if split is not None:  # a foreach's join (ValueError, one line, when damaged)
            from .split_inputs import SplitInputs

            record.inputs = SplitInputs.from_dict(split)
        else:
            record.inputs = [i if isinstance(i, InputRef) else InputRef.from_dict(i) for i in record.inputs]
        return record

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        compact = getattr(self.inputs, "to_dict", None)  # SplitInputs: a foreach's join
        if compact is not None:
            out["inputs"], out["input_split"] = [], compact()
        else:
            out["inputs"] = [i.to_dict() for i in self.inputs]
        return out

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}/{self.step}/{self.task_id}"


# A step's task durations are counted in these bins (seconds): bin 0 holds durations under the first
# edge, bin i those in [DURATION_EDGES[i-1], DURATION_EDGES[i]), the last bin a day and more. Fixed,
# so a summary can be updated one task at a time without keeping every duration.
DURATION_EDGES: tuple[float, ...] = (
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400,
    43200, 86400,
)  # fmt: skip


@dataclass
class TaskBrief(_Record):
    """One task as a step summary lists it (its failed and slowest tasks)."""

    task_id: str = ""
    status: str = ""
    seconds: Optional[float] = None
    attempt: int = 0
    reason: str = ""
    index: str = ""  # the foreach index path ("3", "1.4"), "" outside a foreach


_BRIEF_FIELDS = frozenset(("task_id", "status", "seconds", "attempt", "reason", "index"))


def _brief(data: Any) -> TaskBrief:
    """TaskBrief.from_dict without the generic field lookup: a summary holds hundreds of them and a live
    view reads it every second."""
    if not isinstance(data, dict):
        return TaskBrief()
    seconds = data.get("seconds")
    return TaskBrief(
        task_id=str(data.get("task_id") or ""),
        status=str(data.get("status") or ""),
        seconds=float(seconds) if isinstance(seconds, (int, float)) else None,
        attempt=int(data.get("attempt") or 0),
        reason=str(data.get("reason") or ""),
        index=str(data.get("index") or ""),
        extra={k: v for k, v in data.items() if k not in _BRIEF_FIELDS},
    )


@dataclass
class StepSummaryRecord(_Record):
    """``<run>/<step>/summary.json``: one step's tasks at a glance, so that a viewer of a 10,000-task
    foreach reads one small document instead of 10,000 task records. The runtime rewrites it at a
    bounded rate while the step runs, at once when the step has nothing left in flight, and a last
    time (``final``) when the run ends (:class:`workbench.step_summary.StepSummaryBuilder` folds it)."""

    flow: str = ""
    run_id: str = ""
    step: str = ""
    status: str = "pending"  # the step's status by the one rule of workbench.progress
    total: int = 0  # tasks started or cloned so far
    counts: dict[str, int] = field(default_factory=dict)  # running, retrying, succeeded, failed, ..., cloned
    durations: list[int] = field(default_factory=list)  # finished tasks per DURATION_EDGES bin
    min_seconds: Optional[float] = None
    max_seconds: Optional[float] = None
    sum_seconds: float = 0.0
    failed: list[TaskBrief] = field(default_factory=list)  # the first ones that ended other than succeeded
    failed_total: int = 0
    slowest: list[TaskBrief] = field(default_factory=list)  # slowest first
    peak_memory_task: Optional[str] = None  # the task id with the highest sampled memory
    peak_memory_mib: float = 0.0
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    updated_at: Optional[float] = None
    final: bool = False  # the run has ended: this summary will not change

    @classmethod
    def from_dict(cls, data: Optional[dict[str, Any]]) -> "StepSummaryRecord":
        record = super().from_dict(data)
        # a viewer reads whatever is on disk: odd values read as empty rather than failing later
        counts = record.counts if isinstance(record.counts, dict) else {}
        record.counts = {str(k): int(v) for k, v in counts.items() if isinstance(v, int)}
        bins = record.durations if isinstance(record.durations, list) else []
        record.durations = [int(n) if isinstance(n, int) else 0 for n in bins]
        failed = record.failed if isinstance(record.failed, list) else []
        slowest = record.slowest if isinstance(record.slowest, list) else []
        record.failed = [t if isinstance(t, TaskBrief) else _brief(t) for t in failed]
        record.slowest = [t if isinstance(t, TaskBrief) else _brief(t) for t in slowest]
        record.total = record.total if isinstance(record.total, int) else 0
        record.status = str(record.status)
        return record

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["failed"] = [t.to_dict() for t in self.failed]
        out["slowest"] = [t.to_dict() for t in self.slowest]
        return out


__all__ = [
    "TaskStatus",
    "RunStatus",
    "RunRecord",
    "TaskRecord",
    "AttemptSummary",
    "AttemptRecord",
    "InputRef",
    "TaskSpecRecord",
    "TaskBrief",
    "StepSummaryRecord",
    "DURATION_EDGES",
]
