"""Read-only access to past runs::

    from workbench import Flow
    run = Flow("TrainFlow").latest_run
    run.successful, run.finished_at
    run["choose"].task.data.best
    for task in run["square"].tasks(): print(task.index, task.data.value)

The datastore is the project's (workbench.toml found from the current directory), or the one given
with ``namespace(datastore=...)`` / the ``WORKBENCH_DATASTORE`` variable.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator, Optional

from .datastore import FlowDatastore
from .datastore.records import TaskRecord, TaskStatus
from .errors import DatastoreError

_datastore_url: Optional[str] = None


def namespace(datastore: Optional[str] = None) -> None:
    """Point the client at a datastore (a directory or s3://...); None goes back to the project's."""
    global _datastore_url
    _datastore_url = datastore


def get_namespace() -> str:
    return _url()


def _url() -> str:
    if _datastore_url:
        return _datastore_url
    from .config import load_config
    return load_config().datastore_url


def _when(ts: Optional[float]) -> Optional[datetime]:
    return datetime.fromtimestamp(ts, timezone.utc) if ts else None


class Flow:
    def __init__(self, name: str):
        self.name = name
        self._ds = FlowDatastore(_url(), name)

    def runs(self) -> list["Run"]:
        """Every run, newest first."""
        return [Run(f"{self.name}/{r}", _ds=self._ds) for r in reversed(self._ds.list_runs())]

    def __iter__(self) -> Iterator["Run"]:
        return iter(self.runs())

    def __getitem__(self, run_id: str) -> "Run":
        return Run(f"{self.name}/{run_id}", _ds=self._ds)

    @property
    def latest_run(self) -> Optional["Run"]:
        runs = self._ds.list_runs()
        return Run(f"{self.name}/{runs[-1]}", _ds=self._ds) if runs else None

    @property
    def latest_successful_run(self) -> Optional["Run"]:
        return next((r for r in self.runs() if r.successful), None)

    def __repr__(self) -> str:
        return f"Flow('{self.name}')"


class Run:
    def __init__(self, pathspec: str, _ds: Optional[FlowDatastore] = None):
        flow, _, run_id = pathspec.partition("/")
        if not run_id:
            raise ValueError("a run's pathspec is FLOW/RUN_ID")
        self.flow, self.id = flow, run_id
        self.pathspec = pathspec
        self._ds = _ds or FlowDatastore(_url(), flow)
        doc = self._ds.read_run(run_id)
        if doc is None:
            raise DatastoreError(f"no run {pathspec} in {self._ds.url}")
        self._doc = doc

    @property
    def status(self) -> str:
        return self._doc.status

    @property
    def successful(self) -> bool:
        return self.status == "succeeded"

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled", "crashed")

    @property
    def created_at(self) -> Optional[datetime]:
        return _when(self._doc.started_at)

    @property
    def finished_at(self) -> Optional[datetime]:
        return _when(self._doc.finished_at)

    @property
    def parameters(self) -> dict:
        return dict(self._doc.params)

    @property
    def origin_run_id(self) -> Optional[str]:
        return self._doc.origin_run_id

    def steps(self) -> list["Step"]:
        return [Step(self, name) for name in self._ds.list_steps(self.id)]

    def __iter__(self) -> Iterator["Step"]:
        return iter(self.steps())

    def __getitem__(self, step: str) -> "Step":
        if step not in self._ds.list_steps(self.id):
            raise KeyError(f"run {self.pathspec} has no step {step}")
        return Step(self, step)

    def __contains__(self, step: str) -> bool:
        return step in self._ds.list_steps(self.id)

    @property
    def data(self) -> "ArtifactData":
        """The end step's artifacts (as Metaflow's Run.data)."""
        return self["end"].task.data

    def __repr__(self) -> str:
        return f"Run('{self.pathspec}')"


class Step:
    def __init__(self, run: Run, name: str):
        self.run = run
        self.name = name
        self.pathspec = f"{run.pathspec}/{name}"

    def tasks(self) -> list["Task"]:
        return [Task(self, t) for t in self.run._ds.list_tasks(self.run.id, self.name)]

    def __iter__(self) -> Iterator["Task"]:
        return iter(self.tasks())

    @property
    def task(self) -> "Task":
        """The step's task (the first, for a foreach step)."""
        tasks = self.tasks()
        if not tasks:
            raise DatastoreError(f"step {self.pathspec} has no tasks")
        return tasks[0]

    def __repr__(self) -> str:
        return f"Step('{self.pathspec}')"


class Task:
    def __init__(self, step: Step, task_id: str):
        self.step = step
        self.id = task_id
        self.pathspec = f"{step.pathspec}/{task_id}"
        ds = step.run._ds
        # no task.json yet: the task is still running
        self._doc = ds.read_task(step.run.id, step.name, task_id) or TaskRecord(status=TaskStatus.RUNNING)
        self._finished = self._doc.status is not TaskStatus.RUNNING
        self.data = ArtifactData(ds, self._doc.artifacts, self.pathspec)

    @property
    def successful(self) -> bool:
        return self._doc.status is TaskStatus.SUCCEEDED

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def status(self) -> str:
        return self._doc.status

    @property
    def index(self) -> Optional[int]:
        stack = self._doc.foreach_stack
        return stack[-1]["index"] if stack else None

    @property
    def finished_at(self) -> Optional[datetime]:
        return _when(self._doc.finished_at)

    @property
    def exception(self) -> Optional[str]:
        """The step's traceback; for a task that failed without one (it could not start: image missing,
        credentials missing, the API refused it), the reason in words."""
        if self._doc.traceback:
            return self._doc.traceback
        if self._finished and not self._doc.status.ok and self._doc.status is not TaskStatus.CANCELLED:
            return self._doc.reason or None
        return None

    @property
    def reason(self) -> str:
        """Why the task ended as it did, in words ("" when it succeeded)."""
        return self._doc.reason

    @property
    def usage(self) -> dict:
        return dict(self._doc.usage)

    @property
    def artifacts(self) -> dict[str, dict]:
        return dict(self._doc.artifacts)

    def logs(self) -> list[tuple[str, str, str]]:
        run = self.step.run
        return list(run._ds.read_log(run.id, self.step.name, self.id))

    @property
    def stdout(self) -> str:
        return "\n".join(t for _, s, t in self.logs() if s == "stdout")

    @property
    def stderr(self) -> str:
        return "\n".join(t for _, s, t in self.logs() if s == "stderr")

    def __repr__(self) -> str:
        return f"Task('{self.pathspec}')"


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
            raise AttributeError(f"{self._where} has no artifact {name!r} "
                                 f"(it has: {', '.join(sorted(self._refs)) or 'none'})")
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
        if note:
            warnings.warn(note, UserWarning, stacklevel=3)
        owner = ((maker.pathspec if maker else "") or self._where).split("/", 1)[-1]
        return self._ds.load_artifact(ref["sha"], name=name, owner=owner)

    def summary(self, name: str) -> str:
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
