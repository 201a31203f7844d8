"""A Batch job's log, from CloudWatch Logs (``/aws/batch/job``, the job's ``logStreamName``).

Followed with the forward token while the job runs (a few running jobs per status round:
LIVE_LOG_JOBS_PER_ROUND, so 10,000 running children never cost 10,000 GetLogEvents every few seconds), and
read once when it ends, ``WORKBENCH_BATCH_LOG_SETTLE`` seconds later, one call unless a page comes back full.
Mixed into :class:`workbench.backends.batch.BatchBackend` (``self._client``, ``self.calls``, ``self._ctx`` are
its).
"""

from __future__ import annotations

import time
from typing import Any, Callable

LOG_GROUP = "/aws/batch/job"
LOG_FOLLOW_INTERVAL = 5.0  # seconds between log fetches of one running job
# running jobs whose log one status round reads, those read longest ago first: 10,000 children running at once must
# not cost 10,000 GetLogEvents every few seconds (CloudWatch allows a few dozen a second); a job that has ended
# gets its log read once, after the settle time, whatever this says
LIVE_LOG_JOBS_PER_ROUND = 8
LOG_PAGE_LIMIT = 10_000  # events a GetLogEvents page holds (the API's most); a full page means more may follow
LOG_PAGE_BYTES = 1_048_576  # ... or this many bytes (messages + 26 bytes each): the API's other cut


def _page_full(events: list[dict]) -> bool:
    """Whether GetLogEvents cut this page short (by count or size), so that the next page may hold more."""
    size = sum(len(str(e.get("message", "")).encode()) + 26 for e in events)
    return len(events) >= LOG_PAGE_LIMIT or size >= LOG_PAGE_BYTES - 65_536


class BatchLogs:
    """Reading a job's log stream: live (a page at a time) and once more after the job ended."""

    _ctx: Any  # BatchBackend's run context, call counters and SDK clients
    calls: Any
    _client: Callable[[str], Any]

    def drain_logs(self, job: Any) -> bool:  # a Batch _Job
        """CloudWatch may still be ingesting the last lines when a job ends: wait out the settle time, then read
        the rest of the log in one call (more only when a page comes back full)."""
        if job.ended is None:
            return True  # never ran (refused or cancelled before it was sent): no log
        if time.time() < job.settle_until:
            return False
        self._follow_logs(job, final=True)
        return True

    def _follow_logs(self, job: Any, final: bool = False) -> None:
        job.log_fetched = time.time()
        if not job.log_stream:
            return
        logs = self._client("logs")
        for _ in range(10000):
            kwargs: dict[str, Any] = {
                "logGroupName": LOG_GROUP,
                "logStreamName": job.log_stream,
                "startFromHead": True,
                "limit": LOG_PAGE_LIMIT,
            }
            if job.log_token:
                kwargs["nextToken"] = job.log_token
            try:
                self.calls["get_log_events"] += 1
                resp = logs.get_log_events(**kwargs)
            except Exception as exc:  # noqa: BLE001
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                if code != "ResourceNotFoundException" and final and self._ctx is not None:
                    self._ctx.warn(f"batch: could not read the logs of job {job.job_id}: {exc}")
                return
            events = resp.get("events", [])
            for e in events:
                job.on_log("stdout", e.get("message", "").rstrip("\n"), e.get("timestamp", 0) / 1000.0)
            token = resp.get("nextForwardToken")
            if token:
                job.log_token = token
            if not token or not _page_full(events):
                return  # the page was not cut short: this is all there is for now
