"""What the scheduler writes down: the spec record of each submitted attempt, the task record of each
finished task, and the clones of a resumed run (a task taken over from the origin run's records).

The record half of :class:`workbench.scheduler.Scheduler`, kept apart to keep each file small (as
:mod:`workbench.scheduler_gang` is): the attributes it reads are the Scheduler's, declared below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from . import events as ev
from .backends.base import TaskExit
from .datastore.records import AttemptRecord, AttemptSummary, InputRef, TaskRecord, TaskSpecRecord, TaskStatus
from .datastore.split_inputs import SplitInputs
from .scheduler_messages import Emit, Instruction, WriteTask

if TYPE_CHECKING:  # pragma: no cover
    from .graph import FlowGraph
    from .scheduler_tasks import _Task


_NO_PARENTS: list[Any] = []  # never changed in place


def _canonical_number(task_id: str) -> bool:
    return task_id.isascii() and task_id.isdigit() and str(int(task_id)) == task_id


class RecordsMixin:
    """The record half of :class:`workbench.scheduler.Scheduler`: spec and task records, resume clones."""

    graph: FlowGraph
    flow: str
    run_id: str
    flow_file: str
    origin_run_id: Optional[str]
    param_refs: dict[str, str]
    unresolved: list[str]
    _running: dict[str, Any]
    _settings_dicts: dict[int, tuple[Any, dict[str, Any]]]
    _origin: dict[tuple[str, Any, int], TaskRecord]
    _schedule_successors: Callable[[_Task, float, list[Instruction]], None]

    def _pathspec(self, task: _Task) -> str:
        return f"{self.flow}/{self.run_id}/{task.step}/{task.task_id}"

    def _settings_dict(self, settings: Any) -> dict[str, Any]:
        """``settings.to_dict()``, made once per settings object and shared by every record of its tasks (a wide
        foreach would otherwise build 10,000 equal dicts at once). Records are written, never changed."""
        kept = self._settings_dicts.get(id(settings))
        if kept is None or kept[0] is not settings:
            kept = self._settings_dicts[id(settings)] = (settings, settings.to_dict())
        return kept[1]

    def _spec(self, task: _Task) -> TaskSpecRecord:
        node = self.graph.steps[task.step]
        return TaskSpecRecord(
            flow=self.flow,
            run_id=self.run_id,
            step=task.step,
            task_id=task.task_id,
            attempt=task.attempt,
            kind=node.kind,
            next=list(node.out),
            foreach_var=node.foreach_var,
            flow_file=self.flow_file,
            parallel=task.parallel,
            catch_fallback=task.catch_fallback,
            class_name=self.graph.name or "",
            origin_run_id=self.origin_run_id,
            settings=self._settings_dict(task.settings),
            foreach_stack=task.foreach_stack,
            params=dict(self.param_refs),
            unresolved_params=list(self.unresolved) if task.step == "start" else [],
            inputs=self._split_inputs(task.parents)
            or [
                InputRef(
                    pathspec=self._pathspec(p),
                    step=p.step,
                    foreach_stack=p.foreach_stack,
                    artifacts={n: a["sha"] for n, a in p.artifacts.items()},
                )
                for p in task.parents
            ],
        )

    def _split_inputs(self, parents: list[_Task]) -> Optional[SplitInputs]:
        """A foreach's join: its inputs are indexes 0..N-1 of one fan-out, all of one step, so its spec says
        what they share once (:class:`SplitInputs`) instead of N input documents. None for any other task."""
        split = parents[0].split if len(parents) > 1 else None
        if split is None or len(parents) != split.num_splits:
            return None
        step = parents[0].step
        for i, p in enumerate(parents):
            if p.split is not split or p.index != i or p.step != step or not _canonical_number(p.task_id):
                return None
            if not all(isinstance(a.get("sha"), str) for a in p.artifacts.values()):
                return None
        names = list(dict.fromkeys(n for p in parents for n in p.artifacts))
        return SplitInputs(
            f"{self.flow}/{self.run_id}/{step}/",
            step,
            split.outer,
            {"step": split.step, "var": split.var, "index": 0, "num_splits": split.num_splits},
            SplitInputs.runs_of(int(p.task_id) for p in parents),
            names,
            [(a["sha"] if (a := p.artifacts.get(n)) is not None else None) for p in parents for n in names],
        )

    def _record(
        self,
        task: _Task,
        status: TaskStatus,
        result: TaskExit,
        report: Optional[AttemptRecord],
        now: float,
        out: list[Instruction],
        final: bool = True,
    ) -> None:
        task.attempts = [
            *task.attempts,
            AttemptSummary(
                attempt=task.attempt,
                status=status,
                started_at=task.started,
                finished_at=now,
                exit_code=result.exit_code,
                reason=result.reason,
                backend=task.settings.backend,
                usage=result.usage,
            ),
        ]
        self._running.pop(task.task_id, None)
        if not final:
            return
        task.status = status if status in (TaskStatus.SUCCEEDED, TaskStatus.CANCELLED) else TaskStatus.FAILED
        traceback = report.traceback if report is not None else ""
        out.append(
            WriteTask(
                TaskRecord(
                    flow=self.flow,
                    run_id=self.run_id,
                    step=task.step,
                    task_id=task.task_id,
                    pathspec=self._pathspec(task),
                    status=status,
                    attempt=task.attempt,
                    attempts=list(task.attempts),
                    artifacts=task.artifacts,
                    foreach_stack=task.foreach_stack,
                    foreach_num_splits=task.num_splits,
                    foreach_artifact=task.foreach_artifact,
                    parents=[self._pathspec(p) for p in task.parents],
                    settings=self._settings_dict(task.settings),
                    started_at=task.started,
                    finished_at=now,
                    reason=result.reason,
                    traceback=traceback,
                    usage=result.usage,
                    cloned_from=task.cloned_from,
                    switch_to=task.switch_to,
                    iteration=task.iteration,
                    parallel=task.parallel,
                )
            )
        )
        out.append(
            Emit(
                ev.TaskFinished(
                    self._pathspec(task),
                    task.step,
                    status,
                    task.attempt,
                    now - task.started,
                    result.reason,
                    result.exit_code,
                    traceback,
                    ts=now,
                )
            )
        )
        # the record is written: keep only what successors and joins need (memory stays flat in a wide foreach);
        # its parents are no longer needed (no attempt of it will be built again), which frees a join's inputs
        # once the join has finished
        task.artifacts = {name: {"sha": a["sha"]} for name, a in task.artifacts.items()}
        task.attempts = ()
        task.parents = _NO_PARENTS  # shared: a 10,000-wide join bucket holds no 10,000 empty lists

    # ------------------------------------------------------------------ resume and clones
    def _take_origin_params(self) -> None:
        """A resumed run keeps the origin's parameter values, also when start itself runs again."""
        start = self._origin.get(("start", (), 0))
        if start is None:
            return
        for p in self.graph.parameters:
            if p.attr in start.artifacts:
                self.param_refs[p.attr] = start.artifacts[p.attr]["sha"]
                if p.attr in self.unresolved:
                    self.unresolved.remove(p.attr)

    def _clone(self, task: _Task, origin: TaskRecord, now: float, out: list[Instruction]) -> None:
        task.artifacts = origin.artifacts
        task.num_splits = origin.foreach_num_splits
        task.foreach_artifact = origin.foreach_artifact
        task.switch_to = origin.switch_to
        task.cloned_from = origin.pathspec
        task.started = now
        task.status = TaskStatus.SUCCEEDED
        if task.step == "start":
            for p in self.graph.parameters:
                if p.attr in task.artifacts:
                    self.param_refs[p.attr] = task.artifacts[p.attr]["sha"]
        out.append(
            WriteTask(
                TaskRecord(
                    flow=self.flow,
                    run_id=self.run_id,
                    step=task.step,
                    task_id=task.task_id,
                    pathspec=self._pathspec(task),
                    status=TaskStatus.SUCCEEDED,
                    attempt=origin.attempt,
                    attempts=origin.attempts,
                    artifacts=task.artifacts,
                    foreach_stack=task.foreach_stack,
                    foreach_num_splits=task.num_splits,
                    foreach_artifact=task.foreach_artifact,
                    parents=[self._pathspec(p) for p in task.parents],
                    settings=origin.settings,
                    started_at=origin.started_at,
                    finished_at=origin.finished_at,
                    reason="",
                    usage=origin.usage,
                    cloned_from=task.cloned_from,
                    switch_to=task.switch_to,
                    iteration=task.iteration,
                    parallel=origin.parallel,
                )
            )
        )
        out.append(Emit(ev.TaskCloned(self._pathspec(task), task.step, origin.pathspec, ts=now)))
        self._schedule_successors(task, now, out)
