"""Docker side of the kubelet: turn a pod's container spec into docker create() arguments, run it,
capture its log stream, and report how it ended."""

from __future__ import annotations

import os
import re
import stat
import threading
from decimal import Decimal

from .quantity import parse_quantity, to_int_ceil, to_nano

EMULATOR_LABEL = "k8s-emulator"
INSTANCE_LABEL = "k8s-emulator.instance"
_TS_RE = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) ?")
_VAR_RE = re.compile(r"\$\$|\$\(([A-Za-z_][-._A-Za-z0-9]*)\)")


class ConfigError(Exception):
    """Container config cannot be built: kubelet reports CreateContainerConfigError."""


class MountError(Exception):
    """A volume cannot be set up: kubelet reports a FailedMount event and the pod stays ContainerCreating."""


def expand(value: str, env: dict) -> str:
    """Kubernetes $(VAR) expansion (``$$`` escapes; unknown references stay as written)."""

    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_RE.sub(sub, value)


def normalize_image(image: str) -> str:
    """``foo`` -> ``docker.io/library/foo:latest`` as container runtimes name it in errors."""
    name = image
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = "docker.io/library/" + name
    elif "." not in first and ":" not in first and first != "localhost":
        name = "docker.io/" + name
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def k8s_time(docker_time: str | None) -> str | None:
    """Docker's RFC 3339 nano timestamp -> metav1.Time (second precision)."""
    if not docker_time or docker_time.startswith("0001-"):
        return None
    return docker_time[:19] + "Z"


# ----------------------------------------------------------------------------- logs
class LogBuffer:
    """Lines a container printed (stdout and stderr interleaved), with their runtime timestamps."""

    def __init__(self):
        self.entries: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.done = False

    def append(self, ts: str, data: bytes):
        with self.cond:
            self.entries.append((ts, data))
            self.cond.notify_all()

    def finish(self):
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def wait_for(self, index: int, timeout: float) -> tuple[list[tuple[str, bytes]], bool]:
        """Entries from ``index`` on (waiting up to timeout for some), and whether the log is complete."""
        with self.cond:
            if len(self.entries) <= index and not self.done:
                self.cond.wait(timeout)
            return self.entries[index:], self.done


class ContainerRun:
    """One docker container = one run of a pod container (a restart is a new run)."""

    def __init__(self, container, name: str, restart_count: int, on_exit):
        self.container, self.name, self.restart_count = container, name, restart_count
        self.logs = LogBuffer()
        self.exit_code: int | None = None
        self.oom_killed = False
        self.error: str | None = None
        self.start_error = False
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.done = threading.Event()
        self._on_exit = on_exit
        self._thread = threading.Thread(target=self._pump, name=f"k8s-emulator-logs-{name}", daemon=True)

    def start(self):
        self.container.start()
        self.container.reload()
        self.started_at = k8s_time(self.container.attrs["State"].get("StartedAt"))
        self._thread.start()

    def _pump(self):
        tty = bool(self.container.attrs.get("Config", {}).get("Tty"))
        try:
            stream = self.container.logs(stream=True, follow=True, timestamps=True)
            pending = b""
            for chunk in stream:
                if tty:  # raw stream: split into lines ourselves
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        self._add(line + b"\n")
                else:  # one frame per log entry
                    self._add(chunk)
            if pending:
                self._add(pending)
        except Exception:  # container removed under us: the run is over either way
            pass
        try:
            result = self.container.wait(timeout=60)
            self.exit_code = int(result.get("StatusCode", -1))
            self.container.reload()
            state = self.container.attrs["State"]
            self.oom_killed = bool(state.get("OOMKilled"))
            self.finished_at = k8s_time(state.get("FinishedAt"))
        except Exception as exc:
            if self.exit_code is None:
                self.exit_code, self.error = 137, f"container vanished: {exc}"
        self.finished_at = self.finished_at or self.started_at
        self.logs.finish()
        self.done.set()
        self._on_exit()

    def fail_start(self, message: str):
        """docker start failed (e.g. executable not found): the kubelet's StartError, exit code 128."""
        self.exit_code, self.error, self.start_error = 128, message, True
        self.logs.finish()
        self.done.set()

    def _add(self, frame: bytes):
        m = _TS_RE.match(frame)
        if m:
            self.logs.append(m.group(1).decode(), frame[m.end() :])
        elif self.logs.entries:
            self.logs.append(self.logs.entries[-1][0], frame)
        else:
            self.logs.append("1970-01-01T00:00:00.000000000Z", frame)

    def terminated_state(self) -> dict:
        code = self.exit_code if self.exit_code is not None else 137
        reason = (
            "StartError"
            if self.start_error
            else "OOMKilled"
            if self.oom_killed
            else "Completed"
            if code == 0
            else "Error"
        )
        state = {
            "exitCode": code,
            "reason": reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": f"docker://{self.container.id}",
        }
        if self.error:
            state["message"] = self.error
        return state


# ----------------------------------------------------------------------------- create() arguments
def field_ref(pod: dict, path: str) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    m = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
        "status.podIP": "127.0.0.1",
        "status.podIPs": "127.0.0.1",
    }
    if path not in simple:
        raise ConfigError(f'unsupported fieldRef fieldPath "{path}"')
    return simple[path] or ""


def resource_ref(container: dict, ref: dict, node_capacity: dict) -> str:
    kind, _, rname = ref.get("resource", "").partition(".")
    res = (container.get("resources") or {}).get(kind) or {}
    value = res.get(rname)
    value = parse_quantity(value) if value is not None else parse_quantity(node_capacity.get(rname, "0"))
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(int(-(-value // divisor)))  # ceil, as the kubelet rounds


def build_env(pod: dict, c: dict, node_capacity: dict) -> dict:
    env = {"HOSTNAME": pod["metadata"]["name"]}
    for src in c.get("envFrom") or []:
        for kind, what in (("configMapRef", "configmap"), ("secretRef", "secret")):
            if kind in src and not src[kind].get("optional"):
                raise ConfigError(f'{what} "{src[kind].get("name")}" not found')
    for e in c.get("env") or []:
        name, vf = e["name"], e.get("valueFrom")
        if vf is None:
            env[name] = expand(str(e.get("value", "")), env)
        elif "fieldRef" in vf:
            env[name] = field_ref(pod, vf["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in vf:
            env[name] = resource_ref(c, vf["resourceFieldRef"], node_capacity)
        else:
            for kind, what in (("configMapKeyRef", "configmap"), ("secretKeyRef", "secret")):
                if kind in vf:
                    if vf[kind].get("optional"):
                        break
                    raise ConfigError(f'{what} "{vf[kind].get("name")}" not found')
            else:
                raise ConfigError(f"env {name}: unsupported valueFrom {sorted(vf)} in the k8s emulator")
    return env


def prepare_volumes(pod: dict, base: str) -> dict:
    """name -> ("bind", host path) | ("tmpfs", size in bytes or None). Raises MountError."""
    vols = {}
    for v in pod["spec"].get("volumes") or []:
        name = v["name"]
        fail = f'MountVolume.SetUp failed for volume "{name}" : '
        if "emptyDir" in v:
            ed = v.get("emptyDir") or {}
            size = to_int_ceil(ed["sizeLimit"]) if ed.get("sizeLimit") else None
            if ed.get("medium") == "Memory":
                vols[name] = ("tmpfs", size)
            else:
                path = os.path.join(base, name)
                os.makedirs(path, exist_ok=True)
                os.chmod(path, 0o777)
                vols[name] = ("bind", path)
        elif "hostPath" in v:
            path, htype = v["hostPath"].get("path", ""), v["hostPath"].get("type") or ""
            if htype == "DirectoryOrCreate":
                os.makedirs(path, exist_ok=True)
            elif htype == "FileOrCreate" and not os.path.exists(path):
                open(path, "a").close()
            checks = {
                "Directory": os.path.isdir,
                "File": os.path.isfile,
                "Socket": lambda p: os.path.exists(p) and stat.S_ISSOCK(os.stat(p).st_mode),
                "CharDevice": lambda p: os.path.exists(p) and stat.S_ISCHR(os.stat(p).st_mode),
                "BlockDevice": lambda p: os.path.exists(p) and stat.S_ISBLK(os.stat(p).st_mode),
            }
            if htype in checks and not checks[htype](path):
                raise MountError(fail + f"hostPath type check failed: {path} is not a {htype.lower()}")
            vols[name] = ("bind", path)
        elif "configMap" in v or "secret" in v:
            kind = "configMap" if "configMap" in v else "secret"
            ref = v[kind].get("name") if kind == "configMap" else v[kind].get("secretName")
            if not v[kind].get("optional"):
                raise MountError(fail + f'{kind.lower()} "{ref}" not found')
            path = os.path.join(base, name)
            os.makedirs(path, exist_ok=True)
            vols[name] = ("bind", path)
        else:
            kinds = sorted(k for k in v if k != "name")
            raise MountError(fail + f"volume type {kinds} is not supported by the k8s emulator")
    return vols


def pod_memory_limit(pod: dict) -> int | None:
    total = Decimal(0)
    for c in pod["spec"].get("containers") or []:
        lim = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        if lim is None:
            return None
        total += parse_quantity(lim)
    return int(total)


def docker_args(pod: dict, c: dict, vols: dict, env: dict, labels: dict, node_capacity: dict) -> dict:
    """Keyword arguments for ``docker_client.containers.create``."""
    import docker.types

    spec = pod["spec"]
    args: dict = {
        "image": c["image"],
        "detach": True,
        "network_mode": "host",
        "labels": labels,
        "environment": [f"{k}={v}" for k, v in env.items()],
    }
    if c.get("command"):
        args["entrypoint"] = [expand(a, env) for a in c["command"]]
    if c.get("args"):
        args["command"] = [expand(a, env) for a in c.get("args") or []]
    if c.get("workingDir"):
        args["working_dir"] = c["workingDir"]
    if c.get("stdin"):
        args["stdin_open"] = True
    if c.get("tty"):
        args["tty"] = True
    res = c.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    if "cpu" in limits:
        args["nano_cpus"] = to_nano(limits["cpu"])
    if "cpu" in requests:
        args["cpu_shares"] = max(2, int(parse_quantity(requests["cpu"]) * 1024))
    if "memory" in limits:
        args["mem_limit"] = args["memswap_limit"] = to_int_ceil(limits["memory"])  # no swap: real OOM kills
    gpus = to_int_ceil(limits.get("nvidia.com/gpu", "0"))
    if gpus:  # accounted by the scheduler; no device can be attached here
        args["environment"].append("NVIDIA_VISIBLE_DEVICES=" + ",".join(str(i) for i in range(gpus)))
    # security context: the container's fields override the pod's
    psc, csc = spec.get("securityContext") or {}, c.get("securityContext") or {}
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    if csc.get("runAsNonRoot", psc.get("runAsNonRoot")) and not uid:
        meta = pod["metadata"]
        raise ConfigError(
            f'container has runAsNonRoot and image will run as root (pod: "{meta["name"]}_'
            f'{meta["namespace"]}({meta["uid"]})", container: {c["name"]})'
        )
    if uid is not None or gid is not None:
        args["user"] = f"{uid if uid is not None else 0}" + (f":{gid}" if gid is not None else "")
    groups = [str(g) for g in psc.get("supplementalGroups") or []]
    if psc.get("fsGroup") is not None:
        groups.append(str(psc["fsGroup"]))
    if groups:
        args["group_add"] = groups
    if csc.get("privileged"):
        args["privileged"] = True
    if csc.get("readOnlyRootFilesystem"):
        args["read_only"] = True
    caps = csc.get("capabilities") or {}
    if caps.get("add"):
        args["cap_add"] = caps["add"]
    if caps.get("drop"):
        args["cap_drop"] = caps["drop"]
    if csc.get("allowPrivilegeEscalation") is False:
        args["security_opt"] = ["no-new-privileges"]
    mounts, tmpfs = [], {}
    for m in c.get("volumeMounts") or []:
        kind, val = vols[m["name"]]
        target, ro = m["mountPath"], bool(m.get("readOnly"))
        if kind == "tmpfs":
            size = val or pod_memory_limit(pod) or to_int_ceil(node_capacity.get("memory", "64Mi"))
            if target == "/dev/shm":
                args["shm_size"] = size
            else:
                tmpfs[target] = f"size={size}" + (",ro" if ro else "")
            continue
        source = val
        if m.get("subPath"):
            source = os.path.join(val, m["subPath"])
            if not os.path.exists(source):
                os.makedirs(source, exist_ok=True)
        mounts.append(docker.types.Mount(target=target, source=source, type="bind", read_only=ro))
    if mounts:
        args["mounts"] = mounts
    if tmpfs:
        args["tmpfs"] = tmpfs
    return args
