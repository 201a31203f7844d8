"""A task's artifacts as the client API gives them: ``task.data.<name>`` and ``task["name"].data``.

Loading unpickles (runs code a step stored) and warns first when a container or a remote task wrote the
blob; :meth:`ArtifactData.summary` shows the stored summary without loading.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .datastore import FlowDatastore

if TYPE_CHECKING:
    from .client import Task


class DataArtifact:
    """``task["name"]``: one artifact; ``.data`` loads it."""

    def __init__(self, task: "Task", name: str):
        self.task = task
        self.id = name
        self.pathspec = f"{task.pathspec}/{name}"
        self.sha = task._doc.artifacts.get(name, {}).get("sha")

    @property
    def data(self) -> Any:
        return getattr(self.task.data, self.id)

    @property
    def summary(self) -> str:
        """The artifact's summary as its task stored it (type, size, shape, head...), without unpickling:
        ``task["name"].summary``. (Not on ``task.data``, where it would hide an artifact called summary.)"""
        return self.task.data._summary(self.id)

    @property
    def parent(self) -> "Task":
        return self.task

    @property
    def tags(self) -> frozenset:
        return self.task.tags

    @property
    def user_tags(self) -> frozenset:
        return self.task.user_tags

    @property
    def system_tags(self) -> frozenset:
        return self.task.system_tags

    def __repr__(self) -> str:
        return f"DataArtifact('{self.pathspec}')"


class ArtifactData:
    """``task.data.<name>`` loads an artifact; ``'name' in task.data`` tests for one."""

    def __init__(self, ds: FlowDatastore, refs: dict[str, dict], where: str):
        self._ds = ds
        self._refs = refs
        self._where = where
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._refs:
            raise AttributeError(
                f"{self._where} has no artifact {name!r} (it has: {', '.join(sorted(self._refs)) or 'none'})"
            )
        if name not in self._cache:
            self._cache[name] = self._load(name)
        return self._cache[name]

    def _load(self, name: str) -> Any:
        """Unpickle one artifact, after a warning when a container or a remote task wrote it."""
        import warnings

        from .preview import artifact_origin, provenance_note

        ref = self._refs[name]
        run_id, step, task_id = (self._where.split("/") + ["", "", "", ""])[1:4]
        doc = self._ds.read_task(run_id, step, task_id)
        _info, maker = artifact_origin(self._ds, run_id, ref, doc) if doc else (ref, None)
        note = provenance_note(name, maker) if maker or doc else None
        if maker is None and self._is_run_parameter(run_id, name):
            note = None  # the runtime stored it from the command line, where the run was started
        if note:
            warnings.warn(note, UserWarning, stacklevel=3)
        owner = ((maker.pathspec if maker else "") or self._where).split("/", 1)[-1]
        return self._ds.load_artifact(ref["sha"], name=name, owner=owner)

    def _is_run_parameter(self, run_id: str, name: str) -> bool:
        """A parameter's value is saved by the runtime that started the run, not by a task, so no task's
        record claims it; it is as trusted as the run's own record."""
        record = self._ds.read_run(run_id)
        return record is not None and name in record.params

    def _summary(self, name: str) -> str:
        """The artifact's summary as its task stored it (type, size, shape, head...), without loading it."""
        from .preview import artifact_origin, summary_text

        if name not in self._refs:
            raise AttributeError(f"{self._where} has no artifact {name!r}")
        run_id, step, task_id = (self._where.split("/") + ["", "", "", ""])[1:4]
        doc = self._ds.read_task(run_id, step, task_id)
        info, _maker = artifact_origin(self._ds, run_id, self._refs[name], doc) if doc else (self._refs[name], None)
        return summary_text(info)

    def __contains__(self, name: str) -> bool:
        return name in self._refs

    def __dir__(self):
        return sorted(self._refs)
