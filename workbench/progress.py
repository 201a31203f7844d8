"""The progress of a run, reduced from its events: per step, how many tasks started, run, finished and how;
per run, its status and duration. Pure: no I/O, no terminal, no clock (times come from the events).
Memory stays flat in the number of tasks: a step keeps counts and one byte per task (:class:`TaskMarks`), not
the tasks' names.

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


KNOWN, IN_RUNNING, IN_RETRYING = 1, 2, 4  # the marks a step keeps per task (bits of one byte)
_MARKS = (KNOWN, IN_RUNNING, IN_RETRYING)
_PAGE = 256  # tasks per page of marks


def _canonical(tail: str) -> bool:
    """A task number as a run writes it ("07" and "7" are two tasks: only the second is a number)."""
    return tail.isdigit() and tail.isascii() and len(tail) <= 15 and (tail[0] != "0" or len(tail) == 1)


class TaskMarks:
    """Marks (bits) per task in one byte per task: what a set of pathspecs per mark did, small (a set keeps
    each name alive, ~100 B a task, for the whole run). A run numbers its tasks 1, 2, 3... and a step's
    numbers come in runs, so pages of :data:`_PAGE` bytes indexed by the number hold them; a task with any
    other id (not a number, or of another flow/run/step than the first) is kept by name, with the same
    answers. ``count[mark]`` is how many tasks carry that mark."""

    __slots__ = ("_prefix", "_pages", "_other", "count")

    def __init__(self) -> None:
        self._prefix: Optional[str] = None  # "flow/run/step/" of the numbered tasks
        self._pages: dict[int, bytearray] = {}
        self._other: dict[str, int] = {}
        self.count: dict[int, int] = dict.fromkeys(_MARKS, 0)

    def _number(self, pathspec: str) -> Optional[int]:
        """The task's number when its marks live in the pages (the first numbered task sets the prefix)."""
        prefix = self._prefix
        if prefix is not None and pathspec.startswith(prefix):
            tail = pathspec[len(prefix) :]
        else:
            cut = pathspec.rfind("/") + 1
            if prefix is not None:
                return None  # another flow/run/step
            tail = pathspec[cut:]
            if _canonical(tail):
                self._prefix = pathspec[:cut]
        if tail.isdigit() and tail.isascii() and len(tail) <= 15 and (tail[0] != "0" or len(tail) == 1):
            return int(tail)  # (_canonical, inline: this runs for every event of every task)
        return None

    def get(self, pathspec: str) -> int:
        n = self._number(pathspec)
        if n is None:
            return self._other.get(pathspec, 0)
        page = self._pages.get(n // _PAGE)
        return 0 if page is None else page[n % _PAGE]

    def change(self, pathspec: str, add: int = 0, remove: int = 0) -> int:
        """Add and remove marks (``add`` wins over ``remove``); returns the marks it had before."""
        n = self._number(pathspec)
        page = None
        if n is None:
            before = self._other.get(pathspec, 0)
        else:
            page = self._pages.get(n // _PAGE)
            before = 0 if page is None else page[n % _PAGE]
        after = (before & ~remove) | add
        if after == before:
            return before
        diff, count = after ^ before, self.count
        if diff & KNOWN:
            count[KNOWN] += 1 if after & KNOWN else -1
        if diff & IN_RUNNING:
            count[IN_RUNNING] += 1 if after & IN_RUNNING else -1
        if diff & IN_RETRYING:
            count[IN_RETRYING] += 1 if after & IN_RETRYING else -1
        if n is None:
            if after:
                self._other[pathspec] = after
            else:
                del self._other[pathspec]
            return before
        if page is None:
            page = self._pages[n // _PAGE] = bytearray(_PAGE)
        page[n % _PAGE] = after
        return before


@dataclass
class StepProgress:
    """One step's tasks so far. ``finished`` counts final statuses (``cloned`` for reused tasks); ``marks``
    says which tasks are known (started or cloned), running (an attempt in flight) and retrying (between a
    failed attempt and the next)."""

    name: str
    marks: TaskMarks = field(default_factory=TaskMarks, repr=False, compare=False)
    finished: Counter[str] = field(default_factory=Counter)  # final status -> tasks
    first_failure: Optional[str] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None

    @property
    def total(self) -> int:
        """Tasks known so far (a foreach step's count grows as its tasks start)."""
        return self.marks.count[KNOWN]

    @property
    def running(self) -> int:
        """Tasks with an attempt in flight."""
        return self.marks.count[IN_RUNNING]

    @property
    def retrying(self) -> int:
        """Tasks between a failed attempt and the next."""
        return self.marks.count[IN_RETRYING]

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
            s.marks.change(event.pathspec, add=KNOWN | IN_RUNNING, remove=IN_RETRYING)
            s.started_at = event.ts if s.started_at is None else min(s.started_at, event.ts)
            return s.name
        if isinstance(event, ev.TaskCloned):
            s = self.step(event.step)
            s.marks.change(event.pathspec, add=KNOWN)
            s.finished[CLONED] += 1
            return s.name
        if isinstance(event, ev.TaskRetrying):
            s = self.step(event.step)
            s.marks.change(event.pathspec, add=IN_RETRYING, remove=IN_RUNNING)
            return s.name
        if isinstance(event, ev.TaskFinished):
            s = self.step(event.step)
            s.marks.change(event.pathspec, add=KNOWN, remove=IN_RUNNING | IN_RETRYING)
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
