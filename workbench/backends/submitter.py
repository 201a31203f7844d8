"""The submitter of the remote backends: API calls off the caller's thread, in batches, rate-limited, backing off
when the API throttles, and coalescing a burst of submissions so that siblings can go out as one array."""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING, Callable, Optional, Sequence

if TYPE_CHECKING:
    from .remote import RemoteJob


class Throttled(Exception):
    """The API refused for rate. ``pending``: the jobs of the batch not sent (the submitter retries them)."""

    def __init__(self, pending: Sequence[RemoteJob], retry_after: Optional[float] = None):
        super().__init__(f"throttled ({len(pending)} job(s) to retry)")
        self.pending = list(pending)
        self.retry_after = retry_after


class Submitter:
    """Submissions off the caller's thread: one thread drains a queue in batches of up to ``batch_size``
    jobs, at most ``rate`` jobs a second. When the API throttles, the rate halves (down to ``min_rate``) and
    the unsent jobs go back to the front of the queue after a back-off that doubles while throttling goes
    on; each batch that goes through raises the rate by one job a second, up to ``max_rate``."""

    def __init__(
        self,
        send: Callable[[list[RemoteJob]], Optional[int]],
        *,
        rate: float,
        max_rate: float,
        min_rate: float = 0.5,
        batch_size: int = 100,
        name: str = "submitter",
        quiet: float = 0.0,
        linger: float = 0.0,
        warn: Callable[[str], None] = lambda message: None,
        failed: Callable[[list[RemoteJob], BaseException], None] = lambda jobs, exc: None,
    ):
        self.send = send
        self.failed = failed  # a batch that raised something unexpected: its jobs must still be reported
        self.rate = rate
        self.max_rate = max_rate
        self.min_rate = min_rate
        self.batch_size = batch_size
        self.name = name
        self.warn = warn
        # coalescing: before taking a batch, wait until no job has arrived for ``quiet`` seconds (at most
        # ``linger`` seconds after the first): the runtime submits a foreach's tasks one by one, in a burst
        self.quiet = quiet
        self.linger = linger
        # the runtime says more of the burst is on its way (a foreach wider than one scheduler event starts): keep
        # coalescing past ``quiet`` and ``linger`` until it says the burst is whole, at most ``burst_max`` seconds
        self.burst_max = max(linger, 120.0)
        self._more = False
        self._last_put = 0.0
        self.throttled = 0  # throttled answers so far
        self._queue: collections.deque[RemoteJob] = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._next_at = 0.0  # the token bucket, as the earliest time the next job may go
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def put(self, job: RemoteJob) -> None:
        with self._cond:
            self._queue.append(job)
            self._last_put = time.time()
            self._cond.notify()

    def more_coming(self, more: bool) -> None:
        """Hint from the runtime: ``True`` while the tasks it is starting are part of a burst it has not finished
        handing over (so siblings wait for each other and go as one array); ``False`` once it has."""
        with self._cond:
            self._more = more
            self._cond.notify()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in flight, drop what is still queued (the caller has cancelled it), stop."""
        with self._cond:
            self._stop = True
            self._queue.clear()
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self) -> list[RemoteJob]:
        with self._cond:
            while not self._queue and not self._stop:
                self._cond.wait()
            if self.quiet > 0:
                first = time.time()
                while not self._stop and len(self._queue) < self.batch_size:
                    now = time.time()
                    if self._more:
                        wait = first + self.burst_max - now
                    else:
                        wait = min(self._last_put + self.quiet, first + self.linger) - now
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
            if self._stop:
                return []
            n = min(self.batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def _loop(self) -> None:
        backoff = 0.0
        while True:
            jobs = self._take()
            if not jobs:
                return
            with self._cond:  # the rate limit (or a throttling back-off); stop() cuts it short
                while not self._stop and time.time() < self._next_at:
                    self._cond.wait(self._next_at - time.time())
            try:
                calls = self.send(jobs)
            except Throttled as exc:
                self.throttled += 1
                self.rate = max(self.min_rate, self.rate / 2)
                backoff = min(30.0, max(0.5, backoff * 2))
                with self._cond:
                    self._queue.extendleft(reversed(exc.pending))
                if self.throttled in (1, 10, 100, 1000):
                    self.warn(
                        f"{self.name}: the API is throttling submissions; now at most {self.rate:g} a "
                        f"second, retrying in {exc.retry_after or backoff:.1f}s"
                    )
                self._next_at = time.time() + (exc.retry_after or backoff)
                continue
            except Exception as exc:  # noqa: BLE001 - a bug must not stop the thread every later submit waits on
                self.failed(jobs, exc)
                calls = None
            backoff = 0.0
            self.rate = min(self.max_rate, self.rate + 1)
            # the rate is in API calls: an array of 1,000 jobs is one call
            self._next_at = max(self._next_at, time.time()) + (len(jobs) if calls is None else calls) / self.rate
