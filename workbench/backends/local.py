"""Tasks as local processes.

The fast path is a warm worker (``python -m workbench.task serve``, in :mod:`workbench.worker`): it
imports the flow module once, then forks one child per task, and talks to this backend with JSON lines
on stdin/stdout.

Where fork is unavailable, the flow fails to import in the worker, or ``WORKBENCH_LOCAL_POOL=0``, each
task is a fresh ``python -m workbench.task run`` process instead: the same entrypoint as every other
backend.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from ..datastore.records import TaskStatus
from ..exitcodes import exit_from_code
from ..redact import secret_env
from ..worker import DRAIN_AFTER_EXIT, KILL_GRACE, end_leftovers
from ..worker import kill_group as _kill_group
from .base import Backend, LogCallback, RunContext, TaskExit, TaskHandle, TaskSpec


def _package_pythonpath(env: dict) -> dict:
    """Make sure child interpreters import this same workbench package."""
    pkg_parent = str(Path(__file__).resolve().parents[2])
    parts = [pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != pkg_parent]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


class _PoolHandle(TaskHandle):
    def __init__(self, backend: "LocalBackend", spec: TaskSpec, on_log: LogCallback, on_exit):
        self.backend = backend
        self.spec = spec
        self.on_log = on_log
        self.on_exit = on_exit
        self.requested: Optional[str] = None
        self.timeout = False

    def cancel(self, reason: str = "cancelled", *, timeout: bool = False) -> None:
        self.requested, self.timeout = reason, timeout
        self.backend._send({"t": "kill", "id": self.spec.ref})


class _ProcessHandle(TaskHandle):
    def __init__(self, spec: TaskSpec, on_log: LogCallback, on_exit, env: dict, cwd: str):
        self.spec = spec
        self.requested: Optional[str] = None
        self.timeout = False
        from ..proctree import MARK_VAR

        self.proc = subprocess.Popen(
            spec.local_command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env={**env, MARK_VAR: spec.ref},
            cwd=cwd,
            start_new_session=True,
        )
        readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, "stdout", on_log), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, "stderr", on_log), daemon=True),
        ]
        for r in readers:
            r.start()
        threading.Thread(target=self._wait, args=(readers, on_exit), daemon=True).start()

    @staticmethod
    def _pump(stream, name: str, on_log: LogCallback) -> None:
        for raw in iter(stream.readline, b""):
            on_log(name, raw.decode("utf-8", "replace").rstrip("\n"), time.time())
        stream.close()

    def _wait(self, readers, on_exit) -> None:
        _, status, ru = os.wait4(self.proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = code
        end_leftovers(self.spec.ref, self.proc.pid)
        for r in readers:  # bounded: something that left the task's mark behind may hold its pipes
            r.join(timeout=DRAIN_AFTER_EXIT)
        usage = {"peak_memory_mib": round(ru.ru_maxrss / 1024, 1), "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 3)}
        on_exit(exit_from_code(code, self.requested, usage, timeout=self.timeout))

    def cancel(self, reason: str = "cancelled", *, timeout: bool = False) -> None:
        self.requested, self.timeout = reason, timeout
        end_leftovers(self.spec.ref, self.proc.pid, signal.SIGTERM)
        threading.Timer(KILL_GRACE, end_leftovers, args=(self.spec.ref, self.proc.pid)).start()


def _pool_enabled() -> bool:
    return os.environ.get("WORKBENCH_LOCAL_POOL", "1") != "0" and hasattr(os, "fork")


def _spawn_worker(env: dict, cwd: Optional[str] = None, python: str = sys.executable) -> subprocess.Popen:
    """A worker that has imported workbench and waits for the flow to load (its first message)."""
    return subprocess.Popen(
        [python, "-m", "workbench.task", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


_prewarmed: Optional[tuple[subprocess.Popen, dict]] = None


def prewarm() -> None:
    """Start a worker now, so that its interpreter starts while the caller reads configuration; the
    local backend of the next run adopts it. An unused one exits when this process does (stdin closes)."""
    global _prewarmed
    if _prewarmed is None and _pool_enabled():
        env = _package_pythonpath(dict(os.environ, PYTHONUNBUFFERED="1"))
        _prewarmed = (_spawn_worker(env), env)


def _take_prewarmed(env: dict) -> Optional[subprocess.Popen]:
    global _prewarmed
    if _prewarmed is None:
        return None
    worker, worker_env = _prewarmed
    _prewarmed = None
    if worker.poll() is None and worker_env == env:
        return worker
    _kill_group(worker.pid, signal.SIGKILL)
    return None


class LocalBackend(Backend):
    """Tasks as local processes. A step with a declared environment runs under that environment's
    interpreter, in a warm worker of its own (one per environment, started on its first task), so a warm
    task of a declared environment costs what one of the default interpreter does: a fork."""

    name = "local"

    def __init__(self, config, python: Optional[str] = None):
        super().__init__(config)
        self._python = python  # None: this interpreter; else a declared environment's
        self._by_environment: dict[str, "LocalBackend"] = {}  # environment key -> its own worker
        self._worker: Optional[subprocess.Popen] = None
        self._handles: dict[str, _PoolHandle] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._ctx: Optional[RunContext] = None
        self._env: dict = {}

    # ------------------------------------------------------------------ run lifecycle
    def start_run(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._env = _package_pythonpath(dict(os.environ, PYTHONUNBUFFERED="1"))
        if _pool_enabled():
            worker = _take_prewarmed(self._env) if self._python is None else None
            load = {
                "t": "load",
                "datastore": ctx.datastore.url,
                "root": ctx.project_root,
                "flow_file": ctx.flow_file,
                "class_name": ctx.class_name,
            }
            if worker is None:
                worker = _spawn_worker(self._env, ctx.project_root, self._python or sys.executable)
            self._worker = worker
            self._send(load)
            threading.Thread(target=self._read_worker, daemon=True).start()
            threading.Thread(target=self._drain_worker_stderr, daemon=True).start()

    def end_run(self, ctx: RunContext) -> None:
        with self._lock:
            by_environment, self._by_environment = list(self._by_environment.values()), {}
        for backend in by_environment:
            backend.end_run(ctx)
        worker, self._worker = self._worker, None
        if worker is None:
            return
        assert worker.stdin is not None  # started with stdin=PIPE
        try:
            worker.stdin.close()
        except OSError:
            pass
        try:
            worker.wait(timeout=KILL_GRACE + 2)
        except subprocess.TimeoutExpired:
            _kill_group(worker.pid, signal.SIGKILL)
            worker.wait()

    # ------------------------------------------------------------------ submitting
    def submit(self, spec: TaskSpec, on_log: LogCallback, on_exit: Callable[[TaskExit], None]) -> TaskHandle:
        if spec.environment is not None and self._python is None:
            return self._for_environment(spec.environment)._submit_here(spec, on_log, on_exit)
        return self._submit_here(spec, on_log, on_exit)

    def _submit_here(self, spec: TaskSpec, on_log: LogCallback, on_exit: Callable[[TaskExit], None]) -> TaskHandle:
        """Run the task in this backend's own worker (or process)."""
        self._ready.wait(timeout=60) if self._worker is not None else None
        if self._worker is not None and self._worker.poll() is None:
            handle = _PoolHandle(self, spec, on_log, on_exit)
            with self._lock:
                self._handles[spec.ref] = handle
            if self._send({"t": "run", "id": spec.ref, "env": secret_env(spec.settings.env)}):
                return handle
            with self._lock:
                self._handles.pop(spec.ref, None)
        env = {**self._env, **secret_env(spec.settings.env)}  # the spec holds <redacted> for these
        return _ProcessHandle(spec, on_log, on_exit, env, spec.project_root)

    def _for_environment(self, environment) -> "LocalBackend":
        """The backend (and warm worker) of one declared environment, started on its first task."""
        with self._lock:
            backend = self._by_environment.get(environment.key)
            if backend is None:
                backend = self._by_environment[environment.key] = LocalBackend(self.config, str(environment.python))
                assert self._ctx is not None, "start_run comes before the first task"
                backend.start_run(self._ctx)
        return backend

    def _send(self, message: dict) -> bool:
        worker = self._worker
        if worker is None:
            return False
        assert worker.stdin is not None  # started with stdin=PIPE
        try:
            with self._lock:
                worker.stdin.write((json.dumps(message) + "\n").encode())
                worker.stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False

    def _read_worker(self) -> None:
        worker = self._worker
        if worker is None or worker.stdout is None:
            return
        for raw in iter(worker.stdout.readline, b""):
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            t = msg.get("t")
            if t == "ready":
                self._ready.set()
                continue
            if t == "fatal":
                # the flow could not be imported once: run each task in its own process, which reports the
                # import error in that task's log like any other backend would
                self._worker = None
                self._ready.set()
                continue
            with self._lock:
                handle = self._handles.get(msg.get("id"))
            if handle is None:
                continue
            if t == "log":
                handle.on_log(msg["s"], msg["x"], msg["ts"])
            elif t == "exit":
                with self._lock:
                    self._handles.pop(msg["id"], None)
                handle.on_exit(
                    exit_from_code(msg["code"], handle.requested, msg.get("usage", {}), timeout=handle.timeout)
                )
        # the worker died: fail what it was running
        self._ready.set()
        with self._lock:
            orphans, self._handles = list(self._handles.values()), {}
        for handle in orphans:
            handle.on_exit(
                TaskExit(
                    TaskStatus.CANCELLED if handle.requested else TaskStatus.FAILED,
                    None,
                    handle.requested or "the local worker process died",
                    {},
                )
            )

    def release(self, flow: str, run_id: str, held: list[dict], warn) -> list[str]:
        """Kill every process on this host still carrying the mark of one of the run's tasks."""
        from ..proctree import kill_marked

        return [f"local process {pid}" for pid in kill_marked(f"{flow}/{run_id}/")]

    def _drain_worker_stderr(self) -> None:
        worker = self._worker
        if worker is None or worker.stderr is None:
            return
        for raw in iter(worker.stderr.readline, b""):
            if self._ctx is not None:
                text = raw.decode("utf-8", "replace").rstrip()
                if text:
                    self._ctx.warn(f"local worker: {text}")
