"""A task's Metaflow metadata and lineage, the half of the client's ``Task`` that looks beyond the task
itself: ``metadata_dict``, where a resume cloned it from, and the tasks that fed it or that it fed.

Mixed into ``workbench.client.Task`` (import ``Task`` from there); ``self._doc``, ``self.step`` and
``self.pathspec`` are the task's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional

from .datastore.records import TaskRecord, TaskStatus

if TYPE_CHECKING:
    from .client import Step, Task


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
        return meta

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
