"""Pods that wait to start: a mixin of :class:`.kubernetes.KubernetesBackend`.

A Pending pod either waits for room on the cluster (it fits an empty node, or the cluster autoscaler is
adding one) or can never start (no node fits, no image, bad config). This tells the two apart, warns once
and fails the task after the pending timeout. Its attributes (api, _ctx, conclude, image_for,
fits_some_node...) come from the class it is mixed into, like :mod:`.k8s_indexed`.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

from ..datastore.records import TaskStatus
from ..errors import WorkbenchError
from .base import TaskExit
from .k8s_status import EPOCH, stuck_reason

PENDING_TIMEOUT = 300.0  # seconds a pod may stay unschedulable / unable to start before the task fails
SCALE_UP_TIMEOUT = 900.0  # seconds an unschedulable pod may wait while the cluster autoscaler adds a node


def pending_timeout() -> float:
    try:
        return float(os.environ.get("WORKBENCH_K8S_PENDING_TIMEOUT", PENDING_TIMEOUT))
    except ValueError:
        return PENDING_TIMEOUT


class PendingPods:
    """check_stuck and the event look-ups behind it, shared by plain Jobs and Indexed-Job pods."""

    _warned_queue: bool  # set by KubernetesBackend: the "waits for room" warning is said once a run

    def check_stuck(self, task: Any, pod, now: float, give_up: Callable[[], None]) -> None:
        """A Pending pod: one that only waits for room on the cluster waits; one that cannot ever start (no node
        fits, no image, bad config) is warned about once, then failed after the pending timeout (``give_up``
        deletes what runs it: the Job, or the pod of an index)."""
        stuck = self._stuck_reason(task, pod)
        if stuck is None:
            task.stuck_since = None
            return
        if stuck.startswith("unschedulable") and self.fits_some_node(task.spec.settings, task.options):
            # it fits an empty node: it waits for room while other pods run (a wide foreach queues like this)
            task.stuck_since = None
            if not self._warned_queue and self._ctx is not None:
                self._warned_queue = True
                self._ctx.warn(
                    f"kubernetes: step {task.spec.step} waits for room on the cluster ({stuck}); "
                    f"it starts when running pods finish"
                )
            return
        task.stuck_since = task.stuck_since or now
        limit = pending_timeout()
        if not task.warned and self._ctx is not None:
            task.warned = True
            stuck = self._stuck_reason(task, pod, events=True) or stuck
            self._ctx.warn(
                f"kubernetes: step {task.spec.step} (job {task.name}) cannot start: {stuck}; the task "
                f"fails if this lasts {limit:.0f}s (WORKBENCH_K8S_PENDING_TIMEOUT)"
            )
        if now - task.stuck_since < limit:
            return
        if (
            stuck.startswith("unschedulable")
            and now - task.stuck_since < max(limit, SCALE_UP_TIMEOUT)
            and self._event_message(pod, "TriggeredScaleUp")
        ):
            return  # the cluster autoscaler is adding a node for it
        stuck = self._stuck_reason(task, pod, events=True) or stuck
        try:
            give_up()
        except WorkbenchError as exc:
            if self._ctx is not None:
                self._ctx.warn(f"kubernetes: could not delete job {task.name}: {exc}")
        self.conclude(
            task,
            TaskExit(
                TaskStatus.FAILED, None, f"{stuck} (pending for {now - task.stuck_since:.0f}s)", self._usage(task)
            ),
        )

    def _stuck_reason(self, task: Any, pod, events: bool = False) -> Optional[str]:
        events_of = (lambda reason, prefix: self._event_message(pod, reason, prefix)) if events else None
        return stuck_reason(
            pod,
            task.spec.settings,
            task.options.gpu_vendor,
            task.options.node_selector,
            lambda: self.image_for(task.spec.settings),
            events_of,
        )

    def _event_message(self, pod, reason: str, prefix: str = "") -> Optional[str]:
        """The latest event of ``reason`` about the pod (events are best effort: None when not readable)."""
        try:
            events = self.api.call(
                "list events",
                self.api.client("core").list_namespaced_event,
                pod.metadata.namespace,
                field_selector=f"involvedObject.name={pod.metadata.name}",
            ).items
        except WorkbenchError:
            return None
        found = [e for e in events if e.reason == reason and (e.message or "").startswith(prefix)]
        if not found:
            return None
        latest = max(found, key=lambda e: e.last_timestamp or e.event_time or e.first_timestamp or EPOCH)
        return latest.message
