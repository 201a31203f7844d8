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
from typing import TYPE_CHECKING, Any, Iterator, Optional

from .datastore import FlowDatastore
from .datastore.records import RunRecord, TaskRecord, TaskStatus
from .errors import DatastoreError, UsageError

if TYPE_CHECKING:
    from .progress import RunProgress

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
        return self.status in ("succeeded", "failed", "cancelled")

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
        return self._doc.traceback or None

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


# ----------------------------------------------------------------------------------- the read side
# What the CLI commands (runs, logs, artifacts, show --usage), the TUI (runs, DAG statuses, inspector)
# and promote read about past runs: records and summaries, never an unpickled value (except load()).

class PastRuns:
    """One flow's past runs as records. Failure-tolerant: a broken or half-written run directory reads as
    absent (a viewer must never crash on one), and nothing here unpickles an artifact but :meth:`load`."""

    def __init__(self, ds: FlowDatastore):
        self.ds = ds

    @classmethod
    def of(cls, flow: str, datastore: Optional[str] = None) -> "PastRuns":
        return cls(FlowDatastore(datastore or _url(), flow))

    def runs(self) -> list[str]:
        """Run ids, oldest first."""
        try:
            return self.ds.list_runs()
        except Exception:  # noqa: BLE001 - unreadable store: nothing to show
            return []

    def latest_run(self) -> Optional[str]:
        runs = self.runs()
        return runs[-1] if runs else None

    def run_record(self, run_id: str) -> Optional[RunRecord]:
        try:
            return self.ds.read_run(run_id)
        except Exception:  # noqa: BLE001
            return None

    def steps(self, run_id: str) -> list[str]:
        try:
            return self.ds.list_steps(run_id)
        except Exception:  # noqa: BLE001
            return []

    def task_ids(self, run_id: str, step: str) -> list[str]:
        try:
            return self.ds.list_tasks(run_id, step)
        except Exception:  # noqa: BLE001
            return []

    def tasks(self, run_id: str, step: Optional[str] = None) -> list[TaskRecord]:
        """The finished (or cloned) tasks' records, of one step or of the whole run."""
        out: list[TaskRecord] = []
        for name in [step] if step else self.steps(run_id):
            for task_id in self.task_ids(run_id, name):
                try:
                    doc = self.ds.read_task(run_id, name, task_id)
                except Exception:  # noqa: BLE001
                    doc = None
                if doc:
                    out.append(doc)
        return out

    def steps_in_order(self, run_id: str) -> list[str]:
        """The run's steps in the order their first tasks were numbered (roughly the order they ran)."""
        first: dict[str, int] = {}
        for step in self.steps(run_id):
            tasks = self.task_ids(run_id, step)
            first[step] = int(tasks[0]) if tasks and tasks[0].isdigit() else 0
        return sorted(first, key=lambda s: first[s])

    def progress(self, run_id: Optional[str]) -> "RunProgress":
        """The run's per-step progress by the same rule as a live run's (:mod:`workbench.progress`)."""
        from .progress import RunProgress, events_from_tasks, reduce_events
        return reduce_events(events_from_tasks(self.tasks(run_id))) if run_id else RunProgress()

    def task_counts(self, run_id: Optional[str]) -> dict[str, int]:
        """Step -> tasks the run has of it (running ones included)."""
        return {step: len(self.task_ids(run_id, step)) for step in self.steps(run_id)} if run_id else {}

    def usage(self, step: str) -> Optional[dict[str, Any]]:
        """The step's measured usage by the one rule of :mod:`workbench.usage`."""
        from .usage import usage_by_step
        return usage_by_step(self.ds, [step]).get(step)

    def logs(self, run_id: str, step: str, task_id: str, attempt: Optional[int] = None) -> list[tuple[str, str, str]]:
        """(timestamp, stream, text) lines of a task's attempt (the last one by default)."""
        return list(self.ds.read_log(run_id, step, task_id, attempt))

    def log_lines(self, run_id: str) -> list[tuple[str, str]]:
        """(pathspec, text) of every task's log in the run, task by task."""
        lines: list[tuple[str, str]] = []
        for doc in self.tasks(run_id):
            try:
                for _ts, _stream, text in self.ds.read_log(run_id, doc.step, doc.task_id):
                    lines.append((doc.pathspec, text))
            except Exception:  # noqa: BLE001
                continue
        return lines

    def load(self, sha: str) -> Any:
        """Unpickle one blob: runs code a step stored. Only for explicit requests (``artifacts --load``)."""
        return self.ds.load_artifact(sha)

    def resolve_tasks(self, parts: list[str]) -> list[tuple[str, str, str]]:
        """(run, step, task) for RUN[/STEP[/TASK]] split into parts; a named step must have tasks."""
        run_id = parts[0]
        steps = [parts[1]] if len(parts) > 1 else self.steps_in_order(run_id)
        out: list[tuple[str, str, str]] = []
        for step in steps:
            tasks = [parts[2]] if len(parts) > 2 else self.ds.list_tasks(run_id, step)
            if len(parts) > 1 and not tasks:
                raise UsageError(f"run {run_id} has no tasks of step {step} "
                                 f"(steps: {', '.join(self.ds.list_steps(run_id))})")
            out.extend((run_id, step, t) for t in tasks)
        return out


def run_records(datastore: str, flows: Optional[list[str]] = None) -> list[RunRecord]:
    """Every run of the given flows (default: every flow in the datastore), oldest first by start time."""
    import dataclasses

    from .datastore import list_flows
    from .datastore.storage import open_storage
    storage = open_storage(datastore)
    rows: list[RunRecord] = []
    for flow in flows if flows is not None else list_flows(storage):
        ds = FlowDatastore(storage, flow)
        for run_id in ds.list_runs():
            doc = ds.read_run(run_id) or RunRecord()
            rows.append(dataclasses.replace(doc, flow=flow, run_id=run_id))
    rows.sort(key=lambda d: d.started_at or 0)
    return rows
