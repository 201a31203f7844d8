"""In-memory object store of the emulator: resourceVersion, label/field selectors, watch fan-out.

Mirrors what kube-apiserver + etcd give a client: one global, increasing resourceVersion, objects
keyed by (resource, namespace, name), and a bounded event history so a watch can resume from a
resourceVersion (or get a 410 Expired ERROR event when it is too old).
"""

from __future__ import annotations

import collections
import copy
import datetime as _dt
import queue
import re
import threading
import uuid

HISTORY = 2000  # watch events kept for resuming from an older resourceVersion

# resource -> (group, kind, apiVersion); group "" is the core group
RESOURCES = {
    "jobs": ("batch", "Job", "batch/v1"),
    "pods": ("", "Pod", "v1"),
    "events": ("", "Event", "v1"),
    "namespaces": ("", "Namespace", "v1"),
    "nodes": ("", "Node", "v1"),
    "services": ("", "Service", "v1"),
}


def now_iso(ts: float | None = None) -> str:
    """metav1.Time: RFC 3339, UTC, second precision."""
    t = _dt.datetime.now(_dt.timezone.utc) if ts is None else _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> float:
    return _dt.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc).timestamp()


class ApiError(Exception):
    """An error answered as a metav1.Status object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def qualified(resource: str) -> str:
    group = RESOURCES.get(resource, ("",))[0]
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str) -> ApiError:
    details = {"name": name, "kind": resource}
    if RESOURCES.get(resource, ("",))[0]:
        details["group"] = RESOURCES[resource][0]
    return ApiError(404, "NotFound", f'{qualified(resource)} "{name}" not found', details)


def already_exists(resource: str, name: str) -> ApiError:
    details = {"name": name, "kind": resource}
    if RESOURCES.get(resource, ("",))[0]:
        details["group"] = RESOURCES[resource][0]
    return ApiError(409, "AlreadyExists", f'{qualified(resource)} "{name}" already exists', details)


# ----------------------------------------------------------------------------- selectors
_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_top(expr: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in expr:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(expr: str | None):
    """Return a predicate over a labels dict, for equality- and set-based selectors."""
    reqs = []
    for part in _split_top(expr or ""):
        m = _SET_RE.match(part)
        if m:
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            reqs.append((key, op, vals))
        elif "!=" in part:
            key, val = part.split("!=", 1)
            reqs.append((key.strip(), "!=", val.strip()))
        elif "==" in part or "=" in part:
            key, val = part.split("==", 1) if "==" in part else part.split("=", 1)
            reqs.append((key.strip(), "=", val.strip()))
        elif part.startswith("!"):
            reqs.append((part[1:].strip(), "!exists", None))
        elif re.match(r"^[A-Za-z0-9._/-]+$", part):
            reqs.append((part, "exists", None))
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: invalid label selector: {part!r}")

    def match(labels: dict | None) -> bool:
        labels = labels or {}
        for key, op, val in reqs:
            have = labels.get(key)
            if op == "=":
                ok = have == val
            elif op == "!=":
                ok = have != val
            elif op == "in":
                ok = have in val
            elif op == "notin":
                ok = have not in val
            else:
                ok = (key in labels) == (op == "exists")
            if not ok:
                return False
        return True

    return match


def _lookup(obj: dict, path: str):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def parse_field_selector(expr: str | None):
    """Field selectors: ``a.b=x``, ``a.b==x``, ``a.b!=x`` joined by commas (dotted object paths)."""
    reqs = []
    for part in _split_top(expr or ""):
        if "!=" in part:
            key, val = part.split("!=", 1)
            reqs.append((key.strip(), False, val.strip()))
        elif "=" in part:
            key, val = part.split("==", 1) if "==" in part else part.split("=", 1)
            reqs.append((key.strip(), True, val.strip()))
        else:
            raise ApiError(400, "BadRequest", f'invalid field selector: "{part}": no operator')

    def match(obj: dict) -> bool:
        for key, eq, val in reqs:
            have = _lookup(obj, key)
            have = "" if have is None else str(have)
            if (have == val) != eq:
                return False
        return True

    return match


# ----------------------------------------------------------------------------- store
class Watcher:
    def __init__(self, resource, namespace, label_match, field_match):
        self.resource, self.namespace = resource, namespace
        self.label_match, self.field_match = label_match, field_match
        self.queue: queue.Queue = queue.Queue()

    def wants(self, resource, obj) -> bool:
        meta = obj["metadata"]
        return (
            resource == self.resource
            and (self.namespace is None or meta.get("namespace") == self.namespace)
            and self.label_match(meta.get("labels"))
            and self.field_match(obj)
        )


class Store:
    """Thread-safe objects + watch events. Every mutation bumps the global resourceVersion."""

    def __init__(self):
        self.lock = threading.RLock()
        self.rv = 0
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.history: collections.deque = collections.deque(maxlen=HISTORY)
        self.watchers: list[Watcher] = []
        self.listeners: list = []  # callables(resource, type, obj) run after each change
        self.closed = False

    # -- helpers
    def _emit(self, resource: str, etype: str, obj: dict):
        _, kind, api_version = RESOURCES[resource]
        event_obj = copy.deepcopy(obj)
        event_obj.setdefault("kind", kind)
        event_obj.setdefault("apiVersion", api_version)
        self.history.append((self.rv, resource, etype, event_obj))
        for w in list(self.watchers):
            if w.wants(resource, event_obj):
                w.queue.put({"type": etype, "object": event_obj})
        for listener in list(self.listeners):
            listener(resource, etype, event_obj)

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    # -- CRUD
    def get(self, resource: str, namespace: str, name: str) -> dict:
        with self.lock:
            obj = self.objects.get((resource, namespace or "", name))
            if obj is None:
                raise not_found(resource, name)
            return copy.deepcopy(obj)

    def find(self, resource: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            obj = self.objects.get((resource, namespace or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: str, namespace: str | None = None, label_selector=None, field_selector=None):
        lmatch, fmatch = parse_label_selector(label_selector), parse_field_selector(field_selector)
        with self.lock:
            items = [
                copy.deepcopy(o)
                for (r, ns, _), o in sorted(self.objects.items())
                if r == resource
                and (namespace is None or ns == namespace)
                and lmatch(o["metadata"].get("labels"))
                and fmatch(o)
            ]
            return items, str(self.rv)

    def create(self, resource: str, obj: dict) -> dict:
        with self.lock:
            meta = obj["metadata"]
            key = (resource, meta.get("namespace", ""), meta["name"])
            if key in self.objects:
                raise already_exists(resource, meta["name"])
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_iso())
            meta["resourceVersion"] = self._next_rv()
            if resource in ("jobs", "pods"):
                meta.setdefault("generation", 1)
            self.objects[key] = copy.deepcopy(obj)
            self._emit(resource, "ADDED", obj)
            return copy.deepcopy(obj)

    def update(self, resource: str, namespace: str, name: str, mutate, uid: str | None = None):
        """Apply ``mutate(obj)`` under the lock; emit MODIFIED only if something changed.

        Returns the new object, or None when the object is gone (or was replaced: uid differs).
        """
        with self.lock:
            key = (resource, namespace or "", name)
            cur = self.objects.get(key)
            if cur is None or (uid and cur["metadata"].get("uid") != uid):
                return None
            new = copy.deepcopy(cur)
            mutate(new)
            # stored as a copy of its own: ``mutate`` may have put in a dict or list that its caller keeps and
            # changes later, outside the lock (seen: a list() deep copy failing "dictionary changed size")
            new = copy.deepcopy(new)
            if new == cur:
                return copy.deepcopy(cur)
            new["metadata"]["resourceVersion"] = self._next_rv()
            self.objects[key] = new
            self._emit(resource, "MODIFIED", new)
            return copy.deepcopy(new)

    def remove(self, resource: str, namespace: str, name: str, uid: str | None = None) -> dict | None:
        with self.lock:
            key = (resource, namespace or "", name)
            cur = self.objects.get(key)
            if cur is None or (uid and cur["metadata"].get("uid") != uid):
                return None
            del self.objects[key]
            cur["metadata"]["resourceVersion"] = self._next_rv()
            self._emit(resource, "DELETED", cur)
            return copy.deepcopy(cur)

    # -- watch
    def watch(self, resource, namespace, label_selector, field_selector, resource_version):
        """Register a watcher; returns (watcher, initial events). Raises ApiError 410 if too old."""
        w = Watcher(resource, namespace, parse_label_selector(label_selector), parse_field_selector(field_selector))
        with self.lock:
            initial = []
            if resource_version in (None, "", "0"):
                # "Get State and Start at Most Recent": synthetic ADDED for every matching object
                for (r, _ns, _), obj in sorted(self.objects.items()):
                    o = copy.deepcopy(obj)
                    o.setdefault("kind", RESOURCES[r][1])
                    o.setdefault("apiVersion", RESOURCES[r][2])
                    if w.wants(r, o):
                        initial.append({"type": "ADDED", "object": o})
            else:
                try:
                    since = int(resource_version)
                except ValueError:
                    raise ApiError(400, "BadRequest", f'invalid resource version: "{resource_version}"') from None
                oldest = self.history[0][0] if self.history else self.rv + 1
                if since < oldest - 1 and len(self.history) == self.history.maxlen:
                    raise ApiError(410, "Expired", f"too old resource version: {since} ({self.rv})")
                for rv, r, etype, obj in self.history:
                    if rv > since and w.wants(r, obj):
                        initial.append({"type": etype, "object": copy.deepcopy(obj)})
            self.watchers.append(w)
        return w, initial

    def unwatch(self, w: Watcher):
        with self.lock:
            if w in self.watchers:
                self.watchers.remove(w)

    def close(self):
        with self.lock:
            self.closed = True
            for w in self.watchers:
                w.queue.put(None)
            self.watchers.clear()
