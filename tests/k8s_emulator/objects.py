"""Defaulting and validation of Jobs and Pods as kube-apiserver does it, plus Event recording."""

from __future__ import annotations

import copy
import random
import re
import time
import uuid
from decimal import Decimal

from .quantity import QuantityError, canonical, parse_quantity
from .store import ApiError, Store, now_iso

NODE_NAME = "k8s-emulator-node"
# k8s.io/apimachinery/pkg/util/rand: consonants and digits, so generated names spell no words
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(_SUFFIX_ALPHABET) for _ in range(n))


class Invalid:
    """Collects field errors; raise_if_any() answers 422 Invalid like the API server."""

    def __init__(self, kind: str, group: str, name: str):
        self.kind, self.group, self.name, self.causes = kind, group, name, []

    def add(self, field: str, reason: str, message: str):
        self.causes.append({"reason": reason, "message": message, "field": field})

    def required(self, field: str, detail: str = ""):
        self.add(field, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))

    def invalid(self, field: str, value, detail: str):
        self.add(field, "FieldValueInvalid", f"Invalid value: {_go_repr(value)}: {detail}")

    def not_supported(self, field: str, value, supported: list[str]):
        values = ", ".join(f'"{v}"' for v in supported)
        self.add(field, "FieldValueNotSupported", f"Unsupported value: {_go_repr(value)}: supported values: {values}")

    def raise_if_any(self):
        if not self.causes:
            return
        errs = [f"{c['field']}: {c['message']}" for c in self.causes]
        what = f"{self.kind}.{self.group}" if self.group else self.kind
        joined = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
        details = {"name": self.name, "kind": self.kind, "causes": self.causes}
        if self.group:
            details["group"] = self.group
        raise ApiError(422, "Invalid", f'{what} "{self.name}" is invalid: {joined}', details)


def _go_repr(value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _check_name(inv: Invalid, name: str, max_len: int, label: bool):
    pattern = _DNS1123_LABEL if label else _DNS1123_SUBDOMAIN
    if len(name) > max_len:
        inv.invalid("metadata.name", name, f"must be no more than {max_len} characters")
    elif not pattern.match(name):
        what = "RFC 1123 label" if label else "RFC 1123 subdomain"
        inv.invalid(
            "metadata.name",
            name,
            f"a lowercase {what} must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character",
        )


def assign_name(meta: dict, inv: Invalid):
    if not meta.get("name"):
        if meta.get("generateName"):
            meta["name"] = meta["generateName"] + random_suffix()
            inv.name = meta["name"]
        else:
            inv.required("metadata.name", "name or generateName is required")


# ----------------------------------------------------------------------------- pods
def image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in image:
        return "IfNotPresent"
    return "Always" if ":" not in last or last.endswith(":latest") else "IfNotPresent"


def default_pod_spec(spec: dict):
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in spec.get("containers") or []:
        if c.get("image"):
            c.setdefault("imagePullPolicy", image_pull_policy(c["image"]))
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        res = c.setdefault("resources", {})
        for key in ("limits", "requests"):
            if key in res and isinstance(res[key], dict):
                res[key] = {k: canonical(v) for k, v in res[key].items()}
        # requests default to limits for every resource that has a limit and no request
        for rname, val in (res.get("limits") or {}).items():
            res.setdefault("requests", {}).setdefault(rname, val)
    for v in spec.get("volumes") or []:
        if "emptyDir" in v and v["emptyDir"] is None:
            v["emptyDir"] = {}


def validate_pod_spec(spec: dict, inv: Invalid, path: str):
    containers = spec.get("containers")
    if not containers:
        inv.required(f"{path}.containers")
        return
    if spec.get("restartPolicy") not in ("Always", "OnFailure", "Never"):
        inv.not_supported(f"{path}.restartPolicy", spec.get("restartPolicy"), ["Always", "OnFailure", "Never"])
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    seen = set()
    for i, c in enumerate(containers):
        cpath = f"{path}.containers[{i}]"
        name = c.get("name")
        if not name:
            inv.required(f"{cpath}.name")
        elif not _DNS1123_LABEL.match(name):
            inv.invalid(
                f"{cpath}.name",
                name,
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
            )
        elif name in seen:
            inv.add(f"{cpath}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"')
        seen.add(name)
        if not c.get("image"):
            inv.required(f"{cpath}.image")
        for j, env in enumerate(c.get("env") or []):
            if not env.get("name") or not _ENV_NAME.match(env["name"]):
                inv.invalid(
                    f"{cpath}.env[{j}].name",
                    env.get("name", ""),
                    "a valid environment variable name must "
                    "consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit",
                )
        res = c.get("resources") or {}
        for key in ("limits", "requests"):
            for rname, val in (res.get(key) or {}).items():
                try:
                    q = parse_quantity(val)
                except QuantityError as exc:
                    inv.invalid(f"{cpath}.resources.{key}[{rname}]", val, str(exc))
                    continue
                if q < 0:
                    inv.invalid(f"{cpath}.resources.{key}[{rname}]", val, "must be greater than or equal to 0")
        for rname, req in (res.get("requests") or {}).items():
            lim = (res.get("limits") or {}).get(rname)
            try:
                if lim is not None and parse_quantity(req) > parse_quantity(lim):
                    inv.invalid(
                        f"{cpath}.resources.requests", req, f"must be less than or equal to {rname} limit of {lim}"
                    )
            except QuantityError:
                pass
        for j, m in enumerate(c.get("volumeMounts") or []):
            if m.get("name") not in volumes:
                inv.add(f"{cpath}.volumeMounts[{j}].name", "FieldValueNotFound", f'Not found: "{m.get("name")}"')
            if not m.get("mountPath"):
                inv.required(f"{cpath}.volumeMounts[{j}].mountPath")


def prepare_pod(body: dict, namespace: str) -> dict:
    """Default + validate a Pod for creation (the object the API server would store)."""
    pod = copy.deepcopy(body)
    pod["apiVersion"], pod["kind"] = "v1", "Pod"
    meta = pod.setdefault("metadata", {})
    meta["namespace"] = namespace
    inv = Invalid("Pod", "", meta.get("name") or meta.get("generateName") or "")
    assign_name(meta, inv)
    if meta.get("name"):
        _check_name(inv, meta["name"], 253, label=False)
    spec = pod.setdefault("spec", {})
    default_pod_spec(spec)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault(
        "tolerations",
        [
            {"key": f"node.kubernetes.io/{t}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            for t in ("not-ready", "unreachable")
        ],
    )
    validate_pod_spec(spec, inv, "spec")
    inv.raise_if_any()
    meta["uid"] = str(uuid.uuid4())
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}
    return pod


def qos_class(spec: dict) -> str:
    any_set, guaranteed = False, True
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or parse_quantity(req.get(r, lim[r])) != parse_quantity(lim[r]):
                guaranteed = False
    return "BestEffort" if not any_set else "Guaranteed" if guaranteed else "Burstable"


def pod_requests(pod: dict) -> dict[str, Decimal]:
    """Sum of container requests (already defaulted from limits at creation)."""
    total: dict[str, Decimal] = {}
    for c in pod["spec"].get("containers") or []:
        for rname, val in ((c.get("resources") or {}).get("requests") or {}).items():
            total[rname] = total.get(rname, Decimal(0)) + parse_quantity(val)
    return total


def pod_is_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


# ----------------------------------------------------------------------------- jobs
JOB_LABELS = ("batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name", "controller-uid", "job-name")


def prepare_job(body: dict, namespace: str) -> dict:
    job = copy.deepcopy(body)
    job["apiVersion"], job["kind"] = "batch/v1", "Job"
    meta = job.setdefault("metadata", {})
    meta["namespace"] = namespace
    inv = Invalid("Job", "batch", meta.get("name") or meta.get("generateName") or "")
    assign_name(meta, inv)
    if meta.get("name"):
        _check_name(inv, meta["name"], 63, label=True)
    spec = job.setdefault("spec", {})
    template = spec.get("template") or {}
    spec["template"] = template
    tmeta = template.setdefault("metadata", {})
    tspec = template.setdefault("spec", {})
    if not meta.get("labels") and tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])  # SetDefaults_Job copies the template labels
    indexed = spec.get("completionMode") == "Indexed"
    if indexed and spec.get("completions") is None:
        inv.required("spec.completions", "when completion mode is Indexed")
    if spec.get("completionMode", "NonIndexed") not in ("NonIndexed", "Indexed"):
        inv.not_supported("spec.completionMode", spec.get("completionMode"), ["NonIndexed", "Indexed"])
    if spec.get("backoffLimitPerIndex") is not None:
        if not indexed:
            inv.invalid("spec.backoffLimitPerIndex", spec["backoffLimitPerIndex"], "requires indexed completion mode")
        spec.setdefault("backoffLimit", 2147483647)  # per-index limits replace the job-wide one
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        inv.required("spec.backoffLimitPerIndex", "when maxFailedIndexes is specified")
    if indexed:
        for field in ("completions", "parallelism"):
            if isinstance(spec.get(field), int) and spec[field] > 100000:
                inv.invalid(
                    f"spec.{field}", spec[field], "must be less than or equal to 100000 when completion mode is Indexed"
                )
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    default_pod_spec(tspec)
    for field in (
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ):
        val = spec.get(field)
        if val is not None and (not isinstance(val, int) or val < 0):
            inv.invalid(f"spec.{field}", val, "must be greater than or equal to 0")
    if spec.get("activeDeadlineSeconds") == 0:
        inv.invalid("spec.activeDeadlineSeconds", 0, "must be greater than 0")
    validate_pod_spec(tspec, inv, "spec.template.spec")
    if tspec.get("restartPolicy") not in ("OnFailure", "Never"):
        inv.not_supported("spec.template.spec.restartPolicy", tspec.get("restartPolicy"), ["OnFailure", "Never"])
    inv.raise_if_any()
    uid = str(uuid.uuid4())
    meta["uid"] = uid
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = tmeta.setdefault("labels", {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": meta["name"],
                "controller-uid": uid,
                "job-name": meta["name"],
            }
        )
    job["status"] = {}
    return job


COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def pod_for_job(job: dict, index: int | None = None) -> dict:
    """The Pod the Job controller creates from the job's template; for an Indexed Job, the pod of ``index``:
    named ``<job>-<index>-<suffix>``, with the completion index as annotation and label (v1.28+), hostname
    ``<job>-<index>`` and JOB_COMPLETION_INDEX in every container (from the annotation, as the controller does)."""
    meta, template = job["metadata"], job["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": meta["name"] + "-" + (f"{index}-" if index is not None else ""),
            "labels": dict(template.get("metadata", {}).get("labels") or {}),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": copy.deepcopy(template["spec"]),
    }
    if template.get("metadata", {}).get("annotations"):
        pod["metadata"]["annotations"] = dict(template["metadata"]["annotations"])
    if index is not None:
        pod["metadata"].setdefault("annotations", {})[COMPLETION_INDEX] = str(index)
        pod["metadata"]["labels"][COMPLETION_INDEX] = str(index)
        pod["spec"].setdefault("hostname", f"{meta['name']}-{index}")
        env = {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}},
        }
        for c in pod["spec"].get("containers") or []:
            c["env"] = [e for e in c.get("env") or [] if e.get("name") != "JOB_COMPLETION_INDEX"] + [env]
    return pod


def condition(ctype: str, reason: str = "", message: str = "", status: str = "True", probe: bool = True) -> dict:
    cond = {"type": ctype, "status": status, "lastTransitionTime": now_iso()}
    if probe:
        cond["lastProbeTime"] = cond["lastTransitionTime"]
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def set_condition(conditions: list, new: dict):
    """Replace the condition of the same type, keeping lastTransitionTime if the status is unchanged."""
    for i, cond in enumerate(conditions):
        if cond["type"] == new["type"]:
            if cond.get("status") == new.get("status"):
                new["lastTransitionTime"] = cond.get("lastTransitionTime", new["lastTransitionTime"])
                if "lastProbeTime" in cond and "lastProbeTime" in new:
                    new["lastProbeTime"] = cond["lastProbeTime"]
            conditions[i] = new
            return
    conditions.append(new)


# ----------------------------------------------------------------------------- events
class Recorder:
    """Writes core/v1 Events, aggregating repeats (count, lastTimestamp) like client-go's recorder."""

    def __init__(self, store: Store):
        self.store = store

    def event(
        self, obj: dict, etype: str, reason: str, message: str, component: str, host: str = "", field_path: str = ""
    ):
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        with self.store.lock:
            for ev in self.store.list("events", ns)[0]:
                io = ev["involvedObject"]
                if io.get("uid") == meta.get("uid") and ev["reason"] == reason and ev["message"] == message:

                    def bump(e):
                        e["count"] = e.get("count", 1) + 1
                        e["lastTimestamp"] = now_iso()

                    self.store.update("events", ns, ev["metadata"]["name"], bump)
                    return
            involved = {
                "kind": obj.get("kind"),
                "namespace": ns,
                "name": meta["name"],
                "uid": meta.get("uid"),
                "apiVersion": obj.get("apiVersion"),
                "resourceVersion": meta.get("resourceVersion"),
            }
            if field_path:
                involved["fieldPath"] = field_path
            source = {"component": component}
            if host:
                source["host"] = host
            ts = now_iso()
            self.store.create(
                "events",
                {
                    "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": ns},
                    "involvedObject": involved,
                    "reason": reason,
                    "message": message,
                    "source": source,
                    "firstTimestamp": ts,
                    "lastTimestamp": ts,
                    "count": 1,
                    "type": etype,
                    "eventTime": None,
                    "reportingComponent": component,
                    "reportingInstance": host,
                },
            )
