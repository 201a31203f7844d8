"""Why a submitted remote task is not running yet, reported live as it changes.

Batch says it in a job's status (SUBMITTED, PENDING, RUNNABLE, STARTING) and ``statusReason``; Kubernetes
in the pod's phase, its PodScheduled condition (the scheduler's message) and its container's waiting
state. The backends call :func:`say_waiting` on every poll; only a change reaches the run's
``RunContext.waiting`` (a ``TaskWaiting`` event), and "" once the task runs or ends.
"""

from __future__ import annotations

from typing import Any, Optional

BATCH_WAITING = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING")
BATCH_MEANING = {
    "SUBMITTED": "submitted; the scheduler has not looked at it yet",
    "PENDING": "waiting for the jobs it depends on",
    "RUNNABLE": "queued: waiting for a compute environment with room",
    "STARTING": "placed on an instance; pulling the image and starting the container",
}


def say_waiting(ctx, job, backend: str, reason: str) -> None:
    """Tell the run why ``job`` waits (``reason``; "" when it no longer does), once per change."""
    said: Optional[str] = getattr(job, "waiting_said", None)
    if reason == (said or "") or ctx is None:
        return
    job.waiting_said = reason
    report = getattr(ctx, "waiting", None)
    if report is not None:
        report(job.spec.pathspec, job.spec.step, backend, reason)


def batch_reason(status: str, described: dict[str, Any], settings, queue: str) -> str:
    """A Batch job's wait in words: its status, what that means, and AWS's ``statusReason`` when given."""
    words = f"{status}: {BATCH_MEANING.get(status, status.lower())}"
    if status == "RUNNABLE":
        words += (
            f" (queue {queue}, asking cpu={settings.cpu:g} memory={settings.memory}M"
            + (f" gpu={settings.gpu}" if settings.gpu else "")
            + ")"
        )
    aws = described.get("statusReason")
    return f"{words}; AWS says: {aws}" if aws else words


def pod_pending_reason(pod, stuck: Optional[str]) -> Optional[str]:
    """A Pending pod's wait in words (None when the pod is not Pending): the stuck reason the backend
    found (unschedulable with the scheduler's message, an image that cannot be pulled), else the
    PodScheduled condition or the container's waiting reason."""
    status = getattr(pod, "status", None)
    if status is None or status.phase != "Pending":
        return None
    if stuck:
        return f"Pending: {stuck}"
    for c in status.conditions or []:
        if c.type == "PodScheduled" and c.status == "False":
            return f"Pending: not scheduled ({c.reason or 'no reason'}{': ' + c.message if c.message else ''})"
    for cs in status.container_statuses or []:
        waiting = cs.state.waiting if cs.state is not None else None
        if waiting is not None and waiting.reason:
            return f"Pending: container {waiting.reason}{': ' + waiting.message if waiting.message else ''}"
    scheduled = any(c.type == "PodScheduled" and c.status == "True" for c in status.conditions or [])
    return "Pending: scheduled; starting the container" if scheduled else "Pending: waiting for the scheduler"
