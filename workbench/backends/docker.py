"""Tasks as containers on a Docker engine, through the docker SDK.

Each task is one container running the same entrypoint as everywhere else
(``python3 -m workbench.task run ...``), with:

- the project root mounted read-only at its own absolute path (also the working directory), the
  workbench package mounted read-only at its own path and put on PYTHONPATH (the image needs only
  python3), a local datastore mounted read-only at its own path with the task's own writable outbox
  over it (what the task saves goes there; after the container exits the runtime checks each new
  blob against its hash and moves it in, see :mod:`workbench.datastore.outbox`), and a read-only
  bytecode cache of the project and image that the runtime fills (:mod:`.docker_cache`);
- with an S3 datastore, an outbox prefix of its own (ingested the same way, :mod:`workbench.datastore.outbox_s3`)
  and credentials of its own on a tmpfs, mounted read-only (refreshed when scoped), never in its
  environment; where STS allows, they may write only that outbox (:class:`workbench.aws.TaskCredentials`);
- the step's resources as hard limits (nano_cpus, mem_limit with swap off, shm_size, GPU device
  requests), so a step that would be killed in the cloud is killed here first;
- the invoking user's uid:gid, host or no networking (never a bridge), and labels naming the project,
  flow, run, step and task, plus the owner (host, pid and start time of the runtime process) so that
  a later run can remove what a crashed run left behind without touching a live run's containers.

stdout and stderr are read apart, live, through one attach connection opened before the container
starts. The entrypoint is wrapped in a tiny ``sh`` script that, after the task's process has ended,
reads the container's cgroup high-water marks (peak memory, CPU time) and reports them on stderr
behind a marker that the log reader strips; that is what ``TaskExit.usage`` holds.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from ..aws import secret_dir
from ..datastore.outbox_local import ingest, new_outbox
from ..datastore.outbox_s3 import ingest_s3, new_outbox_prefix
from ..datastore.records import TaskStatus
from ..errors import EngineUnreachable, ResourceError, WorkbenchError
from ..exitcodes import exit_from_code
from ..units import format_memory
from .base import Backend, Capacity, LogCallback, RunContext, TaskExit, TaskHandle, TaskSpec
from .docker_cache import BytecodeCaches
from .docker_config import OWNER_LABEL, RUN_LABEL, container_config, datastore_dir, package_dir, write_secret_env
from .docker_status import MIB, USAGE_MARK, classify_exit, parse_usage
from .docker_status import USAGE_SCRIPT as USAGE_SCRIPT  # re-exported: container_config wraps the entrypoint in it

ENGINE_HINT = (
    "start one with scripts/start-docker.sh (or `dockerd --bridge=none --iptables=false`), "
    "or point DOCKER_HOST at a running engine"
)
IMAGE_HINT = "build it with `workbench image build`, or scripts/build-base-image.sh for the base image"


def _process_start(pid: int) -> Optional[str]:
    """A process's start time (clock ticks since boot), to tell a live pid from a reused one."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def owner_id() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid) or '-'}"


def owner_alive(owner: str) -> Optional[bool]:
    """True/False for an owner on this host; None when it is another host's (not ours to judge)."""
    try:
        host, pid_s, start = owner.rsplit(":", 2)
        pid = int(pid_s)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return start == "-" or _process_start(pid) in (None, start)


class _ContainerHandle(TaskHandle):
    def __init__(
        self, backend: "DockerBackend", spec: TaskSpec, on_log: LogCallback, on_exit: Callable[[TaskExit], None]
    ):
        self.backend = backend
        self.spec = spec
        self.on_log = on_log
        self.on_exit = on_exit
        self.requested: Optional[str] = None
        self.timeout = False  # the cancel was the runtime's hard deadline
        self.container_id: Optional[str] = None
        self._lock = threading.Lock()
        self.usage: dict[str, float] = {}
        self.outbox: Optional[str] = None  # a local store's outbox directory
        self.s3_outbox: Optional[str] = None  # an S3 store's outbox prefix
        self.credentials_file: Optional[str] = None
        self.secret_env_file: Optional[str] = None
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"docker {spec.ref}")
        self.thread.start()

    def cancel(self, reason: str = "cancelled", *, timeout: bool = False) -> None:
        with self._lock:
            if self.requested is None:
                self.requested, self.timeout = reason, timeout
            cid = self.container_id
        if cid:
            threading.Thread(target=self.backend._kill, args=(cid,), daemon=True).start()

    # ------------------------------------------------------------------ the task's life
    def _run(self) -> None:
        import docker.errors as de

        backend, spec = self.backend, self.spec
        result: Optional[TaskExit] = None
        cid = None
        try:
            image = backend.environments.image_for_task(backend.image_for(spec.settings), spec)
            store = datastore_dir(spec.datastore_url)
            if store:
                self.outbox = new_outbox(store, f"{spec.run_id}-{spec.step}-{spec.task_id}-{spec.attempt}")
            elif backend.task_credentials is not None:
                self.s3_outbox = new_outbox_prefix(spec.run_id, spec.step, spec.task_id, spec.attempt)
                self.credentials_file = backend.credentials_for(spec, self.s3_outbox)
            self.secret_env_file = write_secret_env(backend.secret_dir(), spec) if spec.settings.env else None
            pycache = backend._caches.for_image(image, spec.project_root, package_dir(), backend.user)
            cfg = container_config(
                spec,
                image=image,
                network=backend.network,
                user=backend.user,
                owner=backend.owner,
                pycache=pycache,
                extra_env=backend.extra_env,
                outbox=self.outbox
                or (f"{spec.datastore_url.rstrip('/')}/{self.s3_outbox}" if self.s3_outbox else None),
                credentials_file=self.credentials_file,
                secret_env_file=self.secret_env_file,
            )
            host_config = backend.api.create_host_config(**cfg.pop("host_config"))
            if self.requested:
                result = exit_from_code(None, self.requested, {}, timeout=self.timeout)
                return
            for first_try in (True, False):
                try:
                    cid = backend.api.create_container(host_config=host_config, **cfg)["Id"]
                    break
                except de.APIError as exc:
                    missing = isinstance(exc, de.ImageNotFound) or (
                        exc.status_code == 404 and "image" in str(exc.explanation or "").lower()
                    )
                    if not missing:
                        result = TaskExit(
                            TaskStatus.FAILED, None, f"docker could not create the container: {exc.explanation or exc}"
                        )
                        return
                    pull_error = backend.pull(image) if first_try else "still missing after the pull"
                    if pull_error:
                        result = TaskExit(
                            TaskStatus.FAILED,
                            None,
                            f"image {image} not found on the Docker engine and not pulled ({pull_error}): {IMAGE_HINT}",
                        )
                        return
            with self._lock:
                self.container_id = cid
                requested = self.requested
            if requested:
                result = exit_from_code(None, requested, {}, timeout=self.timeout)
                return
            stream = backend.stream_api.attach(cid, stdout=True, stderr=True, stream=True, logs=False, demux=True)
            try:
                backend.api.start(cid)
            except de.APIError as exc:
                reason = f"docker could not start the container: {exc.explanation or exc}"
                if spec.settings.gpu:
                    reason += (
                        f" (the step asks for gpu={spec.settings.gpu}: the engine needs GPUs and the "
                        f"NVIDIA container toolkit)"
                    )
                result = TaskExit(TaskStatus.FAILED, None, reason)
                return
            if self.requested:  # cancelled while starting
                backend._kill(cid)
            from ..sampling import DockerStatsSampler

            sampler = DockerStatsSampler(backend.stream_api, str(cid))  # the usage timeline (workbench.sampling)
            self._pump(stream)
            backend.api.wait(cid)
            self.usage = {**self.usage, **sampler.finish()}
            self._ingest()  # the container is gone: nothing can change the outbox while it is read
            state = backend.api.inspect_container(cid).get("State", {})
            result = classify_exit(state, self.requested, spec.settings.memory, self.usage, timeout=self.timeout)
            if result.status == "failed" and state.get("Error"):
                result.reason += f" ({state['Error']})"
        except Exception as exc:  # noqa: BLE001 - whatever the engine says, the task ends in words
            if self.requested:
                result = exit_from_code(None, self.requested, self.usage, timeout=self.timeout)
            elif isinstance(exc, WorkbenchError):
                result = TaskExit(TaskStatus.FAILED, None, str(exc), self.usage)
            else:
                result = TaskExit(TaskStatus.FAILED, None, f"docker: {type(exc).__name__}: {exc}", self.usage)
        finally:
            if cid:
                backend._remove_later(cid)
            if self.outbox:  # not ingested (the container may not have ended): dropped, never taken
                shutil.rmtree(self.outbox, ignore_errors=True)
            if self.s3_outbox:
                self._drop_s3_outbox()
            if backend.task_credentials is not None:
                backend.task_credentials.release(self.credentials_file)
            if self.secret_env_file:
                Path(self.secret_env_file).unlink(missing_ok=True)
            self.on_exit(result or TaskExit(TaskStatus.FAILED, None, "docker: the task ended without a result"))

    def _ingest(self) -> None:
        """Take the task's new blobs (each checked against its hash) and its attempt record into the store."""
        outbox, self.outbox = self.outbox, None
        prefix, self.s3_outbox = self.s3_outbox, None
        if not outbox and not prefix:
            return
        from ..datastore import FlowDatastore

        spec = self.spec
        ds = FlowDatastore(spec.datastore_url, spec.flow)
        if prefix:
            refused = ingest_s3(ds, prefix, spec.run_id, spec.step, spec.task_id, spec.attempt)
        else:
            refused = ingest(str(outbox), ds, spec.run_id, spec.step, spec.task_id, spec.attempt)
        for line in refused[:20]:
            self.on_log("stderr", f"workbench: refused from the container's outputs: {line}", time.time())
        if refused and self.backend._ctx is not None:
            self.backend._ctx.warn(
                f"docker: task {spec.step}/{spec.task_id} wrote {len(refused)} thing(s) outside "
                f"its outputs or failed their hash check; they were refused (see its log)"
            )

    def _drop_s3_outbox(self) -> None:
        """A task that did not end normally: its outbox prefix is deleted, never taken."""
        from ..datastore.storage import open_storage

        prefix, self.s3_outbox = self.s3_outbox, None
        try:
            open_storage(self.spec.datastore_url).delete(str(prefix))
        except WorkbenchError as exc:
            self.on_log("stderr", f"workbench: could not delete the task's outbox {prefix}: {exc}", time.time())

    def _pump(self, stream) -> None:
        bufs = {"stdout": b"", "stderr": b""}
        try:
            for out, err in stream:
                for name, data in (("stdout", out), ("stderr", err)):
                    if data:
                        *lines, bufs[name] = (bufs[name] + data).split(b"\n")
                        for line in lines:
                            self._line(name, line)
        finally:
            for name, rest in bufs.items():
                if rest:
                    self._line(name, rest)

    def _line(self, stream: str, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if stream == "stderr" and USAGE_MARK in text:
            self.usage = parse_usage(text) or self.usage
            text = text.split(USAGE_MARK, 1)[0]
            if not text:
                return
        self.on_log(stream, text, time.time())


class DockerBackend(Backend):
    name = "docker"
    image_hint = " (`workbench image build` makes one)"

    def __init__(self, config):
        super().__init__(config)
        self._api = None
        self._stream_api = None
        self._info: Optional[dict] = None
        self._ctx: Optional[RunContext] = None
        self._removers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.owner = owner_id()
        self.user = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else "0:0"
        self.network = config.model.docker.network
        self.extra_env: dict[str, str] = {}
        self.task_credentials = None  # TaskCredentials of the run, with an S3 datastore
        self._cred_warned = False
        self._secret_dir: Optional[str] = None  # the run's private tmpfs directory for secret step env files
        self._caches = BytecodeCaches(lambda: self.api, {OWNER_LABEL: self.owner}, remove=lambda c: self._remove(c))
        self._pulls: dict[str, list] = {}  # image -> [lock, error or None, done]
        from .docker_env import EnvironmentImages

        self.environments = EnvironmentImages(
            self.network,
            config.model.project.name or Path(config.root).name,
            say=lambda line: self._ctx.warn(line) if self._ctx else None,
        )

    # ------------------------------------------------------------------ the engine
    def _connect(self) -> None:
        if self._api is not None:
            return
        import docker
        from docker.utils import kwargs_from_env

        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            kwargs = kwargs_from_env()
            api = docker.APIClient(timeout=30, max_pool_size=64, **kwargs)
            api.ping()
            self._info = api.info()
            # attach streams can stay quiet for as long as a step does: no read timeout on those
            self._stream_api = docker.APIClient(timeout=None, max_pool_size=64, version=api.api_version, **kwargs)
        except Exception as exc:  # DockerException, requests' ConnectionError, FileNotFoundError, ...
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EngineUnreachable(f"no Docker engine answers at {where}: {detail[:200]}", hint=ENGINE_HINT) from None
        self._api = api

    @property
    def api(self):
        self._connect()
        return self._api

    @property
    def stream_api(self):
        self._connect()
        return self._stream_api

    def pull(self, image: str) -> Optional[str]:
        """Pull a missing image, once per run and image (tasks of the same image wait for the one pull).
        Returns None when it arrived, else why not, in one short line."""
        import docker.errors as de
        from docker.utils import parse_repository_tag

        with self._lock:
            entry = self._pulls.get(image)
            if entry is None:
                entry = self._pulls[image] = [threading.Lock(), None, False]
        with entry[0]:
            if not entry[2]:
                if self._ctx is not None:
                    self._ctx.warn(f"docker: image {image} is not on the engine; pulling it")
                repo, tag = parse_repository_tag(image)
                try:
                    self.api.pull(repo, tag=tag or "latest")
                except (de.APIError, de.DockerException) as exc:
                    text = str(getattr(exc, "explanation", None) or exc).strip().splitlines()
                    entry[1] = (text[0] if text else type(exc).__name__)[:200]
                entry[2] = True
            return entry[1]

    def check(self, settings) -> None:
        self._connect()
        self.image_for(settings)
        info = self._info or {}
        ncpu, mem_total = info.get("NCPU"), info.get("MemTotal")
        if ncpu and settings.cpu > ncpu:
            raise ResourceError(f"asks for cpu={settings.cpu:g} but the Docker engine has {ncpu} CPUs")
        if mem_total and settings.memory * MIB > mem_total:
            raise ResourceError(
                f"asks for memory={format_memory(settings.memory)} but the Docker engine has "
                f"{format_memory(mem_total / MIB)} in all"
            )
        if settings.shared_memory and mem_total and settings.shared_memory * MIB > mem_total:
            raise ResourceError(
                f"asks for shared_memory={format_memory(settings.shared_memory)} but the Docker "
                f"engine has {format_memory(mem_total / MIB)} in all"
            )

    def capacity(self) -> Optional[Capacity]:
        """The engine's machine: its CPUs and memory. GPUs: none without the nvidia runtime; with it the API
        does not say how many, so any count is let through (the engine refuses at run time)."""
        self._connect()
        info = self._info or {}
        if not info.get("NCPU") or not info.get("MemTotal"):
            return None
        gpus = 16 if "nvidia" in (info.get("Runtimes") or {}) else 0
        return Capacity(
            cpu=float(info["NCPU"]),
            memory=int(info["MemTotal"] // MIB),
            gpu=gpus,
            source=f"the Docker engine ({info.get('Name', 'local')})",
        )

    # ------------------------------------------------------------------ run lifecycle
    def start_run(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._connect()
        if ctx.datastore.url.startswith("s3://"):
            from ..aws import TaskCredentials, container_aws_env

            self.extra_env = container_aws_env()
            endpoint = ctx.config.model.datastore.endpoint_url
            if endpoint:
                self.extra_env.setdefault("AWS_ENDPOINT_URL", endpoint)
            self.task_credentials = TaskCredentials(
                endpoint or os.environ.get("AWS_ENDPOINT_URL"), ctx.config.model.datastore.task_role
            )
            self._cred_warned = False
        removed = self.reap_orphans()
        if removed:
            ctx.warn(f"docker: removed {removed} container(s) left behind by an earlier run that is gone")

    def secret_dir(self) -> str:
        with self._lock:
            self._secret_dir = self._secret_dir or secret_dir()
            return self._secret_dir

    def credentials_for(self, spec: TaskSpec, outbox_prefix: str) -> str:
        """A task's credentials file: scoped to its outbox where STS allows (else the run's, said once)."""
        creds = self.task_credentials
        assert creds is not None, "credentials_for before start_run"
        path = creds.for_task(spec.datastore_url, outbox_prefix, f"wb-{spec.run_id}-{spec.task_id}")
        if not creds.scoped() and not self._cred_warned and self._ctx is not None:
            self._cred_warned = True
            self._ctx.warn(f"docker: {creds.unscoped_warning()}")
        return path

    def submit(self, spec: TaskSpec, on_log: LogCallback, on_exit: Callable[[TaskExit], None]) -> TaskHandle:
        self._connect()
        return _ContainerHandle(self, spec, on_log, on_exit)

    def end_run(self, ctx: RunContext) -> None:
        with self._lock:
            removers, self._removers = self._removers, []
        for t in removers:
            t.join(timeout=15)
        if self.task_credentials is not None:
            self.task_credentials.close()
            self.task_credentials = None
        if self._secret_dir:
            shutil.rmtree(self._secret_dir, ignore_errors=True)
            self._secret_dir = None
        if self._api is None:
            return
        for c in self._containers({RUN_LABEL: ctx.run_id, OWNER_LABEL: self.owner}):
            self._remove(c["Id"])

    # ------------------------------------------------------------------ release (workbench cancel)
    def release(self, flow: str, run_id: str, held: list[dict], warn) -> list[str]:
        """Remove every container labelled with the run, whichever runtime process owned it."""
        self._connect()
        removed = []
        for c in self._containers({RUN_LABEL: run_id, "workbench.flow": flow}):
            self._remove(c["Id"])
            removed.append(f"container {c['Id'][:12]} ({c.get('State', '?')})")
        return removed

    # ------------------------------------------------------------------ containers
    def _containers(self, labels: dict[str, Optional[str]]) -> list[dict]:
        filters = [k if v is None else f"{k}={v}" for k, v in labels.items()]
        return self.api.containers(all=True, filters={"label": filters})

    def reap_orphans(self) -> int:
        """Remove containers whose owning runtime process on this host is gone."""
        removed = 0
        for c in self._containers({OWNER_LABEL: None}):
            owner = (c.get("Labels") or {}).get(OWNER_LABEL, "")
            if owner != self.owner and owner_alive(owner) is False:
                self._remove(c["Id"])
                removed += 1
        return removed

    def _kill(self, cid: str) -> None:
        import docker.errors as de

        try:
            self.api.kill(cid)
        except (de.NotFound, de.APIError):
            pass  # already gone or not running: its wait() returns anyway

    def _remove(self, cid: str) -> None:
        import docker.errors as de

        try:
            self.api.remove_container(cid, force=True, v=True)
        except de.NotFound:
            pass
        except de.APIError as exc:
            if exc.status_code != 409:  # 409: removal already in progress
                if self._ctx is not None:
                    self._ctx.warn(f"docker: could not remove container {cid[:12]}: {exc.explanation or exc}")

    def _remove_later(self, cid: str) -> None:
        """Remove a finished container off the task's critical path; end_run waits for these."""
        t = threading.Thread(target=self._remove, args=(cid,), daemon=True)
        with self._lock:
            self._removers = [r for r in self._removers if r.is_alive()]
            self._removers.append(t)
        t.start()
