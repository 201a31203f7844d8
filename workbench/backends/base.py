"""The interface between the runtime and the places a task can run.

A backend turns a :class:`TaskSpec` into a running ``python -m workbench.task run ...`` somewhere and
reports back through two callbacks: ``on_log(stream, text, ts)`` for each output line, and
``on_exit(TaskExit)`` once, when the task has ended. Callbacks may be called from any thread.
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
    status: TaskStatus
    exit_code: Optional[int] = None
    reason: str = ""
    usage: dict[str, Any] = field(default_factory=dict)  # peak_memory_mib, cpu_seconds, ...


@dataclass
class Capacity:
    """The largest single task a backend can place: CPUs, memory in MiB, GPUs, and where that was read."""
    cpu: float
    memory: int
    gpu: int
    source: str = ""


@dataclass
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

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}/{self.step}/{self.task_id}"

    @property
    def ref(self) -> str:
        return f"{self.pathspec}/{self.attempt}"

    def command(self, python: str = "python3", datastore_url: Optional[str] = None,
                root: Optional[str] = None) -> list[str]:
        """The task entrypoint, the same for every backend."""
        return [python, "-m", "workbench.task", "run", "--datastore", datastore_url or self.datastore_url,
                "--root", root or self.project_root, self.ref]

    def local_command(self) -> list[str]:
        return self.command(python=sys.executable)


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


class TaskHandle(ABC):
    """A submitted task."""

    @abstractmethod
    def cancel(self, reason: str = "cancelled", *, timeout: bool = False) -> None:
        """Stop the task; ``on_exit`` must fire soon, with status timeout when ``timeout`` (the runtime's
        hard deadline passed) and cancelled otherwise, and ``reason`` as its reason."""


class Backend(ABC):
    name: ClassVar[str]
    #: True when tasks run elsewhere and need a shared (S3) datastore and a code package
    remote: ClassVar[bool] = False

    def __init__(self, config: "ProjectConfig"):
        self.config = config

    def check(self, settings: "StepSettings") -> None:
        """Refuse a request this backend can never run (raise ResourceError). Called before the run starts."""

    def capacity(self) -> Optional["Capacity"]:
        """The largest request this backend can schedule, where it can be read (None: unknown/unreachable).
        ``workbench promote`` refuses a request above it and names the largest fit."""
        return None

    def start_run(self, ctx: RunContext) -> None:
        """Called once per run, before the first submit."""

    @abstractmethod
    def submit(self, spec: TaskSpec, on_log: LogCallback, on_exit: Callable[[TaskExit], None]) -> TaskHandle: ...

    def end_run(self, ctx: RunContext) -> None:
        """Called once when the run ends (also when it is cancelled); release everything."""
