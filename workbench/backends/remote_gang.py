"""@parallel gangs on the remote backends (a mixin of :class:`workbench.backends.remote.RemoteBackend`).

The scheduler emits the N Submits of a gang together, each with ``spec.parallel`` = {gang, node_index, num_nodes,
control_task_id}. Here:

- ``gather`` holds a gang's jobs as they are submitted until all N are in, makes them one :class:`JobArray`
  (``gang=True``, index = node index) and hands only node 0 to the submitter: a gang can never be split
  between two submitter batches or mixed into a foreach's array.
- ``submit_gang_jobs`` (on the submitter thread) sends the whole gang in one go with the subclass's
  ``submit_gang`` (a Batch multi-node parallel job; a Kubernetes Indexed Job with a headless Service). A node
  cancelled before the gang went out takes the gang with it: the others are reported cancelled, never sent.
- ``terminate_gang_of``: stopping any node stops the whole gang, in one ``terminate_gang`` (all or nothing);
  every other node is marked cancelled with the reason, so each still reports on its own.

Each node stays a task to the runtime: its own status, log and on_exit; only the launch and the stop are shared.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Optional

from .remote_jobs import JobArray, RemoteJob

if TYPE_CHECKING:
    from .base import TaskExit


def gang_key(job: RemoteJob) -> Optional[tuple[Any, ...]]:
    """Which gang a job is a node of (None: not a gang node). A retried gang is a new gang (its attempt)."""
    p = job.spec.parallel
    if not p:
        return None
    return (str(p["gang"]), job.spec.attempt, job.spec.datastore_url)


def gang_of(job: RemoteJob) -> Optional[JobArray]:
    """The gang a job went out in, once gathered."""
    return job.array if job.array is not None and job.array.gang else None


class RemoteGangs:
    """The gang half of RemoteBackend: gather, send together, stop together."""

    if TYPE_CHECKING:  # provided by RemoteBackend, which this is mixed into
        _lock: threading.RLock

        def _begin_submit(self, job: RemoteJob) -> bool: ...
        def conclude(self, job: RemoteJob, result: TaskExit) -> None: ...
        def _requested_exit(self, job: RemoteJob) -> TaskExit: ...

    def submit_gang(self, jobs: list[RemoteJob]) -> None:
        """Create the whole gang (``jobs[i]`` is node i) through the API; raise on failure (every node fails)."""
        raise NotImplementedError(f"{type(self).__name__} cannot run @parallel gangs")

    def terminate_gang(self, gang: JobArray) -> None:
        """Stop every node of a gang that went out, in as few calls as the API allows."""
        raise NotImplementedError

    def gather(self, job: RemoteJob) -> Optional[list[RemoteJob]]:
        """Hold a gang's node until every node has been submitted; then the whole gang, in node order."""
        key = gang_key(job)
        assert key is not None and job.spec.parallel is not None
        n = int(job.spec.parallel["num_nodes"])
        with self._lock:
            forming: dict[tuple[Any, ...], dict[int, RemoteJob]] = self.__dict__.setdefault("_forming_gangs", {})
            nodes = forming.setdefault(key, {})
            nodes[int(job.spec.parallel["node_index"])] = job
            if len(nodes) < n:
                return None
            del forming[key]
            jobs = [nodes[i] for i in range(n)]
            gang = JobArray(list(jobs), name="", gang=True)
            for i, member in enumerate(jobs):
                member.array, member.index = gang, i
        return jobs

    def begin_gang(self, gang: JobArray) -> list[RemoteJob]:
        """Move every node to submitting; when one was cancelled meanwhile, none goes (the rest are cancelled)."""
        going = [job for job in gang.jobs if self._begin_submit(job)]
        if len(going) == len(gang.jobs):
            return going
        why = next((j.requested for j in gang.jobs if j.requested), None) or "cancelled"
        for job in going:
            with self._lock:
                job.requested = job.requested or f"another node of the gang was stopped before it started: {why}"
            self.conclude(job, self._requested_exit(job))
        return []

    def terminate_gang_of(self, job: RemoteJob) -> None:
        """Stop the gang of ``job`` (once): every node not yet stopping is stopped with it."""
        gang = gang_of(job)
        assert gang is not None
        with self._lock:
            if gang.terminated:
                return
            gang.terminated = time.time()
            why = job.requested or "cancelled"
            for other in gang.unreported():
                if other.requested is None:
                    other.requested = f"the gang stopped: {why}"
                    other.cancel_sent = time.time()
        self.terminate_gang(gang)
