"""A foreach's sibling tasks as one Kubernetes Indexed Job (a mixin of :class:`KubernetesBackend`).

- One ``create`` for up to 10,000 tasks: the remote base coalesces the runtime's burst of submissions and
  groups siblings (same step, attempt, datastore, namespace); :func:`k8s_manifest.indexed_job_manifest` turns the
  first task's Job into an Indexed Job (completionMode Indexed, backoffLimitPerIndex 0, parallelism from
  ``[kubernetes] parallelism``, else the run's max workers, else all at once) whose index ``i`` runs task ``i``
  of a manifest written to the datastore first (:mod:`workbench.arrays`).
- Each index stays a task: its pod is found in the poller's view of the run (k8s_listing: by the Job's label and
  the completion-index annotation); its log is that pod's; it ends when its pod does, in words from the pod.
- Cancel one task: delete its index's pod (with backoffLimitPerIndex 0 the index fails and is not recreated); an
  index with no pod yet is reported cancelled at once and its pod deleted when it shows up. Cancel every task
  of the array (a cancelled run): delete the Job, one call. The Job is deleted once its last task is reported.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from ..errors import WorkbenchError
from .base import TaskExit
from .k8s_listing import index_set, pod_index
from .k8s_manifest import indexed_job_manifest, job_name
from .k8s_status import EPOCH, container_started, exit_of, is_true, pod_ended
from .remote import JobArray, RemoteJob

ARRAY_LABEL = "workbench.array"


class IndexedJobs:
    """Indexed Jobs for :class:`KubernetesBackend` (which provides api, _lock, conclude, _start_logs, ...)."""

    array_max = 10_000
    submit_batch = 10_000
    coalesce_quiet, coalesce_linger = 0.5, 10.0

    def array_key(self, job: RemoteJob) -> Any:
        s = job.spec
        return (s.step, s.attempt, s.datastore_url, job.namespace)  # type: ignore[attr-defined]

    def parallelism(self, width: int) -> int:
        """``[kubernetes] parallelism``, else ``--max-workers`` (when the user gave it), else all at once."""
        ctx = self._ctx  # type: ignore[attr-defined]
        wanted = self.section.parallelism or (ctx.max_workers if ctx is not None else None) or width  # type: ignore[attr-defined]
        return max(1, min(width, int(wanted)))

    def submit_array(self, jobs: list[RemoteJob]) -> None:
        from ..arrays import manifest_name, write_manifest

        first = jobs[0]
        spec = first.spec
        array_ref = write_manifest(
            self._ctx.datastore,
            spec.run_id,  # type: ignore[attr-defined]
            manifest_name(spec.step, spec.attempt, spec.task_id),
            [j.spec.ref for j in jobs],
        )
        name = job_name(spec.flow, spec.step, f"{spec.task_id}x{len(jobs)}", spec.attempt, spec.run_id)
        manifest = indexed_job_manifest(
            self.manifest_for(spec),
            name=name,
            completions=len(jobs),  # type: ignore[attr-defined]
            parallelism=self.parallelism(len(jobs)),
            array_ref=array_ref,
            array_labels={ARRAY_LABEL: name},
        )
        self.calls["create_namespaced_job"] += 1  # type: ignore[attr-defined]
        self.api.call(
            f"create job {name}",
            self.api.client("batch").create_namespaced_job,  # type: ignore[attr-defined]
            first.namespace,
            manifest,
        )  # type: ignore[attr-defined]
        array = JobArray(list(jobs), manifest=array_ref, name=name, namespace=first.namespace)  # type: ignore[attr-defined]
        for i, job in enumerate(jobs):
            job.array, job.index = array, i

    # ------------------------------------------------------------------ cancel
    def terminate_array(self, array: JobArray) -> None:
        """Delete the whole Indexed Job (its pods go with it): one call; the poller reports the tasks."""
        try:
            self._delete_job(array.name, array.namespace)  # type: ignore[attr-defined]
        except WorkbenchError as exc:
            self._warn(f"kubernetes: could not delete job {array.name}: {exc}")  # type: ignore[attr-defined]
            for task in array.unreported():
                self.conclude(task, self._requested_exit(task, f" (the Job could not be deleted: {exc})"))  # type: ignore[attr-defined]
        self._wake.set()  # type: ignore[attr-defined]

    def terminate_index(self, task) -> None:
        """Delete the pod of one index; an index with no pod yet is done now (its pod is deleted when seen)."""
        pod = task.pod
        if pod is None or pod_index(pod) != task.index:
            with self._lock:  # type: ignore[attr-defined]
                self._doomed_indexes().setdefault((task.namespace, task.array.name), set()).add(task.index)
            self.conclude(task, self._requested_exit(task))  # type: ignore[attr-defined]
            return
        self._delete_pod(pod.metadata.name, task.namespace)

    def _doomed_indexes(self) -> dict[tuple[str, str], set[int]]:
        """(namespace, Indexed Job) -> indexes cancelled before their pod existed: deleted when they show up."""
        doomed: Optional[dict[tuple[str, str], set[int]]] = getattr(self, "_doomed", None)
        if doomed is None:
            doomed = {}
            self._doomed = doomed
        return doomed

    def _doomed_namespaces(self) -> set[str]:
        with self._lock:  # type: ignore[attr-defined]
            return {ns for ns, _ in self._doomed_indexes()}

    def _delete_doomed_pods(self, indexed: dict[tuple[str, int], list]) -> None:
        with self._lock:  # type: ignore[attr-defined]
            doomed = [(ns, name, i) for (ns, name), idx in self._doomed_indexes().items() for i in idx]
        for ns, name, i in doomed:
            for pod in indexed.get((name, i), []):
                if pod.metadata.deletion_timestamp is None and not pod_ended(pod):
                    self._delete_pod(pod.metadata.name, ns)

    def _delete_pod(self, name: str, namespace: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.calls["delete_pod"] += 1  # type: ignore[attr-defined]
            self.api.client("core").delete_namespaced_pod(name, namespace, _request_timeout=30)  # type: ignore[attr-defined]
        except ApiException as exc:
            if exc.status != 404:
                self._warn(f"kubernetes: could not delete pod {name}: {exc.reason}")  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001
            self._warn(f"kubernetes: could not delete pod {name}: {exc}")  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ status
    def update_index(self, task, job, pods: list) -> None:
        """One index of an Indexed Job, from the Job and the pods of that index seen this round."""
        now = time.time()
        if pods:
            task.pod = max(pods, key=lambda p: (p.metadata.creation_timestamp or EPOCH, p.metadata.name))
        pod = task.pod if pods else None
        if task.requested:
            if (
                job is None
                or pod is None
                or pod.metadata.deletion_timestamp is not None
                or pod_ended(pod)
                or now - task.cancel_sent > 30
            ):
                self.conclude(task, self._requested_exit(task))  # type: ignore[attr-defined]
            return
        if job is None:
            if task.seen_job or now - task.submitted > 30:
                self.conclude(
                    task,
                    TaskExit(
                        "failed",
                        None,
                        f"the Job {task.array.name} disappeared (deleted "  # type: ignore[attr-defined]
                        f"outside workbench?)",
                        self._usage(task),
                    ),
                )  # type: ignore[attr-defined]
            return
        task.seen_job = True
        if pod is not None and task.log is None and container_started(pod):
            self._start_logs(task)  # type: ignore[attr-defined]
        if pod is not None and pod_ended(pod):
            if task.log is None:
                self._start_logs(task)  # type: ignore[attr-defined]
            self.conclude(task, self._index_exit(task, pod))  # type: ignore[attr-defined]
            return
        if pod is not None and pod.status is not None and pod.status.phase == "Pending":
            self.check_stuck(task, pod, now, lambda: self._delete_pod(pod.metadata.name, task.namespace))  # type: ignore[attr-defined]
        status = job.status
        failed = index_set(status.failed_indexes if status is not None else None)
        conditions = status.conditions if status is not None else None
        ended = is_true(conditions, "Failed") or is_true(conditions, "FailureTarget")
        if task.index in failed and pod is None:
            self.conclude(
                task,
                TaskExit(
                    "failed",
                    None,
                    f"index {task.index} of Job {task.array.name} failed and "  # type: ignore[attr-defined]
                    f"its pod is gone",
                    self._usage(task),
                ),
            )  # type: ignore[attr-defined]
        elif ended is not None and ended.reason not in ("FailedIndexes", "MaxFailedIndexesExceeded"):
            self.conclude(
                task,
                exit_of(
                    ended,
                    pod,
                    task.spec.settings,
                    task.options.gpu_vendor,  # type: ignore[attr-defined]
                    self._usage(task),
                    0,
                ),
            )  # type: ignore[attr-defined]

    def _index_exit(self, task, pod) -> TaskExit:
        usage = self._usage(task)  # type: ignore[attr-defined]
        usage["index"] = task.index
        if pod.status is not None and pod.status.phase == "Succeeded":
            return TaskExit("succeeded", 0, "", usage)
        return exit_of(None, pod, task.spec.settings, task.options.gpu_vendor, usage, 0)

    def forget(self, task) -> None:
        """A reported task's last V1Pod and what the poller saw (tens of kilobytes): its Indexed Job keeps every
        task until the last is reported, so a 10,000-wide one would otherwise hold 10,000 pods' worth."""
        task.pod = None
        task.seen = None
        task.log = None

    def after_array_report(self, task) -> None:
        """Once the last task of an Indexed Job is reported, delete the Job (its record is in the datastore)."""
        array = task.array
        if array is None or array.unreported():
            return
        with self._lock:  # type: ignore[attr-defined]
            self._doomed_indexes().pop((array.namespace, array.name), None)
        if array.terminated:
            return
        array.terminated = time.time()
        try:
            self._delete_job(array.name, array.namespace)  # type: ignore[attr-defined]
        except WorkbenchError:
            pass  # end_run sweeps the run's Jobs by label
