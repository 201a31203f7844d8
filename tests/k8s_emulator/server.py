"""A Kubernetes API server emulator for tests: the REST paths the official `kubernetes` client calls
for batch/v1 Jobs, core/v1 Pods (incl. logs), Events, Namespaces and Nodes, with watch; each pod's
containers run on the local Docker engine (network_mode=host).

    emu = KubeEmulator(node_capacity={"cpu": "2", "memory": "4Gi"}).start()
    kubernetes.config.load_kube_config(config_file=emu.write_kubeconfig(tmp_path / "kubeconfig"))
    ...
    emu.stop()   # stops serving, removes every container it started
"""

from __future__ import annotations

import copy
import json
import logging
import os
import select
import socket
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .controller import Controller
from .kubelet import Kubelet
from .objects import NODE_NAME, Recorder, prepare_job, prepare_pod
from .services import prepare_service
from .store import RESOURCES, ApiError, Store, now_iso

log = logging.getLogger(__name__)
DEFAULT_CAPACITY = {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "0"}
K8S_VERSION = ("1", "31", "v1.31.0-k8s-emulator")
NAMESPACED = {"jobs", "pods", "events", "services"}
WATCH_DEFAULT_TIMEOUT = 1800
VERBS = ["create", "delete", "get", "list", "patch", "watch"]


def _merge_patch(target, patch):
    """RFC 7386 JSON merge patch (strategic merge patches are applied the same way)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, val in patch.items():
        if val is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), val)
    return out


class KubeEmulator:
    def __init__(
        self,
        node_capacity: dict | None = None,
        docker_client=None,
        host: str = "127.0.0.1",
        port: int = 0,
        grace_period_cap: float = 5.0,
        backoff_seconds: float = 1.0,
    ):
        self.node_capacity = dict(node_capacity if node_capacity is not None else DEFAULT_CAPACITY)
        self.node_capacity.setdefault("pods", "110")
        self.docker_client, self.host, self.port = docker_client, host, port
        self.grace_period_cap, self.backoff_seconds = grace_period_cap, backoff_seconds
        self.instance = uuid.uuid4().hex[:12]
        self.store = Store()
        self.recorder = Recorder(self.store)
        self.stopping = threading.Event()
        self.httpd: ThreadingHTTPServer | None = None
        self.kubelet: Kubelet | None = None
        self.controller: Controller | None = None

    # ------------------------------------------------------------------ public API
    @property
    def url(self) -> str:
        if self.httpd is None:
            raise RuntimeError("KubeEmulator is not started")
        return f"http://{self.host}:{self.httpd.server_address[1]}"

    def start(self) -> "KubeEmulator":
        if self.docker_client is None:
            import docker

            self.docker_client = docker.from_env(timeout=120)
        workdir = tempfile.mkdtemp(prefix=f"k8s-emulator-{self.instance}-")
        self.kubelet = Kubelet(
            self.store,
            self.recorder,
            self.docker_client,
            self.instance,
            self.node_capacity,
            self.grace_period_cap,
            self.backoff_seconds,
            workdir,
        )
        self.controller = Controller(self.store, self.recorder, self.kubelet, self.node_capacity, self.backoff_seconds)
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.ensure_namespace(ns)
        self.store.create("nodes", self._node())
        handler = type("KubeEmulatorHandler", (_Handler,), {"emu": self})
        self.httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self.httpd.daemon_threads = True
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="k8s-emulator-http", daemon=True
        ).start()
        self.controller.start()
        return self

    def stop(self):
        """Stop serving and controllers; remove every docker container this emulator started."""
        self.stopping.set()
        if self.controller:
            self.controller.stop()
        self.store.close()
        if self.kubelet:
            self.kubelet.stop()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def ensure_namespace(self, name: str):
        if self.store.find("namespaces", "", name) is None:
            self.store.create(
                "namespaces",
                {
                    "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )

    def write_kubeconfig(self, path, namespace: str = "default") -> str:
        """Write a kubeconfig (plain http, dummy bearer token) whose current context targets this emulator."""
        self.ensure_namespace(namespace)
        path = os.fspath(path)
        text = (
            f"apiVersion: v1\nkind: Config\nclusters:\n- name: k8s-emulator\n  cluster:\n    server: {self.url}\n"
            f"contexts:\n- name: k8s-emulator\n  context:\n    cluster: k8s-emulator\n    user: k8s-emulator\n"
            f"    namespace: {namespace}\ncurrent-context: k8s-emulator\npreferences: {{}}\n"
            f"users:\n- name: k8s-emulator\n  user:\n    token: k8s-emulator-dummy-token\n"
        )
        with open(path, "w") as fh:
            fh.write(text)
        return path

    def containers(self, all: bool = True) -> list:
        """Docker containers this emulator started and has not removed yet."""
        from .runtime import INSTANCE_LABEL

        return self.docker_client.containers.list(all=all, filters={"label": f"{INSTANCE_LABEL}={self.instance}"})

    def _node(self) -> dict:
        cap = dict(self.node_capacity)
        ts = now_iso()
        return {
            "metadata": {"name": NODE_NAME, "labels": self.controller.node_labels()},
            "spec": {},
            "status": {
                "capacity": cap,
                "allocatable": cap,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": ts,
                        "lastTransitionTime": ts,
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": NODE_NAME},
                ],
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": "",
                    "containerRuntimeVersion": "docker://",
                    "kernelVersion": "",
                    "kubeProxyVersion": "",
                    "kubeletVersion": K8S_VERSION[2],
                    "machineID": "",
                    "operatingSystem": "linux",
                    "osImage": "k8s-emulator",
                    "systemUUID": "",
                },
            },
        }

    # ------------------------------------------------------------------ discovery
    def discovery(self, path: str):
        version = {
            "major": K8S_VERSION[0],
            "minor": K8S_VERSION[1],
            "gitVersion": K8S_VERSION[2],
            "gitCommit": "0" * 40,
            "gitTreeState": "clean",
            "buildDate": "2024-08-13T07:28:49Z",
            "goVersion": "go1.22.5",
            "compiler": "gc",
            "platform": "linux/amd64",
        }
        batch_v1 = {"groupVersion": "batch/v1", "version": "v1"}
        batch = {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": "batch",
            "versions": [batch_v1],
            "preferredVersion": batch_v1,
        }

        def resources(group_version, names):
            out = []
            for name in names:
                _, kind, _ = RESOURCES[name.split("/")[0]]
                out.append(
                    {
                        "name": name,
                        "singularName": "" if "/" in name else kind.lower(),
                        "namespaced": name.split("/")[0] in NAMESPACED,
                        "kind": kind,
                        "verbs": ["get"] if "/" in name else VERBS,
                    }
                )
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": out}

        return {
            "/version": version,
            "/api": {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.httpd.server_address[1]}"}
                ],
            },
            "/apis": {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [{k: v for k, v in batch.items() if k not in ("kind", "apiVersion")}],
            },
            "/apis/batch": batch,
            "/api/v1": resources(
                "v1", ["events", "namespaces", "nodes", "pods", "pods/log", "pods/status", "services"]
            ),
            "/apis/batch/v1": resources("batch/v1", ["jobs", "jobs/status"]),
        }.get(path.rstrip("/") or "/")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    emu: KubeEmulator
    timeout = 120  # idle keep-alive connections are dropped after this

    def log_message(self, fmt, *args):
        log.debug("k8s-emulator: " + fmt, *args)

    do_GET = lambda self: self._dispatch("GET")  # noqa: E731
    do_POST = lambda self: self._dispatch("POST")  # noqa: E731
    do_PUT = lambda self: self._dispatch("PUT")  # noqa: E731
    do_PATCH = lambda self: self._dispatch("PATCH")  # noqa: E731
    do_DELETE = lambda self: self._dispatch("DELETE")  # noqa: E731

    # ------------------------------------------------------------------ plumbing
    def send_json(self, code: int, obj, headers: dict | None = None):
        data = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(data)))
        for key, val in (headers or {}).items():
            self.send_header(key, val)
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self, content_type: str):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data: bytes):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _dispatch(self, method: str):
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError as exc:
                raise ApiError(400, "BadRequest", f"the object provided is unrecognized: {exc}") from None
            self.route(method, url.path, query, body)
        except ApiError as exc:
            self.send_json(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the emulator: answer like the API server's 500
            log.exception("k8s emulator: %s %s failed", method, self.path)
            self.send_json(500, ApiError(500, "InternalError", f"Internal error occurred: {exc}").status())

    # ------------------------------------------------------------------ routing
    def route(self, method: str, path: str, q: dict, body):
        emu = self.emu
        if method == "GET" and path in ("/healthz", "/livez", "/readyz"):
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(data)
            return
        found = emu.discovery(path) if method == "GET" else None
        if found is not None:
            return self.send_json(200, found)
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif parts[:3] == ["apis", "batch", "v1"]:
            group, rest = "batch", parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        watch = bool(rest) and rest[0] == "watch"
        rest = rest[1:] if watch else rest
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if (
            not rest
            or len(rest) > 3
            or rest[0] not in RESOURCES
            or RESOURCES[rest[0]][0] != group
            or (ns is not None and rest[0] not in NAMESPACED)
            or (ns is None and rest[0] in NAMESPACED and len(rest) > 1)
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resource, name = rest[0], rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if watch or q.get("watch") in ("true", "1"):
            if method != "GET" or sub:
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            if name:
                q["fieldSelector"] = ",".join(filter(None, [q.get("fieldSelector"), f"metadata.name={name}"]))
            return self.watch(resource, ns, q)
        if name is None:
            if method == "GET":
                return self.list(resource, ns, q)
            if method == "POST":
                return self.create(resource, ns, q, body)
        elif sub is None:
            if method == "GET":
                return self.send_json(200, emu.store.get(resource, ns or "", name))
            if method == "DELETE":
                return self.delete(resource, ns, name, q, body or {})
            if method == "PATCH":
                return self.patch(resource, ns, name, q, body)
        elif sub == "status" and resource in ("jobs", "pods") and method == "GET":
            return self.send_json(200, emu.store.get(resource, ns or "", name))
        elif sub == "log" and resource == "pods" and method == "GET":
            return self.logs(ns, name, q)
        elif sub not in ("status", "log"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # ------------------------------------------------------------------ verbs
    def list(self, resource: str, ns: str | None, q: dict):
        items, rv = self.emu.store.list(resource, ns, q.get("labelSelector"), q.get("fieldSelector"))
        for item in items:  # the API server leaves kind/apiVersion off list items
            item.pop("kind", None)
            item.pop("apiVersion", None)
        _, kind, api_version = RESOURCES[resource]
        meta = {"resourceVersion": rv}
        limit, start = int(q.get("limit") or 0), 0
        if q.get("continue"):
            try:
                start = int(json.loads(bytes.fromhex(q["continue"]).decode())["start"])
            except (ValueError, KeyError):
                raise ApiError(400, "BadRequest", "continue key is not valid") from None
        if limit:
            if start + limit < len(items):
                meta["continue"] = json.dumps({"start": start + limit}).encode().hex()
                meta["remainingItemCount"] = len(items) - start - limit
            items = items[start : start + limit]
        self.send_json(200, {"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta, "items": items})

    def create(self, resource: str, ns: str | None, q: dict, body):
        emu = self.emu
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        _, kind, api_version = RESOURCES[resource]
        if body.get("kind") not in (None, kind) or body.get("apiVersion") not in (None, api_version):
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({body.get('apiVersion')}) does not match "
                f"the expected API version ({api_version})",
            )
        body_ns = (body.get("metadata") or {}).get("namespace")
        if ns is not None and body_ns not in (None, "", ns):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        if ns is not None and emu.store.find("namespaces", "", ns) is None:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})
        if resource == "jobs":
            obj = prepare_job(body, ns)
        elif resource == "pods":
            obj = prepare_pod(body, ns)
        elif resource == "namespaces":
            obj = copy.deepcopy(body)
            name = (obj.get("metadata") or {}).get("name")
            obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        elif resource == "services":
            obj = prepare_service(body, ns)
        elif resource == "events":
            obj = copy.deepcopy(body)
            obj.setdefault("metadata", {})["namespace"] = ns
        else:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if not (obj.get("metadata") or {}).get("name"):
            raise ApiError(
                422, "Invalid", f'{kind} "" is invalid: metadata.name: Required value: name or generateName is required'
            )
        if q.get("dryRun") == "All":
            obj["metadata"].setdefault("creationTimestamp", now_iso())
            return self.send_json(201, obj)
        self.send_json(201, emu.store.create(resource, obj))

    def delete(self, resource: str, ns: str | None, name: str, q: dict, opts: dict):
        emu = self.emu
        uid = (opts.get("preconditions") or {}).get("uid")
        if resource == "jobs":
            policy = q.get("propagationPolicy") or opts.get("propagationPolicy")
            orphan = opts.get("orphanDependents")
            if policy is None and orphan is not None:
                policy = "Orphan" if orphan else "Background"
            headers = {}
            if policy is None:
                headers["Warning"] = (
                    '299 - "child pods are preserved by default when jobs are deleted; set '
                    "propagationPolicy=Background to remove them or set propagationPolicy=Orphan "
                    'to suppress this warning"'
                )
            code, out = emu.controller.delete_job(ns, name, policy, uid=uid)
            return self.send_json(code, out, headers)
        if resource == "pods":
            grace = q.get("gracePeriodSeconds", opts.get("gracePeriodSeconds"))
            pod = emu.controller.delete_pod(ns, name, None if grace is None else int(grace), uid=uid)
            return self.send_json(200, pod)
        if resource in ("events", "services"):
            obj = emu.store.remove(resource, ns, name)
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource})
            if resource == "services":  # the API server answers a Service's DELETE with the object
                return self.send_json(200, obj)
            return self.send_json(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {"name": name, "kind": "events", "uid": obj["metadata"]["uid"]},
                },
            )
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def patch(self, resource: str, ns: str | None, name: str, q: dict, body):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted "
                f"media types include: application/merge-patch+json, "
                f"application/strategic-merge-patch+json (k8s emulator); got {ctype}",
            )
        if resource not in ("jobs", "pods"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        self.emu.store.get(resource, ns, name)

        def mutate(obj):
            patched = _merge_patch(obj, body or {})
            patched["metadata"].update(
                {k: obj["metadata"][k] for k in ("name", "namespace", "uid", "creationTimestamp")}
            )
            obj.clear()
            obj.update(patched)

        self.send_json(200, self.emu.store.update(resource, ns, name, mutate))

    def watch(self, resource: str, ns: str | None, q: dict):
        store = self.emu.store
        timeout = int(q.get("timeoutSeconds") or WATCH_DEFAULT_TIMEOUT)
        deadline = time.time() + timeout
        try:
            watcher, initial = store.watch(
                resource, ns, q.get("labelSelector"), q.get("fieldSelector"), q.get("resourceVersion")
            )
        except ApiError as exc:
            if exc.code != 410:
                raise
            self.start_stream("application/json")
            self.chunk(json.dumps({"type": "ERROR", "object": exc.status()}).encode() + b"\n")
            return self.end_stream()
        try:
            self.start_stream("application/json")
            for ev in initial:
                self.chunk(json.dumps(ev, separators=(",", ":")).encode() + b"\n")
            if q.get("sendInitialEvents") == "true":
                _, kind, api_version = RESOURCES[resource]
                self.chunk(
                    json.dumps(
                        {
                            "type": "BOOKMARK",
                            "object": {
                                "kind": kind,
                                "apiVersion": api_version,
                                "metadata": {
                                    "resourceVersion": str(store.rv),
                                    "annotations": {"k8s.io/initial-events-end": "true"},
                                },
                            },
                        }
                    ).encode()
                    + b"\n"
                )
            while not self.emu.stopping.is_set():
                left = deadline - time.time()
                if left <= 0 or self.client_gone():
                    break
                try:
                    ev = watcher.queue.get(timeout=min(left, 0.5))
                except Exception:
                    continue
                if ev is None:
                    break
                self.chunk(json.dumps(ev, separators=(",", ":")).encode() + b"\n")
            self.end_stream()
        finally:
            store.unwatch(watcher)

    def logs(self, ns: str, name: str, q: dict):
        run = self.emu.kubelet.log_source(ns, name, q.get("container"), q.get("previous") in ("true", "1"))
        follow = q.get("follow") in ("true", "1")
        stamps = q.get("timestamps") in ("true", "1")
        limit = int(q["limitBytes"]) if q.get("limitBytes") else None
        since = None
        if q.get("sinceSeconds"):
            since = time.time() - int(q["sinceSeconds"])
        elif q.get("sinceTime"):
            from .store import parse_iso

            since = parse_iso(q["sinceTime"])
        entries, done = run.logs.wait_for(0, 0)
        index = len(entries)
        if since is not None:
            from .store import parse_iso

            entries = [e for e in entries if parse_iso(e[0]) >= since]
        if q.get("tailLines") is not None:
            n = int(q["tailLines"])
            entries = entries[-n:] if n > 0 else []
        self.start_stream("text/plain")
        sent = 0
        while True:
            for ts, data in entries:
                out = (ts.encode() + b" " + data) if stamps else data
                if limit is not None:
                    out = out[: max(0, limit - sent)]
                self.chunk(out)
                sent += len(out)
            if (
                not follow
                or (done and not entries)
                or (limit is not None and sent >= limit)
                or self.emu.stopping.is_set()
                or self.client_gone()
            ):
                break
            entries, done = run.logs.wait_for(index, 0.5)
            index += len(entries)
        self.end_stream()
