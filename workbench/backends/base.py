"""The interface between the runtime and the places a task can run.

A backend turns a :class:`TaskSpec` into a running ``python -m workbench.task run ...`` somewhere and
reports back through two callbacks. The contract every backend keeps (the contract test suite checks it):

- ``on_log(stream, text, ts)`` for each output line, in order, while the task runs.
- ``on_exit(TaskExit)`` exactly once per submitted task, and only after the task's log has drained: no
  ``on_log`` for that task follows it. A task that could not start is reported through ``on_exit`` too.
- ``submit`` returns at once (a remote backend sends the job from another thread) and may raise a
  :class:`~workbench.errors.WorkbenchError` for a request it can never run; it never raises anything else.
- ``TaskHandle.cancel`` makes ``on_exit`` fire soon (status cancelled, or timeout when the runtime says
  so), whatever state the task is in; cancelling an ended task does nothing.
- ``end_run`` stops everything of the run that is still live, waits (bounded) for it, and makes sure every
  task has had its ``on_exit``.

Callbacks may be called from any thread.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

from ..datastore.records import TaskStatus

if TYPE_CHECKING:
    from ..config import ProjectConfig
    from ..datastore import FlowDatastore
    from ..graph import FlowGraph
    from ..settings import StepSettings

LogCallback = Callable[[str, str, float], None]  # stream ("stdout"|"stderr"), text (no newline), timestamp


@dataclass
class TaskExit:
    """How a task ended, in words. ``status``: succeeded, failed, timeout, oom, cancelled or error."""

    status: TaskStatus | str  # a word is turned into its TaskStatus (unknown words: ValueError)
    exit_code: Optional[int] = None
    reason: str = ""
    usage: dict[str, Any] = field(default_factory=dict)  # peak_memory_mib, cpu_seconds, ...
    ended_at: Optional[float] = None  # when the task's container ended by the platform's clock (None: not said)

    def __post_init__(self) -> None:
        self.status = TaskStatus(self.status)


@dataclass
class Capacity:
    """The largest single task a backend can place: CPUs, memory in MiB, GPUs, and where that was read."""

    cpu: float
    memory: int
    gpu: int
    source: str = ""


@dataclass(slots=True)  # one per task in flight (10,000 in a wide array): no per-instance __dict__
class TaskSpec:
    """One attempt of one task, as the runtime hands it to a backend."""

    flow: str
    run_id: str
    step: str
    task_id: str
    attempt: int
    settings: "StepSettings"
    datastore_url: str
    project_root: str
    flow_file: str  # relative to project_root
    class_name: str
    labels: dict[str, str] = field(default_factory=dict)
    #: the step's declared environment (a prepared :class:`workbench.environment_uv.Environment`) or None:
    #: the local backend runs the task with its interpreter, containers and remote jobs install its lock
    environment: Optional[Any] = None
    #: pins that give a container or remote task its inputs' packages at the versions they were pickled
    #: with, when the step declares no environment (the runtime's version guard fills it)
    input_pins: tuple[str, ...] = ()
    #: a node of a @parallel gang: {gang, node_index, num_nodes, control_task_id} (the scheduler's spec.parallel);
    #: a remote backend launches a gang's N tasks together, as one multi-node job
    parallel: Optional[dict[str, Any]] = None

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}/{self.step}/{self.task_id}"

    @property
    def ref(self) -> str:
        return f"{self.pathspec}/{self.attempt}"

    def command(
        self, python: str = "python3", datastore_url: Optional[str] = None, root: Optional[str] = None
    ) -> list[str]:
        """The task entrypoint, the same for every backend."""
        return [
            python,
            "-m",
            "workbench.task",
            "run",
            "--datastore",
            datastore_url or self.datastore_url,
            "--root",
            root or self.project_root,
            self.ref,
        ]

    def local_command(self) -> list[str]:
        """The entrypoint on this machine: the environment's interpreter when the step declares one."""
        return self.command(python=str(self.environment.python) if self.environment is not None else sys.executable)


@dataclass
class RunContext:
    """What a backend may need to know about the run it serves."""

    flow: str
    run_id: str
    graph: "FlowGraph"
    config: "ProjectConfig"
    datastore: "FlowDatastore"
    project_root: str
    flow_file: str  # relative to project_root
    class_name: str
    warn: Callable[[str], None] = lambda message: None
    waiting: Callable[[str, str, str, str], None] = lambda pathspec, step, backend, reason: None  # why not running
    #: ``--max-workers`` when the user gave it, else None (Kubernetes: the pods of an Indexed Job at once)
    max_workers: Optional[int] = None


class TaskHandle(ABC):
    """A submitted task. ``cancel`` must make ``on_exit`` fire soon (status cancelled or timeout), at most
    once, whatever state the task is in (queued, starting, running, ending)."""

    __slots__ = ()  # a subclass may keep its handles small (RemoteHandle: one per task in flight)

    @abstractmethod
    def cancel(self, reason: str = "cancelled", *, timeout: bool = False) -> None:
        """Stop the task; ``on_exit`` must fire soon, with status timeout when ``timeout`` (the runtime's
        hard deadline passed) and cancelled otherwise, and ``reason`` as its reason."""


class Backend(ABC):
    """One place tasks can run; registered by name in :data:`workbench.backends.REGISTRY`."""

    name: ClassVar[str]
    #: True when tasks run elsewhere and need a shared (S3) datastore and a code package
    remote: ClassVar[bool] = False
    #: what the error for a missing image says the image needs (container backends)
    image_requirement: ClassVar[str] = ""
    image_hint: ClassVar[str] = ""

    def __init__(self, config: "ProjectConfig"):
        self.config = config

    def image_for(self, settings: "StepSettings") -> str:
        """The image a step's container runs: the step's own, else the backend's default (resolved by the
        one rule in :func:`workbench.settings.default_image`); a ConfigError that says where to set it."""
        from ..errors import ConfigError
        from ..settings import default_image

        image = settings.image or default_image(self.name, self.config)
        if not image:
            raise ConfigError(
                f"the {self.name} backend needs an image{self.image_requirement}: set [{self.name}] "
                f'image = "..." in workbench.toml, @{self.name}(image=...) or --image{self.image_hint}'
            )
        return image

    def check(self, settings: "StepSettings") -> None:  # noqa: B027  (optional hook: accepts everything)
        """Refuse a request this backend can never run (raise ResourceError). Called before the run starts."""

    def capacity(self) -> Optional["Capacity"]:
        """The largest request this backend can schedule, where it can be read (None: unknown/unreachable).
        ``workbench promote`` refuses a request above it and names the largest fit."""
        return None

    def start_run(self, ctx: RunContext) -> None:  # noqa: B027  (optional hook)
        """Called once per run, before the first submit."""

    @abstractmethod
    def submit(self, spec: TaskSpec, on_log: LogCallback, on_exit: Callable[[TaskExit], None]) -> TaskHandle:
        """Start one task attempt and return at once. Raise a WorkbenchError for a request that can never run;
        anything that goes wrong later (the API refuses the job, the container cannot start) is reported
        through ``on_exit``, exactly once, after ``on_log`` has delivered the task's last line."""

    def end_run(self, ctx: RunContext) -> None:  # noqa: B027  (optional hook)
        """Called once when the run ends (also when it is cancelled): stop every task still live, wait (bounded)
        until each has had its ``on_exit``, release everything."""

    def more_coming(self, more: bool) -> None:  # noqa: B027  (optional hook)
        """A hint from the runtime after it hands tasks over: ``True`` while a burst it is starting (a foreach
        wider than one scheduler event) is not all handed over yet. A backend that sends siblings as one array
        waits for the rest; ``False`` once the burst is whole."""

    def held_ref(self, spec: TaskSpec) -> dict[str, Any]:
        """What this backend will name ``spec``'s task by (job name, queue, namespace), recorded in the run's
        held entries before the submit, so :meth:`release` can find it after the runtime is gone."""
        return {}

    def release(self, flow: str, run_id: str, held: list[dict[str, Any]], warn: Callable[[str], None]) -> list[str]:
        """Remove whatever this backend still holds for a run whose runtime is gone (``workbench cancel``),
        from the ``ref`` of each held entry and the run's labels; return what was removed, in words.
        Must be safe to call twice and for a run that left nothing."""
        return []
