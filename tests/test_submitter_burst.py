"""The submitter coalesces a burst of submissions so that siblings go out as one array. A foreach wider than one
scheduler event reaches it in slices, with gaps longer than its quiet time while the runtime writes the next
slice's specs; the runtime's hint (``more_coming``) keeps the slices together, so a 1,000-wide foreach is one
array job / one Indexed Job (as seen before the hint: two Indexed Jobs of 500, each with its own parallelism)."""

from __future__ import annotations

import threading
import time

from tests.test_array_base import _spec
from workbench.backends.remote import RemoteJob
from workbench.backends.submitter import Submitter


def _jobs(n, start=0):
    return [RemoteJob(_spec(str(i)), lambda *a: None, lambda e: None) for i in range(start, start + n)]


def _submitter(batches):
    lock = threading.Lock()

    def send(jobs):
        with lock:
            batches.append([j.spec.task_id for j in jobs])
        return 1

    return Submitter(send, rate=1000.0, max_rate=1000.0, batch_size=10_000, quiet=0.1, linger=0.5, name="burst")


def _wait(pred, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline and not pred():
        time.sleep(0.02)
    return pred()


def test_slices_of_one_burst_go_as_one_batch_while_the_runtime_says_more_are_coming():
    batches: list[list[str]] = []
    sub = _submitter(batches)
    sub.start()
    try:
        sub.more_coming(True)
        for first in (0, 50, 100):  # three scheduler events, each longer apart than quiet and linger together
            for job in _jobs(50, first):
                sub.put(job)
            time.sleep(0.4)
        assert batches == []  # still waiting for the rest of the burst
        sub.more_coming(False)
        assert _wait(lambda: len(batches) == 1)
        assert batches == [[str(i) for i in range(150)]]
    finally:
        sub.stop()


def test_without_the_hint_a_gap_longer_than_quiet_ends_the_batch():
    batches: list[list[str]] = []
    sub = _submitter(batches)
    sub.start()
    try:
        for job in _jobs(5):
            sub.put(job)
        assert _wait(lambda: len(batches) == 1)
        time.sleep(0.3)
        for job in _jobs(5, 5):
            sub.put(job)
        assert _wait(lambda: len(batches) == 2)
        assert batches == [["0", "1", "2", "3", "4"], ["5", "6", "7", "8", "9"]]
    finally:
        sub.stop()
