"""Every decision of a run, and nothing else: the scheduler is a state object with one entry point.

``Scheduler.handle(event) -> list[Instruction]`` takes something that happened (the run started, a task
exited, a cancel was requested, time passed) and returns what to do about it (submit a task, cancel
one, write a task record, emit an event, finish the run). It holds the ready set, dispatch limits,
retries with their delays, foreach fan-out, join buckets matched by foreach index path, resume
clones and single-step runs. It does no I/O and reads no clock: time comes in with each event, and the
driver (:mod:`workbench.runtime`) carries the instructions out, so tests feed events and compare
instruction lists in milliseconds.
"""

from __future__ import annotations

import dataclasses
import heapq
from typing import Any, Callable, Optional

from . import events as ev
from . import scheduler_gang as gang
from .backends.base import TaskExit
from .datastore.records import AttemptRecord, RunStatus, TaskRecord, TaskStatus
from .errors import UsageError
from .graph import FlowGraph
from .scheduler_messages import (
    Abort,
    Cancel,
    CancelRequested,
    Emit,
    FinishRun,
    Instruction,
    RunStart,
    SchedulerEvent,
    StackKey,
    StopExpired,
    Submit,
    TaskExited,
    Tick,
    WriteTask,
    summary,
)
from .scheduler_records import RecordsMixin
from .scheduler_tasks import _Split, _Task
from .settings import StepSettings

__all__ = [  # the message vocabulary lives in scheduler_messages; callers keep importing it from here
    "Abort",
    "Cancel",
    "CancelRequested",
    "Emit",
    "FinishRun",
    "Instruction",
    "RunStart",
    "Scheduler",
    "SchedulerEvent",
    "StackKey",
    "StopExpired",
    "Submit",
    "TaskExited",
    "Tick",
    "WriteTask",
    "summary",
]

# the most remote tasks in flight at once unless the run says ([project] max_remote_tasks, --max-workers when larger):
# as wide as one array job / Indexed Job, so that a foreach up to that width is one submit. What runs at once is
# then the backend's business (Batch compute environments, an Indexed Job's parallelism). Local and docker
# tasks are bounded by max_workers.
MAX_REMOTE_IN_FLIGHT = 10_000
# the most tasks one event starts: a 10,000-wide fan-out goes out over a few loop turns, so the driver never
# holds 10,000 Submit instructions (and their spec records) at once; the rest start on the next Tick (wake_at)
DISPATCH_BATCH = 500
HARD_TIMEOUT_GRACE = 30.0  # the backend's hard deadline comes this long after the task's own alarm


class Scheduler(gang.GangMixin, RecordsMixin):
    """The decisions of one run. Build it with what the driver read (settings, parameter artifacts, the
    origin run's task records), then feed it events through :meth:`handle`."""

    def __init__(
        self,
        graph: FlowGraph,
        *,
        run_id: str,
        settings: dict[str, StepSettings],
        remote_backends: frozenset[str] = frozenset(),
        max_workers: int = 2,
        max_num_splits: Optional[int] = None,
        max_remote: int = MAX_REMOTE_IN_FLIGHT,
        param_refs: Optional[dict[str, str]] = None,
        unresolved_params: Optional[list[str]] = None,
        origin_run_id: Optional[str] = None,
        origin_tasks: Optional[list[TaskRecord]] = None,
        rerun_steps: Optional[set[str]] = None,
        only_step: Optional[str] = None,
        only_task_index: Optional[int] = None,
        flow_file: str = "",
        hard_timeout_grace: float = HARD_TIMEOUT_GRACE,
    ):
        self.graph = graph
        self.flow = graph.name or ""
        self.run_id = run_id
        self.settings = settings
        self.remote_backends = frozenset(remote_backends)
        self.max_workers = max_workers
        self.max_num_splits = max_num_splits
        self.max_remote = max_remote
        self.param_refs = dict(param_refs or {})
        self.unresolved = list(unresolved_params or [])
        self.origin_run_id = origin_run_id
        self.rerun_steps = set(rerun_steps or ())
        self.only_step = only_step
        self.only_task_index = only_task_index
        self.flow_file = flow_file
        self.hard_timeout_grace = hard_timeout_grace
        self.phase = "new"  # new -> running -> (stopping ->) done
        self._stop_status = RunStatus.CANCELLED
        self._stop_message = ""
        self.cancel_reason = "cancelled"
        self._ready: list[_Task] = []
        self._delayed: list[tuple[float, int, _Task]] = []
        self._running: dict[str, _Task] = {}
        self._join_buckets: dict[tuple[str, StackKey], list[_Task]] = {}
        self._next_id = 1
        self._seq = 0
        self._failed: list[_Task] = []
        self._gangs: dict[str, gang._Gang] = {}
        self._dispatch_again_at: Optional[float] = None  # ready tasks left over by a full DISPATCH_BATCH
        self._deadlines: list[tuple[float, int, str, int]] = []  # (hard deadline, seq, key, attempt), a heap
        self._settings_dicts: dict[int, tuple[StepSettings, dict[str, Any]]] = {}  # to_dict() once per settings
        self._origin: dict[tuple[str, StackKey, int], TaskRecord] = {}
        for record in origin_tasks or []:
            if record.status is TaskStatus.SUCCEEDED:
                self._origin[(record.step, record.stack_key, record.iteration)] = record
        self._take_origin_params()

    # ------------------------------------------------------------------ the one entry point
    def handle(self, event: SchedulerEvent) -> list[Instruction]:
        """Apply one event; return the instructions it leads to, in the order to carry them out."""
        out: list[Instruction] = []
        if self.phase == "done":
            return out
        try:
            self._apply(event, out)
            if self.phase == "running":
                self._tick(event.now, out)
                self._dispatch(event.now, out)
            self._maybe_finish(out)
        except UsageError as exc:  # e.g. a single-step run whose origin lacks an input
            self._stop(self.cancel_reason, event.now, out, RunStatus.FAILED, str(exc))
            self._maybe_finish(out)
        return out

    @property
    def dispatch_pending(self) -> bool:  # ready tasks left over by a full DISPATCH_BATCH: a burst goes on
        return self._dispatch_again_at is not None

    @property
    def wake_at(self) -> Optional[float]:
        """The earliest time a :class:`Tick` has something to do (a retry delay, a hard deadline, more to start)."""
        times = [t.deadline for t in self._running.values() if t.deadline]
        if self._dispatch_again_at is not None:
            times.append(self._dispatch_again_at)
        if self._delayed:
            times.append(self._delayed[0][0])
        return min(times) if times else None

    @property
    def running_keys(self) -> list[str]:
        return list(self._running)

    def _apply(self, event: SchedulerEvent, out: list[Instruction]) -> None:
        if isinstance(event, RunStart):
            self.phase = "running"
            self._enqueue(self._new_task("start", [], []), event.now, out)
        elif isinstance(event, TaskExited):
            task = self._running.get(event.key)
            if task is None or task.attempt != event.attempt:
                return
            status = TaskStatus.parse(event.exit.status)
            if self.phase == "stopping" and status is not TaskStatus.SUCCEEDED:
                self._record(
                    task,
                    TaskStatus.CANCELLED,
                    TaskExit(TaskStatus.CANCELLED, event.exit.exit_code, self.cancel_reason, event.exit.usage),
                    None,
                    event.now,
                    out,
                )
            elif task.parallel is not None and self.phase == "running":
                self._gang_member_exited(task, event.exit, event.report, event.now, out)
            else:
                self._finish(task, event.exit, event.report, event.now, out)
        elif isinstance(event, CancelRequested):
            if self.phase in ("new", "running"):
                self._stop(event.reason, event.now, out, RunStatus.CANCELLED, "")
        elif isinstance(event, Abort):
            if self.phase in ("new", "running"):
                self._stop(self.cancel_reason, event.now, out, RunStatus.FAILED, event.message)
        elif isinstance(event, StopExpired):
            for task in list(self._running.values()):
                self._record(
                    task,
                    TaskStatus.CANCELLED,
                    TaskExit(TaskStatus.CANCELLED, None, f"{self.cancel_reason} (no answer)"),
                    None,
                    event.now,
                    out,
                )

    # ------------------------------------------------------------------ time, limits, the end
    def _tick(self, now: float, out: list[Instruction]) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            self._ready.append(heapq.heappop(self._delayed)[2])
        # hard deadlines in time order: an event costs nothing per running task (10,000 exits of a wide foreach would
        # otherwise each look at every task still running)
        while self._deadlines and self._deadlines[0][0] < now:
            deadline, _, key, attempt = heapq.heappop(self._deadlines)
            task = self._running.get(key)
            if task is not None and task.attempt == attempt and task.deadline == deadline:
                task.deadline = None
                out.append(Cancel(key, f"timed out after {task.settings.timeout}s", timeout=True))

    def _dispatch(self, now: float, out: list[Instruction]) -> None:
        """Start ready tasks, oldest first, while their kind (local or remote) has room."""
        self._dispatch_again_at = None
        if self._failed or not self._ready:
            return  # a task failed for good: nothing new starts (or nothing is ready: no counting per event)
        started = len(self._running)
        remote_running = sum(1 for t in self._running.values() if t.settings.backend in self.remote_backends)
        local_running = len(self._running) - remote_running
        waiting: list[_Task] = []
        gangs_started: set[str] = set()
        for n, task in enumerate(self._ready):
            if task.parallel is not None:
                gang = task.parallel["gang"]
                if gang not in gangs_started:
                    members = [t for t in self._ready if t.parallel is not None and t.parallel["gang"] == gang]
                    remote = task.settings.backend in self.remote_backends
                    used = remote_running if remote else local_running
                    limit = self.max_remote if remote else self.max_workers
                    if used and used + len(members) > limit:
                        waiting.append(task)  # all or nothing: the gang waits until it fits (or runs alone)
                        continue
                    gangs_started.add(gang)
                    for member in members:
                        self._submit(member, now, out)
                    if remote:
                        remote_running += len(members)
                    else:
                        local_running += len(members)
                elif task.status is not TaskStatus.RUNNING:
                    waiting.append(task)
                continue
            if local_running >= self.max_workers and (not self.remote_backends or remote_running >= self.max_remote):
                waiting.extend(self._ready[n:])  # both kinds are full: a wide foreach costs nothing per event
                break
            if len(self._running) - started >= DISPATCH_BATCH:
                waiting.extend(self._ready[n:])  # enough for one event: the next Tick starts more
                self._dispatch_again_at = now
                break
            if task.settings.backend in self.remote_backends:
                if remote_running < self.max_remote:
                    remote_running += 1
                    self._submit(task, now, out)
                    continue
            elif local_running < self.max_workers:
                local_running += 1
                self._submit(task, now, out)
                continue
            waiting.append(task)
        self._ready = waiting

    def _maybe_finish(self, out: list[Instruction]) -> None:
        if self._running:
            return
        if self.phase == "stopping":
            status, message = self._stop_status, self._stop_message
        elif self.phase == "running" and not self._delayed and (not self._ready or self._failed):
            status, message = (RunStatus.FAILED if self._failed else RunStatus.SUCCEEDED), ""
        else:
            return
        self.phase = "done"
        if status is RunStatus.CANCELLED and not message:
            message = self.cancel_reason
        failed = tuple(self._pathspec(t) for t in self._failed)
        if status is RunStatus.FAILED and not message and failed:
            message = f"step {self._failed[0].step} failed"
        out.append(FinishRun(status, message, failed))

    def _stop(self, reason: str, now: float, out: list[Instruction], status: RunStatus, message: str) -> None:
        """Start nothing more; cancel what runs. The run finishes when the last of them has answered."""
        self.phase = "stopping"
        self.cancel_reason = reason
        self._stop_status, self._stop_message = status, message
        self._ready.clear()
        self._delayed.clear()
        self._dispatch_again_at = None
        for key in self._running:
            out.append(Cancel(key, reason))

    # ------------------------------------------------------------------ tasks
    def _new_task(
        self,
        step: str,
        stack: list[dict[str, Any]],
        parents: list[_Task],
        split: Optional[_Split] = None,
        index: int = 0,
    ) -> _Task:
        task = _Task(step, str(self._next_id), stack, parents, self.settings[step], split, index)
        self._next_id += 1
        return task

    def _successor(self, step: str, task: _Task) -> _Task:
        """A task in the same place as ``task`` (same foreach frames), with ``task`` as its one input."""
        return self._new_task(step, task.stack, [task], task.split, task.index)

    def _enqueue(self, task: _Task, now: float, out: list[Instruction]) -> None:
        """A task whose inputs are complete: clone it from the origin run, skip it, or make it ready."""
        if self.origin_run_id and task.step not in self.rerun_steps and task.step != self.only_step:
            origin = self._origin.get((task.step, task.stack_key, task.iteration))
            if origin is not None:
                self._clone(task, origin, now, out)
                return
            if self.only_step:
                raise UsageError(
                    f"run {self.origin_run_id} has no successful task of step {task.step} "
                    f"to take the inputs of step {self.only_step} from"
                )
        if self.only_step and task.step == self.only_step and self.only_task_index is not None:
            if task.last_index != self.only_task_index:
                return
        self._ready.append(task)

    def _submit(self, task: _Task, now: float, out: list[Instruction]) -> None:
        shas = set(self.param_refs.values())
        for parent in task.parents:
            shas.update(a["sha"] for a in parent.artifacts.values())
        task.status = TaskStatus.RUNNING
        task.started = now
        timeout = task.settings.timeout
        task.deadline = now + timeout + self.hard_timeout_grace if timeout else None
        if task.deadline is not None:
            self._seq += 1
            heapq.heappush(self._deadlines, (task.deadline, self._seq, task.task_id, task.attempt))
        self._running[task.task_id] = task
        out.append(Emit(ev.TaskStarted(self._pathspec(task), task.step, task.attempt, task.settings.backend, ts=now)))
        out.append(Submit(task.task_id, task.settings.backend, self._spec(task), task.settings, frozenset(shas)))

    @staticmethod
    def _reconcile(result: TaskExit, report: Optional[AttemptRecord]) -> tuple[TaskStatus, str]:
        """The backend's word and the task's own report, made one status and reason."""
        status, reason = TaskStatus.parse(result.status), result.reason
        reported = report.status if report is not None else None
        if status is TaskStatus.SUCCEEDED and (report is None or reported is not TaskStatus.SUCCEEDED):
            status = TaskStatus.FAILED
            reason = (report.reason if report else "") or "the task exited 0 but saved no result"
        elif status in (TaskStatus.FAILED, TaskStatus.TIMEOUT) and reported in (TaskStatus.FAILED, TaskStatus.TIMEOUT):
            status = reported  # the task's own account is the most precise
            reason = (report.reason if report else "") or reason
        return status, reason

    def _finish(
        self, task: _Task, result: TaskExit, report: Optional[AttemptRecord], now: float, out: list[Instruction]
    ) -> None:
        """Reconcile the backend's word with the task's own report; then succeed, retry or fail."""
        status, reason = self._reconcile(result, report)
        node = self.graph.steps[task.step]
        if (
            status is TaskStatus.SUCCEEDED
            and report is not None
            and node.kind == "switch"
            and (report.switch_to is None or report.switch_to not in node.out)
        ):
            status = TaskStatus.FAILED
            reason = (
                f"switch step {task.step} took no case"
                if not report.switch_to
                else f"switch step {task.step} went to {report.switch_to}, which is none of its cases"
            )
        splits = report.foreach_num_splits if report is not None and node.kind == "foreach" else None
        if status is TaskStatus.SUCCEEDED and self.max_num_splits and splits and splits > self.max_num_splits:
            status = TaskStatus.FAILED  # Metaflow's words
            reason = (
                f"Foreach in step {task.step} yielded {splits} child steps which is more than the current maximum "
                f"of {self.max_num_splits} children. You can raise the maximum with the --max-num-splits option."
            )
        if status is TaskStatus.SUCCEEDED and report is not None:  # (_reconcile: no report, no success)
            task.switch_to = report.switch_to
            task.artifacts = report.artifacts
            task.num_splits = report.foreach_num_splits
            task.foreach_artifact = report.foreach_artifact
            self._record(task, TaskStatus.SUCCEEDED, result, report, now, out)
            if task.step == "start":
                for attr in self.unresolved:
                    if attr in task.artifacts:
                        self.param_refs[attr] = task.artifacts[attr]["sha"]
            self._schedule_successors(task, now, out)
            return
        settings = task.settings
        failed = TaskExit(status, result.exit_code, reason, result.usage)
        if status is not TaskStatus.CANCELLED and task.attempt < settings.retries and self.phase == "running":
            self._record(task, TaskStatus.RETRYING, failed, report, now, out, final=False)
            delay = settings.retry_delay
            out.append(Emit(ev.TaskRetrying(self._pathspec(task), task.step, task.attempt, reason, delay, ts=now)))
            task.attempt += 1
            self._seq += 1
            heapq.heappush(self._delayed, (now + delay, self._seq, task))
            return
        if (
            settings.catch
            and report is None
            and status is not TaskStatus.CANCELLED
            and self.phase == "running"
            and task.catch_fallback is None
        ):
            # @catch of a task that never ran its step (it could not start, or was killed: OOM, lost node):
            # one more attempt, on the local backend, stores the failure and lets the flow go on, as
            # Metaflow's fallback attempt does
            self._record(task, TaskStatus.RETRYING, failed, report, now, out, final=False)
            task.catch_fallback = reason or str(status)
            task.settings = dataclasses.replace(settings, backend="local", image=None, gpu=0)
            task.attempt += 1
            self._ready.append(task)
            return
        self._record(task, status, failed, report, now, out)
        if status is not TaskStatus.CANCELLED:
            self._failed.append(task)

    def _schedule_successors(self, task: _Task, now: float, out: list[Instruction]) -> None:
        """Fan a foreach out, hand a linear/split successor its input, or drop the task in its join bucket
        (keyed by the join step and the foreach index path outside the split it closes)."""
        node = self.graph.steps[task.step]
        if task.step == self.only_step:
            return
        if node.kind == "switch":
            target = task.switch_to
            assert target is not None  # a switch step succeeds only with a case taken (_finish)
            case_task = self._successor(target, task)
            if target == task.step:
                case_task.iteration = task.iteration + 1  # a recursive switch: the next pass of the loop
            self._enqueue(case_task, now, out)
            return
        if node.num_parallel is not None:
            self._start_gang(task, node, now, out)
            return
        if node.kind == "foreach":
            child = node.out[0]
            n = task.num_splits or 0
            split = _Split(task.foreach_stack, task.step, task.foreach_artifact or node.foreach_var, n)
            parents = [task]  # one list for every index (never changed in place)
            for i in range(n):
                self._enqueue(self._new_task(child, split.outer, parents, split, i), now, out)
            return
        for target in node.out:
            t = self.graph.steps[target]
            if t.kind != "join":
                self._enqueue(self._successor(target, task), now, out)
                continue
            assert t.closes is not None  # graph validation: every join closes a split
            opener = self.graph.steps[t.closes]
            order: Callable[[_Task], int]
            if opener.kind == "foreach":
                if task.split is not None:  # an index of the fan-out this join closes: the shared part says it all
                    outer, expected = task.split.outer, task.split.num_splits
                else:
                    outer, expected = task.stack[:-1], task.stack[-1]["num_splits"]
                started = self._gangs.get(task.parallel["gang"]) if task.parallel is not None else None
                if started is not None:  # a gang's join waits for its live nodes (@catch may leave node 0 alone)
                    expected = len(started.members)
                order = lambda p: p.last_index or 0  # noqa: E731
            else:
                outer = task.foreach_stack
                expected = len(opener.out)  # one input per branch (a switch inside a branch picks one step)
                order = lambda p: opener.out.index(  # noqa: E731, B023  (sorted below, in this iteration)
                    self.graph.steps[p.step].split_branch or ""
                )
            bucket_key = (target, tuple((f["step"], f["index"]) for f in outer))
            bucket = self._join_buckets.setdefault(bucket_key, [])
            bucket.append(task)
            if len(bucket) == expected:
                del self._join_buckets[bucket_key]
                self._enqueue(self._new_task(target, outer, sorted(bucket, key=order)), now, out)
