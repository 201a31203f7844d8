"""Tasks as Kubernetes Jobs, through the official ``kubernetes`` client (imported only here, lazily).

- Configuration: ``[kubernetes] kubeconfig`` (relative to the project root) or ``KUBECONFIG`` or
  ``~/.kube/config``, with ``[kubernetes] context``; in a pod without any kubeconfig, the in-cluster config
  (service account token). The API server not answering is an :class:`EngineUnreachable` naming its URL.
- One Job per task attempt, built by :func:`k8s_manifest.job_manifest` (a pure function) from the Job
  template; its container runs the code-package bootstrap (workbench.package), which downloads the run's
  package from the S3 datastore and execs the task entrypoint, as on Batch. The task reaches S3 with the
  endpoint/region in ``WORKBENCH_S3_ENDPOINT_URL``/``WORKBENCH_S3_REGION``; credentials never go into the
  manifest: on a real cluster give the pod an IAM role (IRSA / EKS Pod Identity through ``service_account``)
  or a Secret with the AWS_* variables (``secrets = ["aws-creds"]``, mounted with envFrom).
- One poller thread per backend lists the run's Jobs and Pods by label (two calls per round, however many
  tasks run) and turns their status into words; one log thread per pod follows its log (``follow=True``)
  into ``on_log``. Kubernetes merges a container's stdout and stderr into one log, so every line arrives
  as "stdout".
- A pod that stays Pending because no node fits it (FailedScheduling), its image cannot be pulled or its
  container cannot be configured is reported once with ``ctx.warn`` and failed after
  ``WORKBENCH_K8S_PENDING_TIMEOUT`` seconds (default 300).
- ``cancel`` and timeouts delete the Job with propagationPolicy=Background (its pods go too); ``end_run``
  deletes every Job of the run by label selector and waits (bounded) until their pods are gone.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import BackendError, ConfigError, CredentialsError, EngineUnreachable, WorkbenchError
from .base import Backend, Capacity, LogCallback, RunContext, TaskExit, TaskHandle, TaskSpec
from .k8s_status import (EPOCH, container_started, container_status, exit_of, is_true, parse_ts, stuck_reason,
                         terminated, unschedulable_reason)
from .k8s_manifest import (CONTAINER, JOB_LABEL, JobOptions, describe_request, gpu_key, job_manifest, job_name,
                           label_value, load_template, resources)

PENDING_TIMEOUT = 300.0  # seconds a pod may stay unschedulable / unable to start before the task fails
POLL = 1.0  # seconds between status rounds (WORKBENCH_K8S_POLL)
REQUEST_TIMEOUT = 30  # seconds, for every API call but the followed logs
LOG_READ_TIMEOUT = 3600  # seconds of silence after which a followed log is reopened
LOG_DRAIN = 10.0  # after a task ends, how long its log may take to arrive
END_RUN_WAIT = 60.0  # how long end_run waits for the run's pods to go
SCALE_UP_TIMEOUT = 900.0  # seconds an unschedulable pod may wait while the cluster autoscaler adds a node
DEADLINE_GRACE = 30  # activeDeadlineSeconds = timeout + this: the task's own timer fires first and reports
HINT = ("check [kubernetes] kubeconfig / context in workbench.toml or KUBECONFIG, and that the cluster is up "
        "(`kubectl cluster-info`)")


def pending_timeout() -> float:
    try:
        return float(os.environ.get("WORKBENCH_K8S_PENDING_TIMEOUT", PENDING_TIMEOUT))
    except ValueError:
        return PENDING_TIMEOUT


def _poll_interval() -> float:
    try:
        return max(0.05, float(os.environ.get("WORKBENCH_K8S_POLL", POLL)))
    except ValueError:
        return POLL


def _quantity_like(value) -> bool:
    return isinstance(value, str) and bool(re.match(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[numkKMGTPE]i?)?$", value))


@dataclass
class _Task:
    spec: TaskSpec
    on_log: LogCallback
    on_exit: Callable[[TaskExit], None]
    name: str
    namespace: str
    options: JobOptions
    submitted: float = field(default_factory=time.time)
    requested: Optional[str] = None  # cancel reason
    requested_timeout: bool = False  # the cancel was the runtime's hard deadline
    cancel_sent: float = 0.0
    outcome: Optional[TaskExit] = None
    outcome_at: float = 0.0
    done: bool = False
    pod: Any = None  # the last V1Pod seen
    seen_job: bool = False
    log_thread: Optional[threading.Thread] = None
    log_response: Any = None
    stuck_since: Optional[float] = None
    finished_seen: Optional[float] = None
    warned: bool = False


class _KubernetesHandle(TaskHandle):
    def __init__(self, backend: "KubernetesBackend", task: _Task):
        self.backend = backend
        self.task = task

    @property
    def job_name(self) -> str:
        return self.task.name

    def cancel(self, reason: str = "cancelled", *, timeout: bool = False) -> None:
        if self.task.requested is None:
            self.task.requested_timeout = timeout
        self.backend._cancel(self.task, reason)


class KubernetesBackend(Backend):
    name = "kubernetes"
    remote = True

    def __init__(self, config):
        super().__init__(config)
        self._lock = threading.RLock()
        self._api = None
        self._apis: dict[str, Any] = {}
        self._url = ""
        self._reachable = False
        self._template: Optional[dict] = None
        self._tasks: dict[str, _Task] = {}  # job name -> task
        self._ctx: Optional[RunContext] = None
        self._package_url: Optional[str] = None
        self._task_env: dict[str, str] = {}
        self._namespaces: set[str] = set()
        self._selector = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._poller: Optional[threading.Thread] = None
        self._poll_errors = 0
        self._nodes: Optional[tuple[float, Optional[list]]] = None
        self._warned_queue = False

    # ------------------------------------------------------------------ client
    @property
    def section(self):
        return self.config.model.kubernetes

    def _kubeconfig_path(self) -> Optional[str]:
        path = self.section.kubeconfig
        if not path:
            return None
        p = Path(os.path.expandvars(path)).expanduser()
        if not p.is_absolute() and getattr(self.config, "root", None):
            p = Path(self.config.root) / p
        return str(p)

    def _client(self, kind: str):
        """``core`` (CoreV1Api), ``batch`` (BatchV1Api) or ``version`` (VersionApi), sharing one ApiClient."""
        with self._lock:
            if self._api is None:
                self._api = self._make_api_client()
            api = self._apis.get(kind)
            if api is None:
                from kubernetes import client
                cls = {"core": client.CoreV1Api, "batch": client.BatchV1Api, "version": client.VersionApi}[kind]
                api = self._apis[kind] = cls(self._api)
            return api

    def _make_api_client(self):
        from kubernetes import client
        from kubernetes import config as kconfig
        configuration = client.Configuration()
        path = self._kubeconfig_path()
        in_cluster = (not path and not os.environ.get("KUBECONFIG")
                      and not Path("~/.kube/config").expanduser().exists()
                      and os.environ.get("KUBERNETES_SERVICE_HOST"))
        try:
            if in_cluster:
                kconfig.load_incluster_config(client_configuration=configuration)
            else:
                if path and not Path(path).is_file():
                    raise ConfigError(f"kubernetes: [kubernetes] kubeconfig {path} does not exist")
                # KUBECONFIG is passed explicitly: the client reads it only once, when it is imported
                kconfig.load_kube_config(config_file=path or os.environ.get("KUBECONFIG") or None,
                                         context=self.section.context,
                                         client_configuration=configuration)
        except WorkbenchError:
            raise
        except Exception as exc:  # ConfigException, a malformed file, ...
            where = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise EngineUnreachable(f"kubernetes: no usable cluster configuration in {where}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                                    hint=HINT) from None
        self._url = configuration.host
        # one followed log per running pod holds a connection: keep them pooled (up to the runtime's 256 in flight)
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 64)
        return client.ApiClient(configuration)

    def _call(self, what: str, fn: Callable, *args, **kwargs):
        """An API call with one-line errors: unreachable, refused credentials, or the API's own message."""
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        try:
            return fn(*args, **kwargs)
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, what) from None

    def _translate(self, exc: BaseException, what: str) -> WorkbenchError:
        from kubernetes.client.exceptions import ApiException
        if isinstance(exc, ApiException):
            message = exc.reason or ""
            try:
                import json
                message = json.loads(exc.body or "{}").get("message") or message
            except (ValueError, AttributeError):
                pass
            if exc.status in (401, 403):
                return CredentialsError(f"kubernetes: {what}: the API server at {self._url} refused the request "
                                        f"({exc.status}: {message})", hint=HINT)
            return BackendError(f"kubernetes: {what}: {exc.status} {message}")
        return EngineUnreachable(f"kubernetes: {what}: cannot reach the API server at {self._url or '?'} "
                                 f"({type(exc).__name__})", hint=HINT)

    # ------------------------------------------------------------------ settings
    def image_for(self, settings) -> str:
        image = settings.image or self.section.image or self.config.model.docker.image
        if not image:
            raise ConfigError("the kubernetes backend needs an image with python3 and boto3: set [kubernetes] "
                              "image = \"...\" in workbench.toml or @kubernetes(image=...)")
        return image

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
        if self._reachable:
            return
        self._call("get version", self._client("version").get_code, _request_timeout=10)
        self._reachable = True

    def check(self, settings) -> None:
        self.image_for(settings)
        opts = self.options_for(settings)
        gpu_key(opts.gpu_vendor)
        self.template()
        self.ping()

    def capacity(self) -> Optional[Capacity]:
        """The largest pod a node can hold: the most allocatable cpu, memory and GPUs over schedulable nodes."""
        try:
            self._nodes = None  # read afresh
            nodes = self._node_allocatable()
        except WorkbenchError:  # no usable configuration
            return None
        if not nodes:  # unreachable, not allowed to list nodes, or none schedulable: unknown
            return None
        key = gpu_key(self.section.gpu_vendor)
        return Capacity(cpu=max(a.get("cpu", 0.0) for _, a in nodes),
                        memory=int(max(a.get("memory", 0.0) for _, a in nodes) // (1024 * 1024)),
                        gpu=int(max(a.get(key, 0.0) for _, a in nodes)),
                        source=f"largest allocatable over {len(nodes)} node(s) of {self._url}")

    # ------------------------------------------------------------------ run lifecycle
    def start_run(self, ctx: RunContext) -> None:
        from .. import package
        from ..aws import task_environment
        self._ctx = ctx
        self.ping()
        pkg = package.collect(ctx.project_root)
        warning = pkg.warning()
        if warning:
            ctx.warn(f"kubernetes: {warning}")
        self._package_url, _ = package.upload(pkg, ctx.datastore.storage, ctx.flow)
        storage = ctx.datastore.storage
        self._task_env = {**task_environment(getattr(storage, "endpoint_url", None), getattr(storage, "region", None)),
                          "PYTHONUNBUFFERED": "1"}
        self._selector = f"workbench.flow={label_value(ctx.flow)},workbench.run={label_value(ctx.run_id)}"
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_loop, name="kubernetes-poller", daemon=True)
        self._poller.start()

    def end_run(self, ctx: RunContext) -> None:
        with self._lock:
            left = [t for t in self._tasks.values() if not t.done and t.outcome is None]
            namespaces = set(self._namespaces)
        for task in left:
            self._cancel(task, task.requested or "the run ended")
        errors = []
        for ns in sorted(namespaces):
            try:
                jobs = self._call("list jobs", self._client("batch").list_namespaced_job, ns,
                                  label_selector=self._selector).items
                for job in jobs:
                    self._delete_job(job.metadata.name, ns)
            except WorkbenchError as exc:
                errors.append(str(exc))
        deadline = time.time() + (END_RUN_WAIT if namespaces else 0)
        while namespaces and time.time() < deadline and not errors:
            try:
                pods = sum(len(self._call("list pods", self._client("core").list_namespaced_pod, ns,
                                          label_selector=self._selector).items) for ns in namespaces)
            except WorkbenchError as exc:
                errors.append(str(exc))
                break
            if not pods:
                break
            self._wake.set()
            time.sleep(0.3)
        else:
            if namespaces and not errors:
                ctx.warn(f"kubernetes: pods of run {ctx.run_id} still terminating after {END_RUN_WAIT:.0f}s "
                         f"(label selector {self._selector})")
        # every task gets its on_exit exactly once, whatever happened
        drain = time.time() + LOG_DRAIN
        while time.time() < drain:
            with self._lock:
                if all(t.done for t in self._tasks.values()):
                    break
            self._wake.set()
            time.sleep(0.1)
        with self._lock:
            unfinished = [t for t in self._tasks.values() if not t.done]
        for task in unfinished:
            if task.outcome is None:
                task.outcome = TaskExit("cancelled", None, task.requested or "the run ended", self._usage(task))
            self._settle(task, force=True)
        self._stop.set()
        self._wake.set()
        if self._poller is not None:
            self._poller.join(timeout=10)
        for task in list(self._tasks.values()):
            self._close_log(task)
        if errors:
            ctx.warn(f"kubernetes: could not delete every Job of run {ctx.run_id}: {errors[0]}")

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
        return job_manifest(name=job_name(spec.flow, spec.step, spec.task_id, spec.attempt, spec.run_id),
                            settings=s, image=self.image_for(s), command=command,
                            env={**s.env, **self._task_env}, labels=labels, options=self.options_for(s),
                            template=self.template())

    def submit(self, spec: TaskSpec, on_log: LogCallback, on_exit: Callable[[TaskExit], None]) -> TaskHandle:
        manifest = self.manifest_for(spec)
        name, ns = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
        task = _Task(spec, on_log, on_exit, name, ns, self.options_for(spec.settings))
        with self._lock:
            self._namespaces.add(ns)
            self._tasks[name] = task
        try:
            self._call(f"create job {name}", self._client("batch").create_namespaced_job, ns, manifest)
        except WorkbenchError:
            with self._lock:
                self._tasks.pop(name, None)
            raise
        self._wake.set()
        return _KubernetesHandle(self, task)

    # ------------------------------------------------------------------ cancel
    def _delete_job(self, name: str, namespace: str) -> None:
        from kubernetes.client.exceptions import ApiException
        try:
            self._client("batch").delete_namespaced_job(name, namespace, propagation_policy="Background",
                                                        _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status != 404:
                raise self._translate(exc, f"delete job {name}") from None
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, f"delete job {name}") from None

    def _cancel(self, task: _Task, reason: str) -> None:
        with self._lock:
            if task.done or task.outcome is not None:
                return
            task.requested = task.requested or reason
            task.cancel_sent = time.time()
        try:
            self._delete_job(task.name, task.namespace)
        except WorkbenchError as exc:
            if self._ctx is not None:
                self._ctx.warn(f"kubernetes: could not delete job {task.name}: {exc}")
            self._conclude(task, self._requested_exit(task, f" (the Job could not be deleted: {exc})"))
        self._wake.set()

    def _requested_exit(self, task: _Task, note: str = "") -> TaskExit:
        reason = task.requested or "cancelled"
        kind = "timeout" if task.requested_timeout else "cancelled"
        return TaskExit(kind, None, reason + note, self._usage(task))

    # ------------------------------------------------------------------ status
    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            interval = _poll_interval()
            try:
                self.poll_once()
                self._poll_errors = 0
            except Exception as exc:  # noqa: BLE001 - keep polling; report once in a while
                self._poll_errors += 1
                interval = min(10.0, interval * 2 ** min(self._poll_errors, 4))
                if self._ctx is not None and self._poll_errors in (1, 10, 100):
                    self._ctx.warn(f"kubernetes: reading the status of the run's Jobs failed, retrying: {exc}")
            self._wake.wait(interval)
            self._wake.clear()

    def poll_once(self) -> None:
        with self._lock:
            active = [t for t in self._tasks.values() if not t.done]
        if not active:
            return
        pending = [t for t in active if t.outcome is None]
        jobs: dict[str, Any] = {}
        pods: dict[str, list] = {}
        for ns in sorted({t.namespace for t in pending}):
            for job in self._call("list jobs", self._client("batch").list_namespaced_job, ns,
                                  label_selector=self._selector).items:
                jobs[job.metadata.name] = job
            for pod in self._call("list pods", self._client("core").list_namespaced_pod, ns,
                                  label_selector=self._selector).items:
                owner = (pod.metadata.labels or {}).get(JOB_LABEL)
                if owner:
                    pods.setdefault(owner, []).append(pod)
        for task in pending:
            try:
                self._update(task, jobs.get(task.name), pods.get(task.name, []))
            except WorkbenchError as exc:
                if self._ctx is not None:
                    self._ctx.warn(f"kubernetes: job {task.name}: {exc}")
        for task in active:
            self._settle(task)

    def _update(self, task: _Task, job, pods: list) -> None:
        now = time.time()
        if pods:
            task.pod = max(pods, key=lambda p: (p.metadata.creation_timestamp or EPOCH,
                                                p.metadata.name))
        if task.requested:
            if job is None or job.metadata.deletion_timestamp is not None or now - task.cancel_sent > 30:
                self._conclude(task, self._requested_exit(task))
            return
        if job is None:
            if task.seen_job or now - task.submitted > 30:
                self._conclude(task, TaskExit("failed", None, f"the Job {task.name} disappeared (deleted outside "
                                                              f"workbench?)", self._usage(task)))
            return
        task.seen_job = True
        pod = task.pod
        if pod is not None and task.log_thread is None and container_started(pod):
            self._start_logs(task)
        conditions = job.status.conditions if job.status else None
        finished = (is_true(conditions, "Complete") or is_true(conditions, "Failed")
                    or is_true(conditions, "SuccessCriteriaMet") or is_true(conditions, "FailureTarget"))
        if finished is not None:
            if pod is not None and task.log_thread is None:
                self._start_logs(task)
            task.finished_seen = task.finished_seen or now
            if finished.type in ("Failed", "FailureTarget") and finished.reason != "DeadlineExceeded" \
                    and pod is not None and terminated(pod) is None and now - task.finished_seen < 5:
                return  # the pod's final container state (exit code, OOMKilled) is a moment behind the Job's
            self._conclude(task, self._exit_of(task, finished, pod))
            return
        if pod is not None and pod.status is not None and pod.status.phase == "Failed" \
                and pod.status.reason == "Evicted":
            self._conclude(task, self._exit_of(task, None, pod))
            return
        stuck = self._stuck_reason(task, pod) if pod is not None else None
        if stuck is None:
            task.stuck_since = None
            return
        if stuck.startswith("unschedulable") and self.fits_some_node(task.spec.settings, task.options):
            # it fits an empty node: it waits for room while other pods run (a wide foreach queues like this)
            task.stuck_since = None
            if not self._warned_queue and self._ctx is not None:
                self._warned_queue = True
                self._ctx.warn(f"kubernetes: step {task.spec.step} waits for room on the cluster ({stuck}); "
                               f"it starts when running pods finish")
            return
        task.stuck_since = task.stuck_since or now
        limit = pending_timeout()
        if not task.warned and self._ctx is not None:
            task.warned = True
            stuck = self._stuck_reason(task, pod, events=True) or stuck
            self._ctx.warn(f"kubernetes: step {task.spec.step} (job {task.name}) cannot start: {stuck}; the task "
                           f"fails if this lasts {limit:.0f}s (WORKBENCH_K8S_PENDING_TIMEOUT)")
        if now - task.stuck_since < limit:
            return
        if stuck.startswith("unschedulable") and now - task.stuck_since < max(limit, SCALE_UP_TIMEOUT) \
                and self._event_message(pod, "TriggeredScaleUp"):
            return  # the cluster autoscaler is adding a node for it
        stuck = self._stuck_reason(task, pod, events=True) or stuck
        try:
            self._delete_job(task.name, task.namespace)
        except WorkbenchError as exc:
            if self._ctx is not None:
                self._ctx.warn(f"kubernetes: could not delete job {task.name}: {exc}")
        self._conclude(task, TaskExit("failed", None, f"{stuck} (pending for {now - task.stuck_since:.0f}s)",
                                      self._usage(task)))

    def _node_allocatable(self) -> Optional[list[tuple[dict, dict]]]:
        """(labels, allocatable as numbers) of the schedulable nodes, read at most once a minute; None when the
        nodes cannot be listed (RBAC)."""
        now = time.time()
        if self._nodes is not None and now - self._nodes[0] < 60:
            return self._nodes[1]
        from kubernetes.utils import parse_quantity
        try:
            items = self._call("list nodes", self._client("core").list_node, _request_timeout=10).items
        except WorkbenchError:
            self._nodes = (now, None)
            return None
        nodes = []
        for node in items:
            if node.spec is not None and node.spec.unschedulable:
                continue
            alloc = (node.status.allocatable if node.status else None) or {}
            nodes.append((dict(node.metadata.labels or {}),
                          {k: float(parse_quantity(v)) for k, v in alloc.items() if _quantity_like(v)}))
        self._nodes = (now, nodes)
        return nodes

    def fits_some_node(self, settings, options: JobOptions) -> Optional[bool]:
        """Whether an empty node could hold the pod (requests/limits vs allocatable, node selector); None: unknown."""
        nodes = self._node_allocatable()
        if nodes is None:
            return None
        from kubernetes.utils import parse_quantity
        res = resources(settings, options.gpu_vendor)
        want = {k: float(parse_quantity(v)) for k, v in {**res["limits"], **res["requests"]}.items()}
        for labels, alloc in nodes:
            if any(labels.get(k) != str(v) for k, v in options.node_selector.items()):
                continue
            if all(alloc.get(k, 0.0) >= v for k, v in want.items() if k != "ephemeral-storage" or k in alloc):
                return True
        return False

    def _stuck_reason(self, task: _Task, pod, events: bool = False) -> Optional[str]:
        events_of = (lambda reason, prefix: self._event_message(pod, reason, prefix)) if events else None
        return stuck_reason(pod, task.spec.settings, task.options.gpu_vendor, task.options.node_selector,
                            lambda: self.image_for(task.spec.settings), events_of)

    def _event_message(self, pod, reason: str, prefix: str = "") -> Optional[str]:
        """The latest event of ``reason`` about the pod (events are best effort: None when not readable)."""
        try:
            events = self._call("list events", self._client("core").list_namespaced_event, pod.metadata.namespace,
                                field_selector=f"involvedObject.name={pod.metadata.name}").items
        except WorkbenchError:
            return None
        found = [e for e in events if e.reason == reason and (e.message or "").startswith(prefix)]
        if not found:
            return None
        latest = max(found, key=lambda e: (e.last_timestamp or e.event_time or e.first_timestamp
                                           or EPOCH))
        return latest.message

    def _usage(self, task: _Task) -> dict[str, Any]:
        usage: dict[str, Any] = {"job": task.name, "namespace": task.namespace}
        if task.pod is not None:
            usage["pod"] = task.pod.metadata.name
            if task.pod.spec is not None and task.pod.spec.node_name:
                usage["node"] = task.pod.spec.node_name
        return usage

    def _exit_of(self, task: _Task, condition, pod) -> TaskExit:
        return exit_of(condition, pod, task.spec.settings, task.options.gpu_vendor, self._usage(task),
                       DEADLINE_GRACE)

    def _conclude(self, task: _Task, result: TaskExit) -> None:
        with self._lock:
            if task.outcome is not None or task.done:
                return
            task.outcome = result
            task.outcome_at = time.time()
        self._settle(task)

    def _settle(self, task: _Task, force: bool = False) -> None:
        """Report the outcome once the log has been read to its end (or LOG_DRAIN has passed)."""
        with self._lock:
            if task.done or task.outcome is None:
                return
            alive = (task.log_thread is not None and task.log_thread.is_alive()
                     and task.log_thread is not threading.current_thread())
            if alive and not force and time.time() < task.outcome_at + LOG_DRAIN:
                return
            task.done = True
        if alive:
            self._close_log(task)
        try:
            task.on_exit(task.outcome)
        finally:
            if not task.requested:  # its record is in the datastore now: free the cluster of it (end_run sweeps)
                try:
                    self._delete_job(task.name, task.namespace)
                except WorkbenchError:
                    pass

    # ------------------------------------------------------------------ logs
    def _start_logs(self, task: _Task) -> None:
        with self._lock:
            if task.log_thread is not None or task.pod is None:
                return
            task.log_thread = threading.Thread(target=self._follow_logs, args=(task, task.pod.metadata.name),
                                               name=f"kubernetes-logs-{task.name}", daemon=True)
        task.log_thread.start()

    def _close_log(self, task: _Task) -> None:
        resp = task.log_response
        if resp is not None:
            try:
                resp.close()
            except Exception:  # noqa: BLE001
                pass

    def _follow_logs(self, task: _Task, pod_name: str) -> None:
        """Stream the pod's log (stdout and stderr, merged by Kubernetes) into on_log, line by line; reconnect
        (skipping lines already seen, by timestamp) if the stream breaks while the container still runs."""
        from kubernetes.client.exceptions import ApiException
        last_ts: Optional[float] = None
        failures = 0
        try:
            while failures < 5:
                failures += 1
                kwargs: dict[str, Any] = {"container": CONTAINER, "follow": True, "timestamps": True,
                                          "_preload_content": False, "_request_timeout": (10, LOG_READ_TIMEOUT)}
                if last_ts is not None:
                    kwargs["since_seconds"] = max(1, math.ceil(time.time() - last_ts) + 1)
                try:
                    resp = self._client("core").read_namespaced_pod_log(pod_name, task.namespace, **kwargs)
                except ApiException as exc:
                    if exc.status in (400,) and not task.done:  # still waiting to start
                        time.sleep(1.0)
                        continue
                    return
                task.log_response = resp
                pending = b""
                try:
                    for chunk in resp.stream(65536, decode_content=True):
                        pending += chunk
                        *lines, pending = pending.split(b"\n")
                        for raw in lines:
                            last_ts = self._emit(task, raw, last_ts)
                        if lines:
                            failures = 0  # the stream works: a later break (e.g. a read timeout) reconnects
                    if pending:
                        last_ts = self._emit(task, pending, last_ts)
                    ended = True
                except Exception:  # noqa: BLE001 - a broken stream: see below whether to reconnect
                    ended = False
                finally:
                    resp.release_conn()
                if task.done or self._stop.is_set():
                    return
                if ended and not self._still_running(task, pod_name):
                    return
                time.sleep(0.5)
        finally:
            self._wake.set()
            if task.outcome is not None:
                self._settle(task)

    def _emit(self, task: _Task, raw: bytes, last_ts: Optional[float]) -> Optional[float]:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        stamp, _, rest = text.partition(" ")
        ts = parse_ts(stamp)
        if ts is None:
            ts, rest = time.time(), text
        elif last_ts is not None and ts <= last_ts:
            return last_ts  # already delivered before a reconnect
        task.on_log("stdout", rest, ts)
        return ts

    def _still_running(self, task: _Task, pod_name: str) -> bool:
        try:
            pod = self._call("read pod", self._client("core").read_namespaced_pod, pod_name, task.namespace)
        except WorkbenchError:
            return False
        cs = container_status(pod)
        return cs is not None and cs.state is not None and cs.state.running is not None \
            and pod.metadata.deletion_timestamp is None


__all__ = ["KubernetesBackend", "PENDING_TIMEOUT", "pending_timeout", "unschedulable_reason", "describe_request"]
