"""Kubernetes pod and Job status in words: pure functions of the API objects, no API calls.

The backend (workbench.backends.kubernetes) reads the objects; this module says what they mean for a task:
why a Pending pod cannot start, and how a finished Job ended (succeeded, OOMKilled with its limit,
DeadlineExceeded, evicted, an exit code).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from ..datastore.records import TaskStatus
from ..exitcodes import TASK_TIMEOUT as EXIT_TIMEOUT
from .base import TaskExit
from .k8s_manifest import CONTAINER, resources

IMAGE_WAITING = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")
CONFIG_WAITING = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_ts(text: str) -> Optional[float]:
    """RFC 3339 with up to nanoseconds ("2024-01-01T00:00:00.123456789Z") -> epoch seconds."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return None
    base = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + (float("0" + m.group(2)) if m.group(2) else 0.0)


def is_true(conditions, ctype: str):
    for c in conditions or []:
        if c.type == ctype and c.status == "True":
            return c
    return None


def container_status(pod):
    for cs in (pod.status.container_statuses if pod.status else None) or []:
        if cs.name == CONTAINER:
            return cs
    return None


def terminated(pod):
    cs = container_status(pod)
    return cs.state.terminated if cs is not None and cs.state is not None else None


def pod_ended(pod) -> bool:
    """The pod reached a terminal phase (Succeeded or Failed)."""
    return pod.status is not None and pod.status.phase in ("Succeeded", "Failed")


def container_started(pod) -> bool:
    cs = container_status(pod)
    return cs is not None and cs.state is not None and (cs.state.running is not None or cs.state.terminated is not None)


def unschedulable_reason(message: str, settings, gpu_vendor: str, node_selector: dict) -> str:
    """The scheduler's message with what was asked for, e.g. "insufficient nvidia.com/gpu: requested 1"."""
    res = resources(settings, gpu_vendor)
    asked = {**res["limits"], **res["requests"]}
    words = []
    for name in dict.fromkeys(re.findall(r"Insufficient ([\w./-]*\w)", message)):
        words.append(f"insufficient {name}: requested {asked.get(name, '?')}")
    if "node affinity/selector" in message and node_selector:
        words.append("no node matches the node selector " + ", ".join(f"{k}={v}" for k, v in node_selector.items()))
    head = "; ".join(words) if words else "no node can fit the pod"
    return f"unschedulable: {head} (scheduler: {message.strip()})"


def stuck_reason(
    pod,
    settings,
    gpu_vendor: str,
    node_selector: dict,
    image_of: Callable[[], str],
    event_message: Optional[Callable[[str, str], Optional[str]]] = None,
) -> Optional[str]:
    """Why a Pending pod cannot start, in words (None: it is just starting). The pod's status says enough
    to decide; ``event_message(reason, prefix)``, when given, adds the details events carry (read only to
    warn or fail: a queued foreach of hundreds of pods must not cost an events call per pod and poll)."""
    if pod.status is None or pod.status.phase != "Pending":
        return None
    for c in pod.status.conditions or []:
        if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
            message = (event_message and event_message("FailedScheduling", "")) or c.message or ""
            return unschedulable_reason(message, settings, gpu_vendor, node_selector)
    cs = container_status(pod)
    waiting = cs.state.waiting if cs is not None and cs.state is not None else None
    if waiting is None:
        return None
    if waiting.reason in IMAGE_WAITING:
        image = cs.image or image_of()
        detail = (event_message and event_message("Failed", "Failed to pull image")) or waiting.message or ""
        return f"image {image} cannot be pulled ({waiting.reason}){': ' + detail if detail else ''}"
    if waiting.reason in CONFIG_WAITING:
        return f"the container cannot be created ({waiting.reason}): {waiting.message or ''}".rstrip(": ")
    return None


def exit_of(condition, pod, settings, gpu_vendor: str, usage: dict[str, Any], deadline_grace: int) -> TaskExit:
    """How a Job ended, from its finishing condition (None: none yet) and its pod; with when its container
    ended (the container's ``finishedAt``), when the pod says."""
    cs = container_status(pod) if pod is not None else None
    term = cs.state.terminated if cs is not None and cs.state is not None else None
    result = _exit_of(condition, pod, term, settings, gpu_vendor, usage, deadline_grace)
    finished = getattr(term, "finished_at", None) if term is not None else None
    if finished is not None and hasattr(finished, "timestamp"):
        result.ended_at = finished.timestamp()
    return result


def _exit_of(condition, pod, term, settings, gpu_vendor: str, usage: dict[str, Any], deadline_grace: int) -> TaskExit:
    code = term.exit_code if term is not None else None
    if condition is not None and condition.type in ("Complete", "SuccessCriteriaMet"):
        return TaskExit(TaskStatus.SUCCEEDED, code if code is not None else 0, "", usage)
    if pod is not None and pod.status is not None and pod.status.reason == "Evicted":
        return TaskExit(
            TaskStatus.FAILED,
            code,
            f"evicted from node {usage.get('node', '?')}: {pod.status.message or 'the node ran short of resources'}",
            usage,
        )
    why = condition.reason if condition is not None else ""
    if term is not None and term.reason == "OOMKilled":
        limit = resources(settings, gpu_vendor)["limits"]["memory"]
        return TaskExit(
            TaskStatus.OOM,
            code,
            f"OOMKilled: the container went over its memory limit of {limit} (exit code {code}); ask for more memory",
            usage,
        )
    if why == "DeadlineExceeded":
        return TaskExit(
            TaskStatus.TIMEOUT,
            code,
            f"DeadlineExceeded: the Job ran longer than its activeDeadlineSeconds "
            f"({settings.timeout}s timeout + {deadline_grace}s grace)",
            usage,
        )
    if code == EXIT_TIMEOUT:
        return TaskExit(TaskStatus.TIMEOUT, code, f"timed out after {settings.timeout}s", usage)
    if term is not None and code is not None:
        detail = f" ({term.reason}{': ' + term.message if term.message else ''})" if term.reason else ""
        return TaskExit(TaskStatus.FAILED, code, f"exited with code {code}{detail}", usage)
    message = condition.message if condition is not None else ""
    return TaskExit(TaskStatus.FAILED, None, f"the Job failed ({why}{': ' + message if message else ''})", usage)
