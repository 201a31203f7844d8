"""Tasks as Kubernetes Jobs, through the official ``kubernetes`` client (imported lazily, in k8s_client).

- One Job per task attempt, built by :func:`k8s_manifest.job_manifest` (a pure function) from the Job
  template; its container runs the code-package bootstrap (workbench.package), which downloads the run's
  package from the S3 datastore and execs the task entrypoint, as on Batch. The task reaches S3 with the
  endpoint/region in ``WORKBENCH_S3_ENDPOINT_URL``/``WORKBENCH_S3_REGION``; credentials never go into the
  manifest: on a real cluster give the pod an IAM role (IRSA / EKS Pod Identity through ``service_account``)
  or a Secret with the AWS_* variables (``secrets = ["aws-creds"]``, mounted with envFrom).
- The run's lifecycle (package upload, submitter, poller with back-off, report after the log drains,
  cancel, end_run) is the shared one of :mod:`workbench.backends.remote`. What is Kubernetes' is here: the
  poller's round lists the run's Jobs and the pods it still needs by label (k8s_listing: a few calls
  per namespace, and never the pods of tasks already reported, however many tasks run) and turns their status into words (k8s_status); each pod's log is followed on a thread of its own
  (k8s_logs); the cluster's nodes say whether a pending pod could ever fit (k8s_nodes); the API client and
  its configuration are in k8s_client.
- A pod that stays Pending because no node fits it (FailedScheduling), its image cannot be pulled or its
  container cannot be configured is reported once with ``ctx.warn`` and failed after
  ``WORKBENCH_K8S_PENDING_TIMEOUT`` seconds (default 300).
- A foreach's sibling tasks go out as one Indexed Job (k8s_indexed): one create for up to 10,000 tasks, each
  index still a task of its own (its pod, its log, its status in words). A @parallel gang is an Indexed Job
  with a headless Service (k8s_gang): node 0 is ``<job>-0.<service>``; one node stopping stops the gang.
- ``cancel`` and timeouts delete the Job with propagationPolicy=Background (its pods go too); ``end_run``
  deletes every Job of the run by label selector and waits (bounded) until their pods are gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Optional

from ..datastore.records import TaskStatus
from ..errors import BackendError, WorkbenchError
from ..redact import redact_env, secret_env
from .base import LogCallback, TaskExit, TaskHandle, TaskSpec
from .k8s_client import KubernetesApi, ThrottledByApi
from .k8s_gang import GangJobs
from .k8s_indexed import IndexedJobs
from .k8s_listing import list_round
from .k8s_logs import PodLog
from .k8s_manifest import (
    JobOptions,
    describe_request,
    gpu_key,
    job_manifest,
    job_name,
    label_value,
    load_template,
)
from .k8s_nodes import NodeCapacity
from .k8s_pending import PENDING_TIMEOUT, PendingPods, pending_timeout
from .k8s_status import EPOCH, container_started, exit_of, is_true, pod_ended, terminated, unschedulable_reason
from .remote import RemoteBackend, RemoteHandle, RemoteJob
from .waiting import pod_pending_reason, say_waiting

POLL = 1.0  # seconds between status rounds while pods change (WORKBENCH_K8S_POLL)
LOG_DRAIN = 10.0  # after a task ends, how long its log may take to arrive
END_RUN_WAIT = 60.0  # how long end_run waits for the run's pods to go
DEADLINE_GRACE = 30  # activeDeadlineSeconds = timeout + this: the task's own timer fires first and reports


@dataclass(eq=False)
class _Task(RemoteJob):
    name: str = ""
    namespace: str = "default"
    options: JobOptions = None  # type: ignore[assignment]
    manifest: Optional[dict] = None
    pod: Any = None  # the last V1Pod seen
    seen_job: bool = False
    seen: Any = None  # what the last round saw of the Job and its pods (to tell whether anything changed)
    log: Optional[PodLog] = None
    stuck_since: Optional[float] = None
    finished_seen: Optional[float] = None
    warned: bool = False


class _KubernetesHandle(RemoteHandle):
    job: _Task  # the backend builds these handles over its own jobs only

    @property
    def job_name(self) -> str:
        return self.job.name


def _seen(job, pods: list) -> tuple:
    """What a round saw of a Job and its pods, enough to tell whether anything moved."""
    conditions = (
        tuple(sorted((c.type, c.status) for c in (job.status.conditions or [])))
        if job is not None and job.status is not None
        else None
    )
    states = []
    for p in pods:
        cs = (p.status.container_statuses or []) if p.status is not None else []
        kinds = tuple(
            k
            for c in cs
            for k in ("waiting", "running", "terminated")
            if c.state is not None and getattr(c.state, k) is not None
        )
        states.append((p.metadata.name, p.status.phase if p.status is not None else None, kinds))
    return job is not None, conditions, tuple(sorted(states))


class KubernetesBackend(PendingPods, GangJobs, IndexedJobs, NodeCapacity, RemoteBackend):
    name = "kubernetes"
    poll_env = "WORKBENCH_K8S_POLL"
    poll_default = POLL
    poll_max = 5.0
    log_drain = LOG_DRAIN
    image_requirement = " with python3 and boto3"
    submit_rate, submit_rate_max = 20.0, 100.0  # Job creations a second; a 429 halves it

    def __init__(self, config):
        super().__init__(config)
        self.api = KubernetesApi(self.section, str(getattr(config, "root", "") or "") or None)
        self._template: Optional[dict] = None
        self._namespaces: set[str] = set()
        self._selector = ""
        self._nodes = None
        self._warned_queue = False
        self._every_pod = False  # list every pod of the run each round (set when pods lack the index label)

    @property
    def section(self):
        return self.config.model.kubernetes

    # ------------------------------------------------------------------ settings
    def options_for(self, settings) -> JobOptions:
        opts = JobOptions.from_config(self.section, settings)
        opts.deadline_grace = DEADLINE_GRACE
        return opts

    def template(self) -> dict:
        if self._template is None:
            self._template = load_template(self.section.template, str(getattr(self.config, "root", "") or "") or None)
        return self._template

    # ------------------------------------------------------------------ pre-flight
    def ping(self) -> None:
        """Raise EngineUnreachable / CredentialsError unless the API server answers."""
        self.api.ping()

    def check(self, settings) -> None:
        self.image_for(settings)
        opts = self.options_for(settings)
        gpu_key(opts.gpu_vendor)
        self.template()
        self.ping()

    # ------------------------------------------------------------------ run lifecycle
    def prepare_run(self, ctx) -> None:
        self.ping()
        self._selector = f"workbench.flow={label_value(ctx.flow)},workbench.run={label_value(ctx.run_id)}"

    def cleanup_run(self, ctx) -> None:
        """Delete every Job of the run by label (whatever the tasks left) and wait (bounded) for the pods to go."""
        with self._lock:
            namespaces = set(self._namespaces)
        errors = []
        for ns in sorted(namespaces):
            try:
                jobs = self.api.call(
                    "list jobs", self.api.client("batch").list_namespaced_job, ns, label_selector=self._selector
                ).items
                for job in jobs:
                    self._delete_job(job.metadata.name, ns)
                self.sweep_services(ns, self._selector)  # the headless Services of @parallel gangs
            except WorkbenchError as exc:
                errors.append(str(exc))
        deadline = time.time() + (END_RUN_WAIT if namespaces else 0)
        while namespaces and time.time() < deadline and not errors:
            try:
                pods = sum(
                    len(
                        self.api.call(
                            "list pods", self.api.client("core").list_namespaced_pod, ns, label_selector=self._selector
                        ).items
                    )
                    for ns in namespaces
                )
            except WorkbenchError as exc:
                errors.append(str(exc))
                break
            if not pods:
                break
            time.sleep(0.3)
        else:
            if namespaces and not errors:
                ctx.warn(
                    f"kubernetes: pods of run {ctx.run_id} still terminating after {END_RUN_WAIT:.0f}s "
                    f"(label selector {self._selector})"
                )
        for task in list(self._jobs.values()):
            self.stop_logs(task)
        if errors:
            ctx.warn(f"kubernetes: could not delete every Job of run {ctx.run_id}: {errors[0]}")

    # ------------------------------------------------------------------ held / release (workbench cancel)
    def held_ref(self, spec: TaskSpec) -> dict:
        return {
            "namespace": self.options_for(spec.settings).namespace,
            "job": job_name(spec.flow, spec.step, spec.task_id, spec.attempt, spec.run_id),
        }

    def release(self, flow: str, run_id: str, held: list[dict], warn) -> list[str]:
        """Delete the run's Jobs (by label, in every namespace it recorded) and wait for their pods."""
        from types import SimpleNamespace

        namespaces = {str(h.get("namespace") or "default") for h in held} or {self.section.namespace or "default"}
        self._selector = f"workbench.flow={label_value(flow)},workbench.run={label_value(run_id)}"
        before = []
        for ns in sorted(namespaces):
            try:
                before += [
                    f"Job {ns}/{j.metadata.name}"
                    for j in self.api.call(
                        "list jobs", self.api.client("batch").list_namespaced_job, ns, label_selector=self._selector
                    ).items
                ]
            except WorkbenchError as exc:
                warn(f"kubernetes: {exc}")
        with self._lock:
            self._namespaces = set(namespaces)
        self.cleanup_run(SimpleNamespace(run_id=run_id, warn=warn))
        return before

    # ------------------------------------------------------------------ submitting
    def manifest_for(self, spec: TaskSpec) -> dict:
        from ..package import ROOT_PLACEHOLDER, bootstrap_command

        s = spec.settings
        if self._package_url is None:
            raise BackendError("kubernetes: submit before start_run (no code package)")
        command = bootstrap_command(self._package_url, spec.command(python="python3", root=ROOT_PLACEHOLDER))
        labels = {**spec.labels, "workbench.attempt": str(spec.attempt)}
        labels.setdefault("workbench.flow", spec.flow)
        labels.setdefault("workbench.run", spec.run_id)
        labels.setdefault("workbench.step", spec.step)
        labels.setdefault("workbench.task", spec.task_id)
        return job_manifest(
            name=job_name(spec.flow, spec.step, spec.task_id, spec.attempt, spec.run_id),
            settings=s,
            image=self.image_for(s),
            command=command,
            # secret-looking values are <redacted> in the task's spec: the pod's env is where they reach it
            env={**redact_env(s.env), **secret_env(s.env or {}), **self._task_env, **self.environment_env(spec)},
            labels=labels,
            options=self.options_for(s),
            template=self.template(),
        )

    def new_job(self, spec: TaskSpec, on_log: LogCallback, on_exit: Callable[[TaskExit], None]) -> _Task:
        """The manifest is built on the submitter thread (and dropped once sent): a queued task stays small."""
        options = self.options_for(spec.settings)
        self.image_for(spec.settings)  # a step without an image is refused here, in the caller's thread
        return _Task(
            spec,
            on_log,
            on_exit,
            job_name(spec.flow, spec.step, spec.task_id, spec.attempt, spec.run_id),
            options.namespace,
            options,
        )

    def prepare(self, job: RemoteJob) -> None:
        assert isinstance(job, _Task)
        with self._lock:
            self._namespaces.add(job.namespace)  # end_run sweeps every namespace the run used

    def job_key(self, job: RemoteJob) -> Any:
        assert isinstance(job, _Task)
        return job.name

    def handle_for(self, job: RemoteJob) -> TaskHandle:
        return _KubernetesHandle(self, job)

    def submit_job(self, job: RemoteJob) -> None:
        assert isinstance(job, _Task)
        manifest = self.manifest_for(job.spec)
        self.calls["create_namespaced_job"] += 1
        self.api.call(f"create job {job.name}", self.api.client("batch").create_namespaced_job, job.namespace, manifest)

    def is_throttling(self, exc: BaseException) -> bool:
        return isinstance(exc, ThrottledByApi)

    # ------------------------------------------------------------------ cancel
    def _delete_job(self, name: str, namespace: str) -> None:
        self.calls["delete_job"] += 1
        self.api.delete_job(name, namespace)

    def terminate(self, job: RemoteJob) -> None:
        assert isinstance(job, _Task)
        if job.array is not None:
            self.terminate_index(job)
            self._wake.set()
            return
        try:
            self._delete_job(job.name, job.namespace)
        except WorkbenchError as exc:
            self._warn(f"kubernetes: could not delete job {job.name}: {exc}")
            self.conclude(job, self._requested_exit(job, f" (the Job could not be deleted: {exc})"))
        self._wake.set()

    def _requested_exit(self, task: RemoteJob, note: str = "") -> TaskExit:
        reason = task.requested or "cancelled"
        kind = TaskStatus.TIMEOUT if task.requested_timeout else TaskStatus.CANCELLED
        return TaskExit(kind, None, reason + note, self.usage(task))

    # ------------------------------------------------------------------ status
    def poll(self, active: list[RemoteJob]) -> bool:
        """Update every task from one view of its namespace (k8s_listing: the run's Jobs, its pods that have not
        succeeded, and the pods of tasks that just succeeded; a few calls, whatever the width)."""
        tasks = [t for t in active if isinstance(t, _Task)]
        jobs: dict[str, Any] = {}
        pods: dict[str, list] = {}
        indexed: dict[tuple[str, int], list] = {}  # (Indexed Job, completion index) -> its pods
        for ns in sorted({t.namespace for t in tasks} | self._doomed_namespaces()):
            view = list_round(
                partial(self._list, "jobs", ns),
                partial(self._list, "pods", ns),
                self._selector,
                [t for t in tasks if t.namespace == ns],
                every_pod=self._every_pod,
            )
            if view.unlabelled and not self._every_pod:
                self._every_pod = True  # pods without the completion-index label (Kubernetes < 1.28)
            jobs.update(view.jobs)
            pods.update(view.pods)
            indexed.update(view.indexed)
        self._delete_doomed_pods(indexed)
        changed = False

        def row(task):
            if task.array is not None:
                return task, jobs.get(task.array.name), indexed.get((task.array.name, task.index), [])
            return task, jobs.get(task.name), pods.get(task.name, [])

        # causes before consequences: a task whose pod ended by itself is reported first in a round, before the
        # nodes its Job's controller killed for it (the scheduler names a gang's culprit by time once every node
        # has answered; this order makes the reason sent with the first cancels the right one more often)
        rows = sorted(
            map(row, tasks), key=lambda r: not any(pod_ended(p) and p.metadata.deletion_timestamp is None for p in r[2])
        )
        for task, job, its_pods in rows:
            try:
                seen = _seen(job, its_pods)
                changed = changed or seen != task.seen
                task.seen = seen
                if task.array is not None:
                    self.update_index(task, job, its_pods)
                else:
                    self._update(task, job, its_pods)
            except WorkbenchError as exc:
                self._warn(f"kubernetes: job {task.name}: {exc}")
        return changed

    def _list(self, kind: str, namespace: str, **selectors: str) -> Any:
        self.calls["list"] += 1
        if kind == "jobs":
            return self.api.call("list jobs", self.api.client("batch").list_namespaced_job, namespace, **selectors)
        return self.api.call("list pods", self.api.client("core").list_namespaced_pod, namespace, **selectors)

    def _update(self, task: _Task, job, pods: list) -> None:
        now = time.time()
        if pods:
            task.pod = max(pods, key=lambda p: (p.metadata.creation_timestamp or EPOCH, p.metadata.name))
        if task.requested:
            if job is None or job.metadata.deletion_timestamp is not None or now - task.cancel_sent > 30:
                self.conclude(task, self._requested_exit(task))
            return
        if job is None:
            if task.seen_job or now - task.submitted > 30:
                self.conclude(
                    task,
                    TaskExit(
                        TaskStatus.FAILED,
                        None,
                        f"the Job {task.name} disappeared (deleted outside workbench?)",
                        self._usage(task),
                    ),
                )
            return
        task.seen_job = True
        pod = task.pod
        if pod is not None:
            say_waiting(self._ctx, task, "kubernetes", pod_pending_reason(pod, self._stuck_reason(task, pod)) or "")
        if pod is not None and task.log is None and container_started(pod):
            self._start_logs(task)
        conditions = job.status.conditions if job.status else None
        finished = (
            is_true(conditions, "Complete")
            or is_true(conditions, "Failed")
            or is_true(conditions, "SuccessCriteriaMet")
            or is_true(conditions, "FailureTarget")
        )
        if finished is not None:
            if pod is not None and task.log is None:
                self._start_logs(task)
            task.finished_seen = task.finished_seen or now
            if (
                finished.type in ("Failed", "FailureTarget")
                and finished.reason != "DeadlineExceeded"
                and pod is not None
                and terminated(pod) is None
                and now - task.finished_seen < 5
            ):
                return  # the pod's final container state (exit code, OOMKilled) is a moment behind the Job's
            self.conclude(task, self._exit_of(task, finished, pod))
            return
        if (
            pod is not None
            and pod.status is not None
            and pod.status.phase == "Failed"
            and pod.status.reason == "Evicted"
        ):
            self.conclude(task, self._exit_of(task, None, pod))
            return
        if pod is not None:
            self.check_stuck(task, pod, now, lambda: self._delete_job(task.name, task.namespace))

    def _usage(self, task: _Task) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "job": task.array.name if task.array is not None else task.name,
            "namespace": task.namespace,
        }
        if task.array is not None:
            usage["index"] = task.index
        if task.pod is not None:
            usage["pod"] = task.pod.metadata.name
            if task.pod.spec is not None and task.pod.spec.node_name:
                usage["node"] = task.pod.spec.node_name
        return usage

    def _exit_of(self, task: _Task, condition, pod) -> TaskExit:
        return exit_of(condition, pod, task.spec.settings, task.options.gpu_vendor, self._usage(task), DEADLINE_GRACE)

    def usage(self, job: RemoteJob) -> dict[str, Any]:
        return self._usage(job)  # type: ignore[arg-type]

    def after_report(self, job: RemoteJob) -> None:
        """Its record is in the datastore now: free the cluster of it (a cancelled one is deleted already;
        end_run sweeps whatever is left)."""
        assert isinstance(job, _Task)
        if job.array is not None and job.array.gang:
            self.after_gang_report(job.array)
            return
        if job.array is not None:
            self.after_array_report(job)
            return
        if not job.requested and job.phase == "sent":
            try:
                self._delete_job(job.name, job.namespace)
            except WorkbenchError:
                pass

    # ------------------------------------------------------------------ logs
    def _start_logs(self, task: _Task) -> None:
        with self._lock:
            if task.log is not None or task.pod is None:
                return
            self.calls["pod_log_streams"] += 1
            task.log = PodLog(
                self.api,
                task.namespace,
                task.pod.metadata.name,
                on_line=lambda text, ts: task.on_log("stdout", text, ts),
                should_stop=lambda: task.done or self._stop.is_set(),
                on_end=lambda: self._log_ended(task),
            )
        task.log.start()

    def _log_ended(self, task: _Task) -> None:
        self._wake.set()
        if task.outcome is not None:
            self.settle(task)

    def drain_logs(self, job: RemoteJob) -> bool:
        assert isinstance(job, _Task)
        return job.log is None or not job.log.alive()

    def stop_logs(self, job: RemoteJob) -> None:
        assert isinstance(job, _Task)
        if job.log is not None:
            job.log.close()


__all__ = ["KubernetesBackend", "PENDING_TIMEOUT", "pending_timeout", "unschedulable_reason", "describe_request"]
