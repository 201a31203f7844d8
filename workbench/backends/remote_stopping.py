"""Stopping remote jobs: the cancel half of :class:`workbench.backends.remote.RemoteBackend`.

``cancel_job`` records why and queues the stop; the poller thread (never the runtime's) makes the API calls,
and the stops that queued up together go together, an array whose every unreported job is stopped in one
call (``terminate_array``). :class:`RemoteStopping` is a mixin of RemoteBackend, its only user.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING, ClassVar

from .base import TaskExit
from .remote_jobs import QUEUED, SENT, JobArray, RemoteJob


class RemoteStopping:
    """cancel_job, the termination queue the poller flushes, and the terminate_jobs / terminate_array hooks."""

    if TYPE_CHECKING:  # provided by RemoteBackend, which this is mixed into
        _lock: threading.RLock
        _wake: threading.Event
        _terminations: collections.deque[RemoteJob]
        _terminations_first: float
        _terminations_last: float
        name: ClassVar[str]

        def terminate(self, job: RemoteJob) -> None: ...
        def _requested_exit(self, job: RemoteJob) -> TaskExit: ...
        def conclude(self, job: RemoteJob, result: TaskExit) -> None: ...
        def _warn(self, message: str) -> None: ...
        def terminate_gang_of(self, job: RemoteJob) -> None: ...

    def terminate_jobs(self, jobs: list[RemoteJob]) -> None:
        """Stop several sent jobs (on the poller thread). An array whose every unreported index is being stopped
        goes in one call (:meth:`terminate_array`); other jobs one :meth:`terminate` each."""
        arrays: dict[int, JobArray] = {}
        singles: list[RemoteJob] = []
        for job in jobs:
            if job.array is not None and job.array.gang:
                self.terminate_gang_of(job)  # all or nothing: one node stopping stops its gang
            elif job.array is not None:
                arrays[id(job.array)] = job.array
            else:
                singles.append(job)
        stopping = {id(j) for j in jobs}
        for array in arrays.values():
            unreported = array.unreported()
            if (
                not array.terminated
                and len(unreported) > 1
                and all(id(j) in stopping or j.requested for j in unreported)
            ):
                array.terminated = time.time()
                self.terminate_array(array)
            else:
                singles.extend(j for j in array.jobs if id(j) in stopping)
        for job in singles:
            self.terminate(job)

    def terminate_array(self, array: JobArray) -> None:
        """Stop a whole array in one call (default: each of its unreported jobs alone)."""
        for job in array.unreported():
            self.terminate(job)

    def cancel_job(self, job: RemoteJob, reason: str, *, timeout: bool = False) -> None:
        """Stop a job; its on_exit follows soon (at once when it was not sent yet). ``timeout``: the runtime's
        hard deadline passed, so the outcome is a timeout rather than a cancel."""
        with self._lock:
            if job.done or job.outcome is not None:
                return
            if job.requested is None:
                job.requested, job.requested_timeout = reason, timeout
            job.cancel_sent = time.time()
            phase = job.phase
        if phase == QUEUED:
            self.conclude(job, self._requested_exit(job))
        elif phase == SENT:
            self._queue_termination(job)
        # SUBMITTING: _sent terminates it once the API has answered
        self._wake.set()

    #: stops asked for within this many seconds of each other go out together (the runtime cancels a run's
    #: tasks one by one: without the pause, the poller could stop an array's first index alone, then the rest)
    COALESCE_S: ClassVar[float] = 0.05
    #: ... but a stream of cancels never holds the first one back longer than this
    COALESCE_MAX_S: ClassVar[float] = 1.0

    def _queue_termination(self, job: RemoteJob) -> None:
        """The API call that stops a job is made on the poller thread, never the caller's (the runtime's), and
        the stops that queue up together go out together: cancelling a run stops an array in one call."""
        now = time.monotonic()
        with self._lock:
            if not self._terminations:
                self._terminations_first = now
            self._terminations_last = now
            self._terminations.append(job)
        self._wake.set()

    def terminations_settling(self) -> bool:
        """True while stops are still being asked for (the poller waits :attr:`COALESCE_S` and looks again)."""
        now = time.monotonic()
        with self._lock:
            if not self._terminations:
                return False
            first, last = self._terminations_first, self._terminations_last
        return now - last < self.COALESCE_S and now - first < self.COALESCE_MAX_S

    def _flush_terminations(self) -> None:
        with self._lock:
            jobs = [j for j in self._terminations if not j.done]
            self._terminations.clear()
        if jobs:
            try:
                self.terminate_jobs(jobs)
            except Exception as exc:  # noqa: BLE001 - the poller must go on; end_run reports what never ends
                self._warn(f"{self.name}: stopping {len(jobs)} job(s) failed: {exc}")
