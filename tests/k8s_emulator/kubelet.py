"""The emulator's kubelet: one worker thread per bound pod runs its containers on the local Docker
engine and writes pod status the way a kubelet does (phase, conditions, containerStatuses, events)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time

from .objects import NODE_NAME, Recorder, condition, pod_is_terminal, set_condition
from .runtime import (
    EMULATOR_LABEL,
    INSTANCE_LABEL,
    ConfigError,
    ContainerRun,
    MountError,
    build_env,
    docker_args,
    normalize_image,
    prepare_volumes,
)
from .services import pod_hosts
from .store import ApiError, Store, not_found, now_iso, parse_iso

log = logging.getLogger(__name__)
UID_LABEL = "io.kubernetes.pod.uid"


class Kubelet:
    def __init__(
        self,
        store: Store,
        recorder: Recorder,
        docker_client,
        instance: str,
        node_capacity: dict,
        grace_cap: float,
        backoff_seconds: float,
        workdir: str,
    ):
        self.store, self.recorder, self.docker = store, recorder, docker_client
        self.instance, self.node_capacity = instance, node_capacity
        self.grace_cap, self.backoff_seconds, self.workdir = grace_cap, backoff_seconds, workdir
        self.lock = threading.RLock()
        self.workers: dict[str, PodWorker] = {}
        self.runs: dict[tuple[str, str], list[ContainerRun]] = {}
        self.gone: set[str] = set()  # pod uids already cleaned up: never start them again
        self.stopping = False

    # ------------------------------------------------------------------ control
    def sync(self):
        if self.stopping:
            return
        pods = self.store.list("pods")[0]
        live = {p["metadata"]["uid"] for p in pods}
        for pod in pods:
            meta, uid = pod["metadata"], pod["metadata"]["uid"]
            if pod["spec"].get("nodeName") != NODE_NAME or uid in self.gone:
                continue
            with self.lock:
                worker = self.workers.get(uid)
                if worker is None and not pod_is_terminal(pod):
                    worker = self.workers[uid] = PodWorker(self, pod)
                    worker.start()
                    continue
            if meta.get("deletionTimestamp") and (worker is None or not worker.is_alive()):
                self.cleanup(uid)  # a finished pod being deleted: remove its containers, then the pod
                self.store.remove("pods", meta["namespace"], meta["name"], uid=uid)
        for uid in list(self.workers):
            if uid not in live:
                self.cleanup(uid)

    def cleanup(self, uid: str):
        """Stop the pod's worker, remove its docker containers, volumes and logs."""
        with self.lock:
            self.gone.add(uid)
            worker = self.workers.pop(uid, None)
            runs = [r for key, rs in list(self.runs.items()) if key[0] == uid for r in rs]
            for key in [k for k in self.runs if k[0] == uid]:
                del self.runs[key]
        if worker is not None:
            worker.abort()
            if worker is not threading.current_thread():
                worker.join(timeout=30)
        self.remove_containers({UID_LABEL: uid})
        for run in runs:
            run.logs.finish()
        shutil.rmtree(os.path.join(self.workdir, uid), ignore_errors=True)

    def remove_containers(self, labels: dict | None = None) -> int:
        filters = [f"{INSTANCE_LABEL}={self.instance}"] + [f"{k}={v}" for k, v in (labels or {}).items()]
        removed = 0
        # ignore_removed: a pod's own worker may remove its container between the list and the inspect of it
        for container in self.docker.containers.list(all=True, filters={"label": filters}, ignore_removed=True):
            try:
                container.remove(force=True)
                removed += 1
            except Exception as exc:  # already gone
                log.debug("remove %s: %s", container.id, exc)
        return removed

    def stop(self):
        self.stopping = True
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.abort()
        self.remove_containers()
        for w in workers:
            w.join(timeout=15)
        with self.lock:
            for runs in self.runs.values():
                for r in runs:
                    r.logs.finish()
        self.remove_containers()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def image_id(self, image: str) -> str | None:
        import docker.errors

        try:
            return self.docker.images.get(image).id
        except docker.errors.ImageNotFound:
            return None

    # ------------------------------------------------------------------ logs API
    def log_source(self, namespace: str, name: str, container: str | None, previous: bool) -> ContainerRun:
        pod = self.store.find("pods", namespace, name)
        if pod is None:
            raise not_found("pods", name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        if container is None:
            if len(names) != 1:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]",
                )
            container = names[0]
        if container not in names:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        with self.lock:
            runs = list(self.runs.get((pod["metadata"]["uid"], container), []))
        if previous:
            if len(runs) < 2:
                raise ApiError(
                    400, "BadRequest", f'previous terminated container "{container}" in pod "{name}" not found'
                )
            return runs[-2]
        if runs:
            return runs[-1]
        waiting = "ContainerCreating"
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs["name"] == container and "waiting" in (cs.get("state") or {}):
                waiting = cs["state"]["waiting"].get("reason", waiting)
        if waiting in ("ErrImagePull", "ImagePullBackOff"):
            waiting = "image can't be pulled"
        raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {waiting}')


class PodWorker(threading.Thread):
    def __init__(self, kubelet: Kubelet, pod: dict):
        super().__init__(name=f"k8s-emulator-pod-{pod['metadata']['name']}", daemon=True)
        self.k = kubelet
        self.ns, self.name, self.uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]
        self.spec = pod["spec"]
        self.containers = pod["spec"]["containers"]
        self.aborted, self.wake = threading.Event(), threading.Event()
        self.runs: dict[str, ContainerRun] = {}
        self.statuses: dict[str, dict] = {}
        self.configs: dict[str, dict] = {}
        self.reported: set[str] = set()  # containers whose exit is already in the status
        self.dir = os.path.join(kubelet.workdir, self.uid)

    def abort(self):
        self.aborted.set()
        self.wake.set()

    # ------------------------------------------------------------------ helpers
    def current(self) -> dict | None:
        pod = self.k.store.find("pods", self.ns, self.name)
        return pod if pod is not None and pod["metadata"]["uid"] == self.uid else None

    def event(self, etype: str, reason: str, message: str, container: str = ""):
        pod = self.current()
        if pod is not None:
            path = f"spec.containers{{{container}}}" if container else ""
            self.k.recorder.event(pod, etype, reason, message, "kubelet", NODE_NAME, path)

    def _interrupt(self) -> str | None:
        if self.aborted.is_set() or self.k.stopping:
            return "abort"
        pod = self.current()
        if pod is None:
            return "abort"
        if pod["metadata"].get("deletionTimestamp"):
            return "delete"
        deadline, start = pod["spec"].get("activeDeadlineSeconds"), (pod.get("status") or {}).get("startTime")
        if deadline is not None and start and time.time() >= parse_iso(start) + deadline:
            return "deadline"
        return None

    def _sleep(self, seconds: float) -> str | None:
        end = time.time() + seconds
        while True:
            why = self._interrupt()
            if why or time.time() >= end:
                return why
            self.wake.wait(min(end - time.time(), 0.1))
            self.wake.clear()

    def _status(self, name: str, **fields):
        image = next(c["image"] for c in self.containers if c["name"] == name)
        cs = self.statuses.setdefault(
            name,
            {
                "name": name,
                "image": image,
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "lastState": {},
            },
        )
        cs.update(fields)
        return cs

    def _waiting(self, name: str, reason: str, message: str = ""):
        state = {"reason": reason}
        if message:
            state["message"] = message
        self._status(name, state={"waiting": state}, ready=False, started=False)

    def _publish(self, phase: str | None = None, reason: str | None = None, message: str | None = None):
        def mutate(p):
            st = p.setdefault("status", {})
            if phase:
                st["phase"] = phase
            if reason:
                st["reason"], st["message"] = reason, message
            st.update(
                {
                    "hostIP": "127.0.0.1",
                    "hostIPs": [{"ip": "127.0.0.1"}],
                    "podIP": "127.0.0.1",
                    "podIPs": [{"ip": "127.0.0.1"}],
                }
            )
            st.setdefault("startTime", now_iso())
            st["containerStatuses"] = [self.statuses[c["name"]] for c in self.containers if c["name"] in self.statuses]
            conds = st.setdefault("conditions", [])
            terminal = st.get("phase") in ("Succeeded", "Failed")
            unready = [c["name"] for c in self.containers if not self.statuses.get(c["name"], {}).get("ready")]
            started = any(
                "running" in (cs.get("state") or {}) or "terminated" in (cs.get("state") or {})
                for cs in st["containerStatuses"]
            )
            set_condition(
                conds,
                condition(
                    "PodReadyToStartContainers", probe=False, status="True" if started and not terminal else "False"
                ),
            )
            set_condition(conds, condition("Initialized", probe=False))
            for ctype in ("Ready", "ContainersReady"):
                if terminal:
                    set_condition(conds, condition(ctype, "PodCompleted", status="False", probe=False))
                elif unready:
                    set_condition(
                        conds,
                        condition(
                            ctype,
                            "ContainersNotReady",
                            probe=False,
                            status="False",
                            message=f"containers with unready status: [{' '.join(unready)}]",
                        ),
                    )
                else:
                    set_condition(conds, condition(ctype, probe=False))
            order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
            conds.sort(key=lambda c: order.index(c["type"]) if c["type"] in order else len(order))

        self.k.store.update("pods", self.ns, self.name, mutate, uid=self.uid)

    # ------------------------------------------------------------------ the pod's life
    def run(self):
        try:
            self._run()
        except Exception as exc:
            log.exception("k8s emulator pod worker %s/%s failed", self.ns, self.name)
            self.event("Warning", "FailedEmulation", f"k8s emulator error: {exc}")

    def _run(self):
        pod = self.current()
        if pod is None:
            return
        for c in self.containers:
            self._waiting(c["name"], "ContainerCreating")
        self._publish(phase="Pending")
        while True:  # volumes
            try:
                vols = prepare_volumes(pod, self.dir)
                break
            except MountError as exc:
                self.event("Warning", "FailedMount", str(exc))
            why = self._sleep(2.0)
            if why:
                return self._terminate(why)
        attempt = 0
        while True:  # images: nothing can be pulled, an image must be on the local engine
            missing = [c for c in self.containers if not self.k.image_id(c["image"])]
            if not missing:
                break
            for c in missing:
                image, name = c["image"], c["name"]
                if c.get("imagePullPolicy") == "Never":
                    msg = f'Container image "{image}" is not present with pull policy of Never'
                    self._waiting(name, "ErrImageNeverPull", msg)
                    self.event("Warning", "ErrImageNeverPull", msg, name)
                    continue
                ref = normalize_image(image)
                err = (
                    f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": failed to resolve '
                    f'reference "{ref}": {ref}: not found (the k8s emulator cannot pull; image is not on the local '
                    f"docker engine)"
                )
                self._waiting(name, "ErrImagePull", err)
                self.event("Normal", "Pulling", f'Pulling image "{image}"', name)
                self.event("Warning", "Failed", f'Failed to pull image "{image}": {err}', name)
                self.event("Warning", "Failed", "Error: ErrImagePull", name)
            self._publish()
            why = self._sleep(min(1.0, self.k.backoff_seconds))
            if why:
                return self._terminate(why)
            for c in missing:
                if c.get("imagePullPolicy") != "Never":
                    self._waiting(c["name"], "ImagePullBackOff", f'Back-off pulling image "{c["image"]}"')
                    self.event("Normal", "BackOff", f'Back-off pulling image "{c["image"]}"', c["name"])
                    self.event("Warning", "Failed", "Error: ImagePullBackOff", c["name"])
            self._publish()
            why = self._sleep(min(self.k.backoff_seconds * 2**attempt, 10 * self.k.backoff_seconds))
            attempt += 1
            if why:
                return self._terminate(why)
        for c in self.containers:
            self._status(c["name"], imageID=f"docker://{self.k.image_id(c['image'])}")
            self.event("Normal", "Pulled", f'Container image "{c["image"]}" already present on machine', c["name"])
        while True:  # container configs (env valueFrom, security context)
            try:
                pod = self.current() or pod
                for c in self.containers:
                    env = build_env(pod, c, self.k.node_capacity)
                    self.configs[c["name"]] = docker_args(pod, c, vols, env, {}, self.k.node_capacity)
                    hosts = pod_hosts(self.k.store, pod)  # a headless Service's names for the pod's peers
                    if hosts:
                        self.configs[c["name"]]["extra_hosts"] = hosts
                break
            except ConfigError as exc:
                self._waiting(c["name"], "CreateContainerConfigError", str(exc))
                self.event("Warning", "Failed", f"Error: {exc}", c["name"])
                self._publish()
            why = self._sleep(2.0)
            if why:
                return self._terminate(why)
        due: dict[str, float] = {c["name"]: 0.0 for c in self.containers}  # container -> when to (re)start
        while True:
            why = self._interrupt()
            if why:
                return self._terminate(why)
            now, changed = time.time(), False
            for name, when in list(due.items()):
                if now >= when:
                    del due[name]
                    self._start(name, due)
                    changed = True
            for name, run in list(self.runs.items()):
                if run.done.is_set() and name not in self.reported:
                    self._exited(name, run, due)
                    changed = True
            running = [n for n, r in self.runs.items() if not r.done.is_set()]
            if not due and not running:
                codes = [r.exit_code for r in self.runs.values()]
                self._publish(phase="Succeeded" if all(code == 0 for code in codes) else "Failed")
                return
            if changed:
                self._publish(phase="Running" if running else None)
            self.wake.wait(0.2)
            self.wake.clear()

    def _start(self, name: str, due: dict):
        import docker.errors

        pod = self.current()
        if pod is None:
            return
        restarts = self.statuses[name].get("restartCount", 0) + (1 if name in self.runs else 0)
        labels = {
            EMULATOR_LABEL: "1",
            INSTANCE_LABEL: self.k.instance,
            "io.kubernetes.pod.name": self.name,
            "io.kubernetes.pod.namespace": self.ns,
            UID_LABEL: self.uid,
            "io.kubernetes.container.name": name,
            "io.kubernetes.container.restartCount": str(restarts),
        }
        config = dict(self.configs[name], labels=labels)
        try:
            container = self.k.docker.containers.create(
                name=f"k8s_{name}_{self.name}_{self.ns}_{self.uid}_{restarts}", **config
            )
        except docker.errors.APIError as exc:
            msg = getattr(exc, "explanation", None) or str(exc)
            self._waiting(name, "CreateContainerError", msg)
            self.event("Warning", "Failed", f"Error: {msg}", name)
            due[name] = time.time() + 2 * self.k.backoff_seconds
            return
        if self.aborted.is_set():
            container.remove(force=True)
            return
        self.event("Normal", "Created", f"Created container {name}", name)
        run = ContainerRun(container, name, restarts, on_exit=self.wake.set)
        with self.k.lock:
            self.k.runs.setdefault((self.uid, name), []).append(run)
        if name in self.runs:
            self._status(name, lastState={"terminated": self.runs[name].terminated_state()}, restartCount=restarts)
        self.runs[name] = run
        self.reported.discard(name)
        try:
            run.start()
        except docker.errors.APIError as exc:
            msg = getattr(exc, "explanation", None) or str(exc)
            run.fail_start(msg)
            self.event("Warning", "Failed", f"Error: {msg}", name)
            return
        self._status(
            name,
            containerID=f"docker://{container.id}",
            state={"running": {"startedAt": run.started_at}},
            ready=True,
            started=True,
        )
        self.event("Normal", "Started", f"Started container {name}", name)

    def _exited(self, name: str, run: ContainerRun, due: dict):
        self.reported.add(name)
        self._status(name, state={"terminated": run.terminated_state()}, ready=False, started=False)
        policy = self.spec.get("restartPolicy", "Always")
        if policy == "Always" or (policy == "OnFailure" and run.exit_code != 0):
            delay = min(self.k.backoff_seconds * 2**run.restart_count, 10 * self.k.backoff_seconds)
            pod_id = f"{self.name}_{self.ns}({self.uid})"
            self._status(
                name,
                lastState={"terminated": run.terminated_state()},
                state={
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {delay:g}s restarting failed container={name} pod={pod_id}",
                    }
                },
            )
            self.event("Warning", "BackOff", f"Back-off restarting failed container {name} in pod {pod_id}", name)
            due[name] = time.time() + delay

    def _terminate(self, why: str):
        """Kill what runs (deletion, activeDeadlineSeconds or emulator shutdown) and finish the pod."""
        pod = self.current()
        live = [r for r in self.runs.values() if not r.done.is_set()]
        if why == "abort" or pod is None:
            grace = 0.0
        elif why == "delete":
            grace = pod["metadata"].get("deletionGracePeriodSeconds", 30)
        else:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        grace = min(float(grace), self.k.grace_cap)
        for run in live:
            if why != "abort":
                self.event("Normal", "Killing", f"Stopping container {run.name}", run.name)
            try:
                run.container.kill(signal="SIGTERM" if grace > 0 else "SIGKILL")
            except Exception:
                pass
        end = time.time() + grace
        for run in live:
            if not run.done.wait(max(0.0, end - time.time())):
                try:
                    run.container.kill(signal="SIGKILL")
                except Exception:
                    pass
        for run in live:
            run.done.wait(10)
        for name, run in self.runs.items():  # incl. runs that ended on their own just before the kill
            if run.done.is_set():
                self.reported.add(name)
                self._status(name, state={"terminated": run.terminated_state()}, ready=False, started=False)
        if why == "abort" or pod is None:
            return
        failed = any(r.exit_code != 0 for r in self.runs.values()) or not self.runs
        if why == "deadline":
            msg = "Pod was active on the node longer than the specified deadline"
            self.event("Warning", "DeadlineExceeded", msg)
            self._publish(phase="Failed", reason="DeadlineExceeded", message=msg)
            return
        self._publish(phase="Failed" if failed else "Succeeded")
        self.k.cleanup(self.uid)  # containers first, so they are gone when the pod disappears from the API
        self.k.store.remove("pods", self.ns, self.name, uid=self.uid)
