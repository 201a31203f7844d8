"""Control plane loops of the emulator: scheduler, Job controller, garbage collector, TTL controller.

One background thread re-syncs everything whenever the store changes (and at least every 0.2 s,
for deadlines and TTLs). The per-pod work with Docker is done by the kubelet (kubelet.py).
"""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal

from .objects import (
    COMPLETION_INDEX,
    NODE_NAME,
    Recorder,
    condition,
    pod_for_job,
    pod_is_terminal,
    pod_requests,
    prepare_pod,
    set_condition,
)
from .quantity import parse_quantity
from .store import ApiError, Store, not_found, now_iso, parse_iso

log = logging.getLogger(__name__)
MAX_PODS = 110


def _has_condition(obj: dict, ctype: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == ctype and cond.get("status") == "True":
            return cond
    return None


def job_finished(job: dict) -> dict | None:
    return _has_condition(job, "Complete") or _has_condition(job, "Failed")


def pod_index(pod: dict) -> int | None:
    """The completion index of an Indexed Job's pod (its annotation), None for other pods."""
    value = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def index_ranges(indexes) -> str:
    """{0, 1, 2, 4} -> "0-2,4": how status.completedIndexes and status.failedIndexes are written."""
    out, run = [], []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def owned_by(pod: dict, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])


class Controller:
    def __init__(
        self, store: Store, recorder: Recorder, kubelet, capacity: dict[str, str], backoff_seconds: float = 1.0
    ):
        self.store, self.recorder, self.kubelet = store, recorder, kubelet
        self.capacity = {k: parse_quantity(v) for k, v in capacity.items()}
        self.backoff_seconds = backoff_seconds
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        # job uid -> {pod uid: "Succeeded"|"Failed"}: pods already counted (the job-tracking finalizer's job)
        self.counted: dict[str, dict[str, str]] = {}
        self.last_failure: dict[str, tuple[int, float]] = {}
        self.indexes: dict[str, dict[str, int]] = {}  # job uid -> {pod uid: completion index} (Indexed Jobs)
        store.listeners.append(lambda *_: self.wake.set())

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        self.thread = threading.Thread(target=self._loop, name="k8s-emulator-controller", daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.wake.set()
        if self.thread:
            self.thread.join(timeout=10)

    def _loop(self):
        while not self.stopping.is_set():
            self.wake.wait(0.2)
            self.wake.clear()
            if self.stopping.is_set():
                break
            try:
                self.sync_all()
            except Exception:  # keep the control plane alive; the failure shows in the test log
                log.exception("k8s emulator controller sync failed")

    def sync_all(self):
        for job in self.store.list("jobs")[0]:
            self.sync_job(job)
        self.collect_garbage()
        self.schedule()
        self.kubelet.sync()

    # ------------------------------------------------------------------ deletion (shared with the API)
    def delete_pod(self, namespace: str, name: str, grace: int | None = None, uid: str | None = None) -> dict:
        pod = self.store.find("pods", namespace, name)
        if pod is None or (uid and pod["metadata"]["uid"] != uid):
            raise not_found("pods", name)
        if pod["metadata"].get("deletionTimestamp"):
            return pod
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        if grace == 0 or not pod["spec"].get("nodeName") or pod_is_terminal(pod):
            removed = self.store.remove("pods", namespace, name, uid=pod["metadata"]["uid"]) or pod
            self.kubelet.cleanup(removed["metadata"]["uid"])  # containers are gone when DELETE returns
            return removed

        def mark(p):
            p["metadata"]["deletionTimestamp"] = now_iso(time.time() + grace)
            p["metadata"]["deletionGracePeriodSeconds"] = grace

        return self.store.update("pods", namespace, name, mark, uid=pod["metadata"]["uid"]) or pod

    def delete_job(self, namespace: str, name: str, policy: str | None, uid: str | None = None):
        """Returns (http code, body) as the API server answers a DELETE of a Job."""
        job = self.store.find("jobs", namespace, name)
        if job is None:
            raise not_found("jobs", name)
        if uid and job["metadata"]["uid"] != uid:
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {job['metadata']['uid']}",
                {"name": name, "group": "batch", "kind": "jobs"},
            )
        policy = policy or "Orphan"  # batch/v1 Jobs orphan their pods by default
        if policy not in ("Orphan", "Background", "Foreground"):
            raise ApiError(
                422,
                "Invalid",
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
                f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
            )
        if policy == "Background":
            removed = self.store.remove("jobs", namespace, name) or job
            self.wake.set()
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "group": "batch", "kind": "jobs", "uid": removed["metadata"]["uid"]},
            }
        finalizer = "foregroundDeletion" if policy == "Foreground" else "orphan"

        def mark(j):
            j["metadata"].setdefault("deletionTimestamp", now_iso())
            j["metadata"]["deletionGracePeriodSeconds"] = 0
            fins = j["metadata"].setdefault("finalizers", [])
            if finalizer not in fins:
                fins.append(finalizer)

        updated = self.store.update("jobs", namespace, name, mark)
        self.wake.set()
        return 200, updated or job

    # ------------------------------------------------------------------ job controller
    def _job_pods(self, job: dict) -> list[dict]:
        pods, _ = self.store.list("pods", job["metadata"]["namespace"])
        return [p for p in pods if owned_by(p, job["metadata"]["uid"])]

    def _finish_deletion(self, job: dict):
        meta = job["metadata"]
        pods = self._job_pods(job)
        if "orphan" in (meta.get("finalizers") or []):
            for pod in pods:

                def strip(p, uid=meta["uid"]):
                    p["metadata"]["ownerReferences"] = [
                        r for r in p["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
                    ]
                    if not p["metadata"]["ownerReferences"]:
                        del p["metadata"]["ownerReferences"]

                self.store.update("pods", meta["namespace"], pod["metadata"]["name"], strip)
            pods = []
        for pod in pods:
            if not pod["metadata"].get("deletionTimestamp"):
                self.delete_pod(meta["namespace"], pod["metadata"]["name"], uid=pod["metadata"]["uid"])
        if not pods:
            self.store.remove("jobs", meta["namespace"], meta["name"], uid=meta["uid"])
            self.counted.pop(meta["uid"], None)
            self.indexes.pop(meta["uid"], None)

    def sync_job(self, job: dict):
        meta, spec = job["metadata"], job["spec"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        if meta.get("deletionTimestamp"):
            self._finish_deletion(job)
            return
        status = job.get("status") or {}
        finished = job_finished(job)
        if finished:
            ttl = spec.get("ttlSecondsAfterFinished")
            done_at = status.get("completionTime") or finished.get("lastTransitionTime")
            if ttl is not None and done_at and time.time() >= parse_iso(done_at) + ttl:
                self.delete_job(ns, name, "Foreground", uid=uid)
            return
        if spec.get("suspend"):
            return
        pods = self._job_pods(job)
        counted = self.counted.setdefault(uid, {})
        live_uids = {p["metadata"]["uid"] for p in pods}
        for puid, state in list(counted.items()):
            if state == "Active" and puid not in live_uids:
                counted[puid] = "Failed"  # deleted before it finished: the job controller counts it failed
        for pod in pods:
            phase = (pod.get("status") or {}).get("phase")
            puid = pod["metadata"]["uid"]
            if phase in ("Succeeded", "Failed"):
                if counted.get(puid, "Active") == "Active":
                    counted[puid] = phase
            else:
                counted.setdefault(puid, "Active")
        active = [p for p in pods if not pod_is_terminal(p) and not p["metadata"].get("deletionTimestamp")]
        terminating = [p for p in pods if not pod_is_terminal(p) and p["metadata"].get("deletionTimestamp")]
        succeeded = sum(1 for v in counted.values() if v == "Succeeded")
        failed = sum(1 for v in counted.values() if v == "Failed")
        indexed = spec.get("completionMode") == "Indexed"
        per_index = spec.get("backoffLimitPerIndex")
        done_idx: set[int] = set()
        failed_idx: set[int] = set()
        busy_idx: set[int] = set()
        if indexed:
            index_of = self.indexes.setdefault(uid, {})
            for pod in pods:
                i = pod_index(pod)
                if i is not None:
                    index_of.setdefault(pod["metadata"]["uid"], i)
            replace_terminating = spec.get("podReplacementPolicy", "TerminatingOrFailed") != "Failed"
            failures: dict[int, int] = {}
            for puid, state in counted.items():
                i = index_of.get(puid)
                if i is None:
                    continue
                if state == "Succeeded":
                    done_idx.add(i)
                elif state == "Failed":
                    failures[i] = failures.get(i, 0) + 1
            for pod in terminating:  # TerminatingOrFailed: a terminating pod is a failure of its index already
                i = pod_index(pod)
                if i is not None and replace_terminating:
                    failures[i] = failures.get(i, 0) + 1
                elif i is not None:
                    busy_idx.add(i)
            if per_index is not None:
                failed_idx = {i for i, n in failures.items() if n > per_index and i not in done_idx}
            busy_idx |= {pod_index(p) for p in active}
            succeeded = len(done_idx)
        restarts = sum(
            cs.get("restartCount", 0) for p in active for cs in (p.get("status") or {}).get("containerStatuses") or []
        )
        conditions = list(status.get("conditions") or [])
        now = time.time()
        start = status.get("startTime") or now_iso()
        target = _has_condition(job, "FailureTarget") or _has_condition(job, "SuccessCriteriaMet")

        if not target:
            deadline = spec.get("activeDeadlineSeconds")
            if deadline is not None and now >= parse_iso(start) + deadline:
                target = condition("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline")
                self.recorder.event(
                    job,
                    "Warning",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                    "job-controller",
                )
            elif failed + restarts > spec.get("backoffLimit", 6):
                target = condition(
                    "FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
                )
                self.recorder.event(
                    job,
                    "Warning",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    "job-controller",
                )
            elif indexed and spec.get("maxFailedIndexes") is not None and len(failed_idx) > spec["maxFailedIndexes"]:
                target = condition("FailureTarget", "MaxFailedIndexesExceeded", "Job has exceeded maxFailedIndexes")
            elif indexed and failed_idx and len(done_idx | failed_idx) >= spec.get("completions", 1):
                target = condition("FailureTarget", "FailedIndexes", "Job has failed indexes")
                self.recorder.event(job, "Warning", "FailedIndexes", "Job has failed indexes", "job-controller")
            elif succeeded >= spec.get("completions", 1):
                target = condition(
                    "SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"
                )
            if target:
                set_condition(conditions, target)
        if target:
            for pod in active:  # the controller kills what still runs; those pods count as failed
                counted[pod["metadata"]["uid"]] = "Failed"
                self.delete_pod(ns, pod["metadata"]["name"], uid=pod["metadata"]["uid"])
                if self.store.find("pods", ns, pod["metadata"]["name"]):
                    terminating.append(pod)  # graceful deletion still running
            failed = sum(1 for v in counted.values() if v == "Failed")
            active = []
        else:
            want = min(spec.get("parallelism", 1), spec.get("completions", 1) - succeeded) - len(active)
            n_failed, last = self.last_failure.get(uid, (0, 0.0))
            if failed > n_failed:
                self.last_failure[uid] = (failed, now)
                last = now
            delay = min(self.backoff_seconds * 2 ** max(failed - 1, 0), 10 * self.backoff_seconds) if failed else 0
            if indexed:
                # one pod per index not done, not failed for good and not running; an index that failed before
                # waits out the back-off, the others start at once
                todo = [
                    i
                    for i in range(spec.get("completions", 1))
                    if i not in done_idx and i not in failed_idx and i not in busy_idx
                ]
                retrying = {
                    self.indexes[uid][p] for p, v in counted.items() if v == "Failed" and p in self.indexes.get(uid, {})
                }
                todo = [i for i in todo if i not in retrying or now >= last + delay]
                for i in todo[: max(0, spec.get("parallelism", 1) - len(active))]:
                    pod = self._create_pod(job, i)
                    counted[pod["metadata"]["uid"]] = "Active"
                    self.indexes[uid][pod["metadata"]["uid"]] = i
                    active.append(pod)
            elif want > 0 and now >= last + delay:  # else: the 0.2 s resync retries after the back-off
                for _ in range(want):
                    pod = self._create_pod(job)
                    counted[pod["metadata"]["uid"]] = "Active"
                    active.append(pod)

        new_status = dict(status)
        new_status["startTime"] = start
        for field, val in (("active", len(active)), ("succeeded", succeeded), ("failed", failed)):
            if val:
                new_status[field] = val
            else:
                new_status.pop(field, None)
        new_status["ready"] = sum(1 for p in active if _has_condition(p, "Ready"))
        new_status["terminating"] = len(terminating)
        new_status["uncountedTerminatedPods"] = {}
        if indexed:
            for field, val in (
                ("completedIndexes", index_ranges(done_idx)),
                ("failedIndexes", index_ranges(failed_idx) if per_index is not None else None),
            ):
                if val or (field == "failedIndexes" and per_index is not None):
                    new_status[field] = val or ""
                else:
                    new_status.pop(field, None)
        if target and not terminating:
            if target["type"] == "SuccessCriteriaMet":
                set_condition(conditions, condition("Complete", target["reason"], target["message"]))
                new_status["completionTime"] = now_iso()
                self.recorder.event(job, "Normal", "Completed", "Job completed", "job-controller")
            else:
                set_condition(conditions, condition("Failed", target["reason"], target["message"]))
            new_status.pop("active", None)
            new_status["ready"] = 0
        if conditions:
            new_status["conditions"] = conditions

        def put(j):
            j["status"] = new_status

        self.store.update("jobs", ns, name, put, uid=uid)

    def _create_pod(self, job: dict, index: int | None = None) -> dict:
        ns = job["metadata"]["namespace"]
        for _ in range(5):
            body = pod_for_job(job, index)
            try:
                pod = self.store.create("pods", prepare_pod(body, ns))
            except ApiError as exc:
                if exc.code == 409:
                    continue  # generated name collided: retry with another suffix
                self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {exc.message}", "job-controller")
                raise
            self.recorder.event(
                job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", "job-controller"
            )
            return pod
        raise RuntimeError("could not generate a unique pod name")

    # ------------------------------------------------------------------ garbage collector
    def collect_garbage(self):
        jobs = {j["metadata"]["uid"] for j in self.store.list("jobs")[0]}
        for pod in self.store.list("pods")[0]:
            refs = pod["metadata"].get("ownerReferences") or []
            job_refs = [r for r in refs if r.get("kind") == "Job"]
            if (
                job_refs
                and not any(r["uid"] in jobs for r in job_refs)
                and not pod["metadata"].get("deletionTimestamp")
            ):
                self.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], uid=pod["metadata"]["uid"])
        for uid in list(self.counted):
            if uid not in jobs:
                self.counted.pop(uid, None)
                self.last_failure.pop(uid, None)
                self.indexes.pop(uid, None)

    # ------------------------------------------------------------------ scheduler
    def schedule(self):
        pods = self.store.list("pods")[0]
        bound = [p for p in pods if p["spec"].get("nodeName") == NODE_NAME and not pod_is_terminal(p)]
        used: dict[str, Decimal] = {}
        for pod in bound:
            for rname, val in pod_requests(pod).items():
                used[rname] = used.get(rname, Decimal(0)) + val
        pending = [p for p in pods if not p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")]
        pending.sort(key=lambda p: (p["metadata"]["creationTimestamp"], int(p["metadata"]["resourceVersion"])))
        for pod in pending:
            reasons, helpful = self._misfit(pod, used, len(bound))
            if not reasons:
                for rname, val in pod_requests(pod).items():
                    used[rname] = used.get(rname, Decimal(0)) + val
                bound.append(pod)
                self._bind(pod)
            else:
                self._unschedulable(pod, reasons, helpful)

    def _misfit(self, pod: dict, used: dict, n_bound: int):
        reasons, helpful = [], True
        selector = pod["spec"].get("nodeSelector") or {}
        labels = self.node_labels()
        if any(labels.get(k) != v for k, v in selector.items()):
            return ["node(s) didn't match Pod's node affinity/selector"], False
        if n_bound >= MAX_PODS:
            reasons.append("Too many pods")
        for rname, req in sorted(pod_requests(pod).items()):
            if req <= 0 or rname == "ephemeral-storage":
                continue
            cap = self.capacity.get(rname, Decimal(0))
            if used.get(rname, Decimal(0)) + req > cap:
                reasons.append(f"Insufficient {rname}")
                helpful = helpful and req <= cap
        return reasons, helpful

    def node_labels(self) -> dict:
        return {
            "kubernetes.io/hostname": NODE_NAME,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node-role.kubernetes.io/emulator": "",
        }

    def _bind(self, pod: dict):
        meta = pod["metadata"]

        def bind(p):
            p["spec"]["nodeName"] = NODE_NAME
            conds = p.setdefault("status", {}).setdefault("conditions", [])
            set_condition(conds, condition("PodScheduled", probe=False))

        if self.store.update("pods", meta["namespace"], meta["name"], bind, uid=meta["uid"]):
            self.recorder.event(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {meta['namespace']}/{meta['name']} to {NODE_NAME}",
                "default-scheduler",
            )

    def _unschedulable(self, pod: dict, reasons: list[str], helpful: bool):
        counts = ", ".join(f"1 {r}" for r in sorted(reasons))
        victims = (
            "No preemption victims found for incoming pod" if helpful else "Preemption is not helpful for scheduling"
        )
        message = f"0/1 nodes are available: {counts}. preemption: 0/1 nodes are available: 1 {victims}."
        meta = pod["metadata"]

        def mark(p):
            conds = p.setdefault("status", {}).setdefault("conditions", [])
            set_condition(conds, condition("PodScheduled", "Unschedulable", message, status="False"))

        before = next(
            (c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"), None
        )
        if before and before.get("message") == message:
            return  # already reported; the real scheduler only re-reports on a new attempt
        self.store.update("pods", meta["namespace"], meta["name"], mark, uid=meta["uid"])
        self.recorder.event(pod, "Warning", "FailedScheduling", message, "default-scheduler")
