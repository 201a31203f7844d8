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

from .client_data import ArtifactData, DataArtifact
from .client_lineage import TaskLineage
from .datastore import FlowDatastore
from .datastore.records import TaskRecord, TaskStatus
from .errors import DatastoreError
from .past_runs import Metaflow, PastRuns, run_records  # noqa: F401 - the read side (CLI, TUI, promote)
from .run_tags import RunTags, username, write_run_tags  # noqa: F401 - part of the client API

_datastore_url: Optional[str] = None
_UNSET = object()
_namespace: Any = _UNSET  # Metaflow's namespace ("user:NAME", "project:NAME", any tag) or None for all


def _looks_like_datastore(value: str) -> bool:
    return "://" in value or "/" in value or "\\" in value


def namespace(ns: Optional[str] = None, *, datastore: Optional[str] = None) -> Optional[str]:
    """Metaflow's ``namespace(ns)``: only runs tagged ``ns`` are found; ``None`` finds every run.

    For compatibility, a directory or s3:// URL (or ``datastore=``) points the client at a datastore, as
    ``metadata()`` does; ``namespace(datastore=None)`` goes back to the project's datastore.
    """
    global _datastore_url, _namespace
    if datastore is not None or (isinstance(ns, str) and _looks_like_datastore(ns)):
        _datastore_url = datastore if datastore is not None else ns
        return get_namespace()
    _namespace = ns
    return ns


def get_namespace() -> Optional[str]:
    """The current namespace: ``user:<username>`` unless ``namespace()`` changed it."""
    if _namespace is _UNSET:
        user = username()
        return f"user:{user}" if user else None
    return _namespace


def default_namespace() -> Optional[str]:
    """Back to the default namespace, ``user:<username>``; returns it."""
    global _namespace
    _namespace = _UNSET
    return get_namespace()


def metadata(ms: str) -> str:
    """Metaflow's ``metadata(...)``: here, the datastore the client reads (``local@DIR``, a DIR or s3://...)."""
    global _datastore_url
    _datastore_url = ms.split("@", 1)[1] if ms.startswith(("local@", "service@")) else ms
    return get_metadata()


def get_metadata() -> str:
    """Where the client reads runs from, as Metaflow spells it: ``local@<datastore>``."""
    return f"local@{_url()}"


def _url() -> str:
    if _datastore_url:
        return _datastore_url
    from .config import load_config

    return load_config().datastore_url


def _in_namespace(tags: frozenset) -> bool:
    ns = get_namespace()
    return ns is None or ns in tags


def _when(ts: Optional[float]) -> Optional[datetime]:
    return datetime.fromtimestamp(ts, timezone.utc) if ts else None


def _split(pathspec: str, parts: int, what: str) -> list[str]:
    from .exception import MetaflowInvalidPathspec

    bits = [b for b in str(pathspec).strip("/").split("/") if b]
    if len(bits) != parts:
        raise MetaflowInvalidPathspec(f"{pathspec!r} is not a {what} pathspec")
    return bits


class Flow:
    def __init__(self, name: str, _namespace_check: bool = True):
        from .exception import MetaflowNotFound

        self.name = self.id = self.pathspec = name
        self._ds = FlowDatastore(_url(), name)
        self._namespace_check = _namespace_check
        if not self._ds.list_runs():
            raise MetaflowNotFound(f"Flow('{name}') does not exist")

    def _run(self, run_id: str) -> "Run":
        return Run(f"{self.name}/{run_id}", _ds=self._ds, _namespace_check=self._namespace_check)

    def runs(self, *tags: str) -> list["Run"]:
        """Every run in the current namespace (with all of ``tags``), newest first. A run id without a
        run record is skipped: ``python flow.py run`` records its tags before the run starts, and a run
        refused at start (a bad configuration) never gets a record."""
        return list(self._iter_runs(*tags))

    def _iter_runs(self, *tags: str) -> Iterator["Run"]:
        """:meth:`runs` one at a time, newest first (``Metaflow().flows`` stops at the first)."""
        from .exception import MetaflowNotFound

        for run_id in reversed(self._ds.list_runs()):
            try:
                run = Run(f"{self.name}/{run_id}", _ds=self._ds, _namespace_check=False)
            except MetaflowNotFound:
                continue
            if (not self._namespace_check or _in_namespace(run.tags)) and set(tags) <= run.tags:
                yield run

    def __iter__(self) -> Iterator["Run"]:
        return iter(self.runs())

    def __getitem__(self, run_id: str) -> "Run":
        return self._run(run_id)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._ds.list_runs()

    @property
    def latest_run(self) -> Optional["Run"]:
        runs = self.runs()
        return runs[0] if runs else None

    @property
    def latest_successful_run(self) -> Optional["Run"]:
        """The newest successful full run (a single-step re-run is never one)."""
        return next((r for r in self.runs() if r.successful and not r._doc.only_step), None)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.pathspec == self.pathspec

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.pathspec))

    # a flow has no tags of its own (Metaflow's Flow.tags is empty)
    tags = user_tags = system_tags = frozenset[str]()

    def __repr__(self) -> str:
        return f"Flow('{self.name}')"


class Run(RunTags):
    def __init__(self, pathspec: str, _ds: Optional[FlowDatastore] = None, _namespace_check: bool = True):
        from .exception import MetaflowNamespaceMismatch, MetaflowNotFound

        flow, run_id = _split(pathspec, 2, "run")
        self.flow, self.id = flow, run_id
        self.pathspec = f"{flow}/{run_id}"
        self._ds = _ds or FlowDatastore(_url(), flow)
        doc = self._ds.read_run(run_id)
        if doc is None:
            raise MetaflowNotFound(f"no run {pathspec} in {self._ds.url}")
        self._doc = doc
        if _namespace_check and not _in_namespace(self.tags):
            raise MetaflowNamespaceMismatch(get_namespace())

    # ---------------------------------------------------------------- status
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

    def steps(self, *tags: str) -> list["Step"]:
        if not set(tags) <= self.tags:
            return []
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
    def parent(self) -> Flow:
        return Flow(self.flow, _namespace_check=False)

    @property
    def path_components(self) -> list[str]:
        return self.pathspec.split("/")

    @property
    def origin_pathspec(self) -> Optional[str]:
        """The run this one resumed, as FLOW/RUN_ID."""
        return f"{self.flow}/{self.origin_run_id}" if self.origin_run_id else None

    @property
    def end_task(self) -> Optional["Task"]:
        """The end step's task, once the run reached it."""
        return self["end"].task if "end" in self else None

    @property
    def data(self) -> Optional["ArtifactData"]:
        """The end step's artifacts (as Metaflow's Run.data)."""
        end = self.end_task
        return end.data if end is not None else None

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.pathspec == self.pathspec

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.pathspec))

    def __repr__(self) -> str:
        return f"Run('{self.pathspec}')"


class Step:
    def __init__(self, run, name: Optional[str] = None, _namespace_check: bool = True):
        if name is None:  # Step("Flow/RUN/step"), as Metaflow
            flow, run_id, name = _split(run, 3, "step")
            run = Run(f"{flow}/{run_id}", _namespace_check=_namespace_check)
        self.run = run
        self.name = self.id = name
        self.pathspec = f"{run.pathspec}/{name}"

    def tasks(self, *tags: str) -> list["Task"]:
        if not set(tags) <= self.run.tags:
            return []
        return [Task(self, t) for t in self.run._ds.list_tasks(self.run.id, self.name)]

    def __iter__(self) -> Iterator["Task"]:
        return iter(self.tasks())

    def control_tasks(self, *tags: str) -> Iterator["Task"]:
        """Metaflow's control tasks of a @parallel step: one per gang (none for another step)."""
        return iter(t for t in self.tasks(*tags) if t.is_control_task)

    @property
    def control_task(self) -> Optional["Task"]:
        return next(self.control_tasks(), None)

    def __getitem__(self, task_id: str) -> "Task":
        if str(task_id) not in self.run._ds.list_tasks(self.run.id, self.name):
            raise KeyError(f"step {self.pathspec} has no task {task_id}")
        return Task(self, str(task_id))

    @property
    def parent(self) -> Run:
        return self.run

    @property
    def tags(self) -> frozenset:
        return self.run.tags

    @property
    def parent_steps(self) -> Iterator["Step"]:
        """The steps whose tasks fed this step's tasks."""
        names = sorted({p.split("/")[-2] for t in self for p in t._doc.parents})
        return iter(Step(self.run, n) for n in names)

    @property
    def child_steps(self) -> Iterator["Step"]:
        """The steps whose tasks took this step's tasks as inputs."""
        names = [s.name for s in self.run if any(p.split("/")[-2] == self.name for t in s for p in t._doc.parents)]
        return iter(Step(self.run, n) for n in names)

    @property
    def user_tags(self) -> frozenset:
        return self.run.user_tags

    @property
    def system_tags(self) -> frozenset:
        return self.run.system_tags

    @property
    def path_components(self) -> list[str]:
        return self.pathspec.split("/")

    @property
    def origin_pathspec(self) -> Optional[str]:
        """Where this step's task came from when it was cloned by a resume."""
        origin = self.task.origin_pathspec
        return origin.rsplit("/", 1)[0] if origin else None

    @property
    def task(self) -> "Task":
        """The step's task (the first, for a foreach step)."""
        tasks = self.tasks()
        if not tasks:
            raise DatastoreError(f"step {self.pathspec} has no tasks")
        return tasks[0]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.pathspec == self.pathspec

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.pathspec))

    def __repr__(self) -> str:
        return f"Step('{self.pathspec}')"


class Task(TaskLineage):
    def __init__(self, step, task_id: Optional[str] = None, _namespace_check: bool = True):
        if task_id is None:  # Task("Flow/RUN/step/ID"), as Metaflow
            flow, run_id, name, task_id = _split(step, 4, "task")
            step = Step(f"{flow}/{run_id}/{name}", _namespace_check=_namespace_check)
        self.step = step
        self.id = str(task_id)
        self.pathspec = f"{step.pathspec}/{self.id}"
        ds = step.run._ds
        # no task.json yet: the task is still running
        self._doc = ds.read_task(step.run.id, step.name, self.id) or TaskRecord(status=TaskStatus.RUNNING)
        self._finished = self._doc.status is not TaskStatus.RUNNING
        self.data = ArtifactData(ds, self._doc.artifacts, self.pathspec)

    def __getitem__(self, name: str) -> DataArtifact:
        if name not in self.data:
            raise KeyError(f"task {self.pathspec} has no artifact {name}")
        return DataArtifact(self, name)

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def __iter__(self) -> Iterator[DataArtifact]:
        return iter(DataArtifact(self, n) for n in sorted(self._doc.artifacts))

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
    def exception(self):
        """The exception the task failed with (type name, message, traceback), or None."""
        doc = self._doc
        # a task that never ran its step (image missing, credentials missing, the API refused it) has no
        # traceback: its reason in words is the exception
        failed = doc.status.is_terminal and not doc.status.ok and doc.status is not TaskStatus.CANCELLED
        if not doc.traceback and not (failed and doc.reason):
            return None
        from .exception import MetaflowExceptionWrapper

        wrapper = MetaflowExceptionWrapper()
        kind, sep, message = (doc.reason or "").partition(": ")
        wrapper.type, wrapper.exception = (kind, message) if sep else ("", kind)
        wrapper.stacktrace = doc.traceback or ""
        return wrapper

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

    @property
    def parent(self) -> Step:
        return self.step

    @property
    def tags(self) -> frozenset:
        return self.step.run.tags

    @property
    def user_tags(self) -> frozenset:
        return self.step.run.user_tags

    @property
    def system_tags(self) -> frozenset:
        return self.step.run.system_tags

    @property
    def path_components(self) -> list[str]:
        return self.pathspec.split("/")

    def logs(self) -> list[tuple[str, str, str]]:
        run = self.step.run
        return list(run._ds.read_log(run.id, self.step.name, self.id))

    def loglines(self, stream: str = "stdout") -> Iterator[tuple[Optional[datetime], str]]:
        """(timestamp, line) of each line the task wrote to ``stream``."""
        for ts, s, text in self.logs():
            if s == stream:
                try:
                    when = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
                except ValueError:
                    when = None
                yield when, text

    @property
    def stdout(self) -> str:
        """What the task wrote to stdout, each line with its newline (as Metaflow returns it)."""
        return "".join(t + "\n" for _, s, t in self.logs() if s == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(t + "\n" for _, s, t in self.logs() if s == "stderr")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.pathspec == self.pathspec

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.pathspec))

    def __repr__(self) -> str:
        return f"Task('{self.pathspec}')"
