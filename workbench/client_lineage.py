"""A task's Metaflow metadata and lineage, the half of the client's ``Task`` that looks beyond the task
itself: ``metadata_dict``, where a resume cloned it from, and the tasks that fed it or that it fed.

Mixed into ``workbench.client.Task`` (import ``Task`` from there); ``self._doc``, ``self.step`` and
``self.pathspec`` are the task's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Optional

from .datastore.records import TaskRecord, TaskStatus

if TYPE_CHECKING:
    from .client import Step, Task

CONTROL_TASK = "control_task"  # Metaflow's value of internal_task_type for a gang's control task


class Metadata(NamedTuple):
    """One entry of ``task.metadata``, with Metaflow's fields (``created_at`` in epoch milliseconds)."""

    name: str
    value: str
    created_at: int
    type: str
    task: Any


def _ms(when: Optional[float]) -> int:
    return int((when or 0) * 1000)


class TaskLineage:
    """Metadata and lineage of one task (``self._doc``, ``self.step`` and ``self.pathspec`` are the task's)."""

    _doc: TaskRecord  # set by the client's Task
    step: Step
    pathspec: str

    @property
    def metadata_dict(self) -> dict[str, str]:
        """Metaflow's task metadata, name -> value (as strings)."""
        doc = self._doc
        import platform

        meta = {"attempt": str(doc.attempt), "python_version": platform.python_version()}
        if self.step.run.origin_run_id:
            meta["origin-run-id"] = str(self.step.run.origin_run_id)
        if self.origin_pathspec:
            meta["origin-task-id"] = self.origin_pathspec.rsplit("/", 1)[-1]
        if doc.status:
            meta["status"] = str(doc.status)
        if doc.reason:
            meta["reason"] = doc.reason
        if doc.settings.get("backend"):
            meta["backend"] = str(doc.settings["backend"])
        if doc.finished_at:
            meta["attempt_ok"] = str(doc.status is TaskStatus.SUCCEEDED)
        if self.is_control_task:
            meta["internal_task_type"] = CONTROL_TASK
        return meta

    @property
    def is_control_task(self) -> bool:
        """A @parallel gang's control task (node 0: Metaflow's control task, the others its workers)."""
        gang = self._doc.parallel
        return gang is not None and str(gang.get("control_task_id")) == self.pathspec.rsplit("/", 1)[-1]

    @property
    def metadata(self) -> list[Metadata]:
        """Metaflow's ``task.metadata``: the entries of every attempt (``attempt`` with its number, of type
        ``attempt``, and ``attempt_ok`` once it ended, of type ``internal_attempt_status``), then the
        task's own (``metadata_dict``'s other names, each its own type)."""
        doc = self._doc
        found: list[Metadata] = []
        # a cloned or still running task has no attempt summaries: its one attempt is doc.attempt
        attempts = [(a.attempt, a.started_at, a.finished_at, a.status) for a in doc.attempts] or [
            (doc.attempt, doc.started_at, doc.finished_at, doc.status)
        ]
        for number, started, finished, status in attempts:
            found.append(Metadata("attempt", str(number), _ms(started), "attempt", self))
            if finished:
                ok = str(status is TaskStatus.SUCCEEDED)
                found.append(Metadata("attempt_ok", ok, _ms(finished), "internal_attempt_status", self))
        for name, value in self.metadata_dict.items():
            if name not in ("attempt", "attempt_ok"):
                found.append(Metadata(name, value, _ms(doc.started_at), name, self))
        return found

    @property
    def origin_pathspec(self) -> Optional[str]:
        """The task of the origin run this task was cloned from by a resume (None if it ran here)."""
        cloned = self._doc.cloned_from
        if not cloned:
            return None
        return cloned if str(cloned).count("/") == 3 else f"{self.step.run.flow}/{cloned}"

    @property
    def parent_task_pathspecs(self) -> Iterator[str]:
        return iter(t.pathspec for t in self.parent_tasks)

    @property
    def child_task_pathspecs(self) -> Iterator[str]:
        return iter(t.pathspec for t in self.child_tasks)

    @property
    def child_tasks(self) -> list[Task]:
        """The tasks that took this task's outputs as inputs."""
        run = self.step.run
        found = []
        for step in run:
            for task in step:
                if self.pathspec in task._doc.parents:
                    found.append(task)
        return found

    @property
    def parent_tasks(self) -> list[Task]:
        """The tasks whose outputs this task took as inputs."""
        from .client import Step, Task  # the client imports this module

        run = self.step.run
        found = []
        for path in self._doc.parents:
            bits = path.split("/")
            found.append(Task(Step(run, bits[-2]), bits[-1]))
        return found
