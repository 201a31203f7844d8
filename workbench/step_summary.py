"""A step's tasks folded into one :class:`StepSummaryRecord`, one task at a time and in bounded memory:
counts by state, durations in fixed bins, the first failed and the slowest tasks, the hungriest task.

The runtime folds its own tasks as they start and end (:class:`workbench.runtime_datastore.StepSummaryWriter`
writes the result); a viewer folds the task records of a run written before summaries existed. Pure:
no I/O, no clock (times come from the records and the caller).
"""

from __future__ import annotations

import bisect
import heapq
from typing import Iterable, Optional

from . import events as ev
from .datastore.records import DURATION_EDGES, StepSummaryRecord, TaskBrief, TaskRecord
from .progress import IN_RETRYING, IN_RUNNING, KNOWN, RunProgress, TaskMarks, events_from_tasks

ENDED = KNOWN  # the mark of a task whose final record was folded
FAILED_KEPT = 100  # failed tasks listed by name (the rest are counted)
SLOWEST_KEPT = 200  # slowest finished tasks listed by name (a screenful and more)
RUNNING = "running"
RETRYING = "retrying"
CLONED = "cloned"


def duration_bin(seconds: float) -> int:
    return bisect.bisect_right(DURATION_EDGES, seconds)


def task_seconds(record: TaskRecord) -> Optional[float]:
    started, finished = record.started_at, record.finished_at
    if isinstance(started, (int, float)) and isinstance(finished, (int, float)) and finished >= started:
        return float(finished) - float(started)
    return None


def foreach_index(record: TaskRecord) -> str:
    return ".".join(str(f.get("index", "")) for f in record.foreach_stack if isinstance(f, dict))


def task_state(record: TaskRecord) -> str:
    return CLONED if record.cloned_from else str(record.status or "?")


class StepSummaryBuilder:
    """Folds one step's tasks. ``started``/``retrying`` take a pathspec in flight; ``add`` a task's final
    record. ``record()`` is the summary so far. Each task costs one byte (its marks: running, retrying,
    ended), not its name: a repeated event is still told apart."""

    def __init__(self, flow: str, run_id: str, step: str):
        self.flow, self.run_id, self.step = flow, run_id, step
        self.progress = RunProgress()  # the step's status by the one rule of workbench.progress
        self.marks = TaskMarks()
        self.counts: dict[str, int] = {}
        self.bins = [0] * (len(DURATION_EDGES) + 1)
        self.min_seconds: Optional[float] = None
        self.max_seconds: Optional[float] = None
        self.sum_seconds = 0.0
        self.failed: list[TaskBrief] = []
        self.failed_total = 0
        self._slowest: list[tuple[float, int, TaskBrief]] = []  # a min-heap of the slowest kept
        self._order = 0
        self.peak_memory_task: Optional[str] = None
        self.peak_memory_mib = 0.0
        self.started_at: Optional[float] = None
        self.finished_at: Optional[float] = None

    @property
    def running(self) -> int:
        return self.marks.count[IN_RUNNING]

    @property
    def retrying(self) -> int:
        return self.marks.count[IN_RETRYING]

    @property
    def ended(self) -> int:
        return self.marks.count[ENDED]

    @property
    def in_flight(self) -> int:
        return self.running + self.retrying

    def started(self, pathspec: str, ts: Optional[float] = None) -> None:
        if self.marks.get(pathspec) & ENDED:
            return
        self.marks.change(pathspec, add=IN_RUNNING, remove=IN_RETRYING)
        self.progress.apply(ev.TaskStarted(pathspec, self.step, 0, "", ts=ts or 0.0))
        if ts is not None:
            self.started_at = ts if self.started_at is None else min(self.started_at, ts)

    def retrying_again(self, pathspec: str) -> None:
        if self.marks.get(pathspec) & IN_RUNNING:
            self.marks.change(pathspec, add=IN_RETRYING, remove=IN_RUNNING)
            self.progress.apply(ev.TaskRetrying(pathspec, self.step, 0, "", 0.0))

    def add(self, record: TaskRecord) -> None:
        """A task's final record (finished or cloned)."""
        pathspec = record.pathspec or f"{self.flow}/{self.run_id}/{self.step}/{record.task_id}"
        if self.marks.change(pathspec, add=ENDED, remove=IN_RUNNING | IN_RETRYING) & ENDED:
            return  # folded already
        for event in events_from_tasks([record]):
            self.progress.apply(event)
        state = task_state(record)
        self.counts[state] = self.counts.get(state, 0) + 1
        seconds = task_seconds(record)
        brief = TaskBrief(record.task_id or "?", state, seconds, record.attempt, record.reason, foreach_index(record))
        if state not in ("succeeded", CLONED):
            self.failed_total += 1
            if len(self.failed) < FAILED_KEPT:
                self.failed.append(brief)
        if seconds is not None and state != CLONED:
            self.bins[duration_bin(seconds)] += 1
            self.min_seconds = seconds if self.min_seconds is None else min(self.min_seconds, seconds)
            self.max_seconds = seconds if self.max_seconds is None else max(self.max_seconds, seconds)
            self.sum_seconds += seconds
            self._order += 1
            entry = (seconds, -self._order, brief)
            if len(self._slowest) < SLOWEST_KEPT:
                heapq.heappush(self._slowest, entry)
            elif entry[:2] > self._slowest[0][:2]:
                heapq.heapreplace(self._slowest, entry)
        if record.started_at is not None and state != CLONED:
            self.started_at = record.started_at if self.started_at is None else min(self.started_at, record.started_at)
        if record.finished_at is not None:
            self.finished_at = (
                record.finished_at if self.finished_at is None else max(self.finished_at, record.finished_at)
            )
        from .sampling import timeline_peak_mib

        peak = max(float(record.usage.get("peak_memory_mib") or 0.0), timeline_peak_mib(record.usage))
        if peak > self.peak_memory_mib:
            self.peak_memory_mib, self.peak_memory_task = peak, record.task_id

    def record(self, *, updated_at: Optional[float] = None, final: bool = False) -> StepSummaryRecord:
        counts = dict(self.counts)
        if self.running:
            counts[RUNNING] = self.running
        if self.retrying:
            counts[RETRYING] = self.retrying
        slowest = [brief for _, _, brief in sorted(self._slowest, key=lambda e: (-e[0], -e[1]))]
        return StepSummaryRecord(
            flow=self.flow,
            run_id=self.run_id,
            step=self.step,
            status=self.progress.step(self.step).status,
            total=self.ended + self.in_flight,
            counts=counts,
            durations=list(self.bins),
            min_seconds=self.min_seconds,
            max_seconds=self.max_seconds,
            sum_seconds=self.sum_seconds,
            failed=list(self.failed),
            failed_total=self.failed_total,
            slowest=slowest,
            peak_memory_task=self.peak_memory_task,
            peak_memory_mib=self.peak_memory_mib,
            started_at=self.started_at,
            finished_at=self.finished_at if not self.in_flight else None,
            updated_at=updated_at,
            final=final,
        )


def summarize_records(
    flow: str, run_id: str, step: str, records: Iterable[TaskRecord], running: int = 0
) -> StepSummaryRecord:
    """A summary from task records (a run written before summaries existed); ``running`` tasks have a
    directory but no record yet."""
    builder = StepSummaryBuilder(flow, run_id, step)
    for record in records:
        builder.add(record)
    for n in range(running):
        builder.started(f"{flow}/{run_id}/{step}/unrecorded-{n}")
    return builder.record()
