"""The records of the remote-job lifecycle (:mod:`workbench.backends.remote`): a task attempt as a remote job,
the array its siblings went out in, and the handle the runtime holds. Plain data; the phases a job goes
through are QUEUED (waiting for the submitter) -> SUBMITTING -> SENT (the API accepted it).
"""

from __future__ import annotations

import time
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from .base import LogCallback, TaskExit, TaskHandle, TaskSpec

if TYPE_CHECKING:
    from .remote import RemoteBackend

QUEUED, SUBMITTING, SENT = "queued", "submitting", "sent"


@dataclass(eq=False, slots=True)  # one per task in flight (10,000 in a wide array): no per-instance __dict__
class RemoteJob:
    """One task attempt as a remote job; subclasses add what their API names it by."""

    spec: TaskSpec
    on_log: LogCallback
    on_exit: Callable[[TaskExit], None]
    _: KW_ONLY
    phase: str = QUEUED  # queued (waiting for the submitter) -> submitting -> sent (the API accepted it)
    submitted: float = field(default_factory=time.time)  # when the API accepted it (queued: when queued)
    requested: Optional[str] = None  # why the runtime cancelled it
    requested_timeout: bool = False  # the cancel was the runtime's hard deadline (reported as a timeout)
    cancel_sent: float = 0.0
    outcome: Optional[TaskExit] = None  # how it ended, once known
    outcome_at: float = 0.0
    done: bool = False  # on_exit has been called
    array: Optional["JobArray"] = None  # set when it went to the API as one index of an array
    index: int = 0  # its index in that array


@dataclass(eq=False)
class JobArray:
    """Sibling jobs sent in one API call (a Batch array job, a Kubernetes Indexed Job): index ``i`` runs
    ``jobs[i]``, whose task it finds through ``manifest`` (see :mod:`workbench.arrays`). Each job stays a
    task of its own to the runtime; the array only exists to make one call where there were N."""

    jobs: list[RemoteJob]
    manifest: str = ""  # the datastore key of the index -> task manifest
    name: str = ""  # what the API calls it (Batch: the parent job id; Kubernetes: the Job name)
    namespace: str = ""
    terminated: float = 0.0  # when the whole array was asked to stop (0: never)
    #: a @parallel gang (workbench.backends.remote_gang): its jobs start, and stop, together
    gang: bool = False

    def unreported(self) -> list[RemoteJob]:
        return [j for j in self.jobs if not j.done]


class RemoteHandle(TaskHandle):
    """A remote job as the runtime holds it."""

    __slots__ = ("backend", "job")

    def __init__(self, backend: "RemoteBackend", job: RemoteJob):
        self.backend = backend
        self.job = job

    def cancel(self, reason: str = "cancelled", *, timeout: bool = False) -> None:
        self.backend.cancel_job(self.job, reason, timeout=timeout)
