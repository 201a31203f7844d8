"""The progress of a run, reduced from its events: per step, how many tasks started, run, finished and how;
per run, its status and duration. Pure: no I/O, no terminal, no clock (times come from the events).

One rule for a step's status, shared by the CLI's live renderer, the TUI's live DAG and the TUI's past
runs (which replays a past run's task records as events through :func:`events_from_tasks`):

- a failing status (failed, oom, timeout, cancelled) of any finished task wins, the first one seen;
- else ``running`` while any task of the step runs;
- else ``cloned`` when every finished task was reused from an earlier run;
- else ``succeeded`` once any task finished; ``pending`` before anything happened.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Optional

from . import events as ev
from .datastore.records import TaskRecord

CLONED = "cloned"
PENDING = "pending"
RUNNING = "running"
SUCCEEDED = "succeeded"


@dataclass
class StepProgress:
    """One step's tasks so far. ``finished`` counts final statuses (``cloned`` for reused tasks)."""

    name: str
    tasks: set[str] = field(default_factory=set)  # pathspecs started or cloned
    running: set[str] = field(default_factory=set)  # pathspecs with an attempt in flight
    retrying: set[str] = field(default_factory=set)  # pathspecs between a failed attempt and the next
    finished: Counter[str] = field(default_factory=Counter)  # final status -> tasks
    first_failure: Optional[str] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None

    @property
    def total(self) -> int:
        """Tasks known so far (a foreach step's count grows as its tasks start)."""
        return len(self.tasks)

    @property
    def done(self) -> int:
        return sum(self.finished.values())

    @property
    def failed(self) -> int:
        """Tasks that ended in anything but success (cancelled included), as the CLI counts them."""
        return sum(n for status, n in self.finished.items() if status not in (SUCCEEDED, CLONED))

    @property
    def status(self) -> str:
        if self.first_failure is not None:
            return self.first_failure
        if self.running or self.retrying:
            return RUNNING
        if self.finished and set(self.finished) == {CLONED}:
            return CLONED
        if self.finished:
            return SUCCEEDED
        return PENDING

    @property
    def duration(self) -> Optional[float]:
        """From the first task's start to the last task's end, once the step is done."""
        if self.started_at is None or self.finished_at is None or self.running or self.retrying:
            return None
        return max(0.0, self.finished_at - self.started_at)


@dataclass
class RunProgress:
    """A run's steps (in the order the run announced them, then as first seen) and its overall state."""

    flow: str = ""
    run_id: str = ""
    steps: dict[str, StepProgress] = field(default_factory=dict)
    status: str = PENDING
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    message: str = ""

    def step(self, name: str) -> StepProgress:
        if name not in self.steps:
            self.steps[name] = StepProgress(name)
        return self.steps[name]

    def apply(self, event: ev.Event) -> Optional[str]:
        """Fold one event into the state; returns the step whose progress changed, if any."""
        if isinstance(event, ev.RunStarted):
            self.flow, self.run_id, self.status, self.started_at = event.flow, event.run_id, RUNNING, event.ts
            for name in event.steps:
                self.step(name)
            return None
        if isinstance(event, ev.RunFinished):
            self.status, self.finished_at, self.message = event.status, event.ts, event.message
            return None
        if isinstance(event, ev.TaskStarted):
            s = self.step(event.step)
            s.tasks.add(event.pathspec)
            s.running.add(event.pathspec)
            s.retrying.discard(event.pathspec)
            s.started_at = event.ts if s.started_at is None else min(s.started_at, event.ts)
            return s.name
        if isinstance(event, ev.TaskCloned):
            s = self.step(event.step)
            s.tasks.add(event.pathspec)
            s.finished[CLONED] += 1
            return s.name
        if isinstance(event, ev.TaskRetrying):
            s = self.step(event.step)
            s.running.discard(event.pathspec)
            s.retrying.add(event.pathspec)
            return s.name
        if isinstance(event, ev.TaskFinished):
            s = self.step(event.step)
            s.tasks.add(event.pathspec)
            s.running.discard(event.pathspec)
            s.retrying.discard(event.pathspec)
            s.finished[str(event.status)] += 1
            if event.status != SUCCEEDED and s.first_failure is None:
                s.first_failure = str(event.status)
            s.finished_at = event.ts if s.finished_at is None else max(s.finished_at, event.ts)
            if s.started_at is None:
                s.started_at = event.ts - event.duration
            return s.name
        return None

    def statuses(self) -> dict[str, str]:
        """Step -> status, for steps that have begun (the DAG draws the rest as not started)."""
        return {name: s.status for name, s in self.steps.items() if s.status != PENDING}

    def counts(self) -> dict[str, int]:
        """Step -> tasks known so far."""
        return {name: s.total for name, s in self.steps.items() if s.total}


def reduce_events(events: Iterable[ev.Event], state: Optional[RunProgress] = None) -> RunProgress:
    """Fold events into a (new or given) :class:`RunProgress`."""
    state = state if state is not None else RunProgress()
    for event in events:
        state.apply(event)
    return state


def events_from_tasks(records: Iterable[TaskRecord]) -> list[ev.Event]:
    """A past run's task records as the events that would have ended them: how past runs are reduced."""
    out: list[ev.Event] = []
    for doc in records:
        step = doc.step or "?"
        pathspec = doc.pathspec or f"{doc.flow}/{doc.run_id}/{step}/{doc.task_id}"
        if doc.cloned_from:
            out.append(ev.TaskCloned(pathspec, step, doc.cloned_from, ts=doc.finished_at or 0.0))
        elif str(doc.status) == RUNNING:
            out.append(ev.TaskStarted(pathspec, step, 0, "", ts=doc.started_at or 0.0))
        else:
            duration = (doc.finished_at or 0.0) - (doc.started_at or 0.0)
            out.append(
                ev.TaskFinished(pathspec, step, str(doc.status), 0, max(0.0, duration), ts=doc.finished_at or 0.0)
            )
    return out
