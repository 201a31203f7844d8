"""Tasks as local processes.

The fast path is a warm worker (``python -m workbench.task serve``): it imports the flow module once,
then forks one child per task. Each child is its own process group with its own stdout/stderr pipes,
so tasks cannot see each other's state, a task's subprocesses are cleaned up with it, and output
streams back line by line. The worker talks to the runtime with JSON lines on stdin/stdout.

Where fork is unavailable, the flow fails to import in the worker, or ``WORKBENCH_LOCAL_POOL=0``, each
task is a fresh ``python -m workbench.task run`` process instead: the same entrypoint as every other
backend.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from .base import Backend, LogCallback, RunContext, TaskExit, TaskHandle, TaskSpec

KILL_GRACE = 3.0


def _package_pythonpath(env: dict) -> dict:
    """Make sure child interpreters import this same workbench package."""
    pkg_parent = str(Path(__file__).resolve().parents[2])
    parts = [pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != pkg_parent]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def exit_from_code(code: Optional[int], requested: Optional[str], usage: dict) -> TaskExit:
    """Words for how a local process ended. ``code`` < 0 means killed by signal -code."""
    from ..task import EXIT_TIMEOUT
    if requested:
        reason = "cancelled" if requested == "cancelled" else requested
        return TaskExit("timeout" if requested.startswith("timed out") else "cancelled", code, reason, usage)
    if code == 0:
        return TaskExit("succeeded", 0, "", usage)
    if code == EXIT_TIMEOUT:
        return TaskExit("timeout", code, "the step ran past its timeout", usage)
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (the kernel's OOM killer, or someone, killed it)" if -code == signal.SIGKILL else ""
        return TaskExit("failed", code, f"killed by {name}{hint}", usage)
    return TaskExit("failed", code, f"exited with code {code}", usage)


class _PoolHandle(TaskHandle):
    def __init__(self, backend: "LocalBackend", spec: TaskSpec, on_log: LogCallback, on_exit):
        self.backend = backend
        self.spec = spec
        self.on_log = on_log
        self.on_exit = on_exit
        self.requested: Optional[str] = None

    def cancel(self, reason: str = "cancelled") -> None:
        self.requested = reason
        self.backend._send({"t": "kill", "id": self.spec.ref})


class _ProcessHandle(TaskHandle):
    def __init__(self, spec: TaskSpec, on_log: LogCallback, on_exit, env: dict, cwd: str):
        self.spec = spec
        self.requested: Optional[str] = None
        self.proc = subprocess.Popen(spec.local_command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)
        readers = [threading.Thread(target=self._pump, args=(self.proc.stdout, "stdout", on_log), daemon=True),
                   threading.Thread(target=self._pump, args=(self.proc.stderr, "stderr", on_log), daemon=True)]
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
        _kill_group(self.proc.pid, signal.SIGKILL)
        for r in readers:
            r.join(timeout=5)
        usage = {"peak_memory_mib": round(ru.ru_maxrss / 1024, 1), "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 3)}
        on_exit(exit_from_code(code, self.requested, usage))

    def cancel(self, reason: str = "cancelled") -> None:
        self.requested = reason
        _kill_group(self.proc.pid, signal.SIGTERM)
        threading.Timer(KILL_GRACE, _kill_group, args=(self.proc.pid, signal.SIGKILL)).start()


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pool_enabled() -> bool:
    return os.environ.get("WORKBENCH_LOCAL_POOL", "1") != "0" and hasattr(os, "fork")


def _spawn_worker(env: dict, cwd: Optional[str] = None) -> subprocess.Popen:
    """A worker that has imported workbench and waits for the flow to load (its first message)."""
    return subprocess.Popen([sys.executable, "-m", "workbench.task", "serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                            start_new_session=True)


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
    name = "local"

    def __init__(self, config):
        super().__init__(config)
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
            worker = _take_prewarmed(self._env)
            load = {"t": "load", "datastore": ctx.datastore.url, "root": ctx.project_root,
                    "flow_file": ctx.flow_file, "class_name": ctx.class_name}
            if worker is None:
                worker = _spawn_worker(self._env, ctx.project_root)
            self._worker = worker
            self._send(load)
            threading.Thread(target=self._read_worker, daemon=True).start()
            threading.Thread(target=self._drain_worker_stderr, daemon=True).start()

    def end_run(self, ctx: RunContext) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
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
        self._ready.wait(timeout=60) if self._worker is not None else None
        if self._worker is not None and self._worker.poll() is None:
            handle = _PoolHandle(self, spec, on_log, on_exit)
            with self._lock:
                self._handles[spec.ref] = handle
            if self._send({"t": "run", "id": spec.ref}):
                return handle
            with self._lock:
                self._handles.pop(spec.ref, None)
        return _ProcessHandle(spec, on_log, on_exit, self._env, spec.project_root)

    def _send(self, message: dict) -> bool:
        worker = self._worker
        if worker is None:
            return False
        try:
            with self._lock:
                worker.stdin.write((json.dumps(message) + "\n").encode())
                worker.stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False

    def _read_worker(self) -> None:
        worker = self._worker
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
                handle.on_exit(exit_from_code(msg["code"], handle.requested, msg.get("usage", {})))
        # the worker died: fail what it was running
        self._ready.set()
        with self._lock:
            orphans, self._handles = list(self._handles.values()), {}
        for handle in orphans:
            handle.on_exit(TaskExit("cancelled" if handle.requested else "failed", None,
                                    handle.requested or "the local worker process died", {}))

    def _drain_worker_stderr(self) -> None:
        worker = self._worker
        for raw in iter(worker.stderr.readline, b""):
            if self._ctx is not None:
                text = raw.decode("utf-8", "replace").rstrip()
                if text:
                    self._ctx.warn(f"local worker: {text}")


# ---------------------------------------------------------------------------------------- the worker

def _emit(message: dict) -> None:
    sys.__stdout__.write(json.dumps(message) + "\n")
    sys.__stdout__.flush()


def _first_line() -> tuple[dict, bytes]:
    """The first message on stdin (read with os.read, as the loop below does), and what came after it."""
    buf = b""
    while b"\n" not in buf:
        chunk = os.read(0, 65536)
        if not chunk:
            raise SystemExit(0)
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    return json.loads(line), rest


def serve_forever() -> int:
    """The warm worker's loop (runs in ``python -m workbench.task serve``). Its first message names the
    flow to load: {"t": "load", "datastore", "root", "flow_file", "class_name"}."""
    from ..datastore import FlowDatastore
    from ..task import load_flow_class, read_spec, run_task

    load, stdin_buf = _first_line()
    datastore_url, root = load["datastore"], load["root"]
    flow_file, class_name = load["flow_file"], load["class_name"]
    os.chdir(root)
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # stray prints of the flow module at import must not corrupt the protocol
    sys.__stdout__ = proto  # type: ignore[misc]
    try:
        flow_cls = load_flow_class(root, flow_file, class_name)
    except BaseException as exc:  # noqa: BLE001
        _emit({"t": "fatal", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    _emit({"t": "ready"})

    sel = selectors.DefaultSelector()
    sel.register(sys.stdin.buffer, selectors.EVENT_READ, ("stdin", None))
    children: dict[str, dict] = {}
    kill_at: dict[str, float] = {}

    def start(task_ref: str) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the task
            code = 1
            try:
                os.setpgid(0, 0)
                proto.close()  # only the worker speaks the protocol
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.dup2(devnull, 0)
                for fd in (out_r, err_r, out_w, err_w):
                    os.close(fd)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
                sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
                _reseed()
                ds = FlowDatastore(datastore_url, task_ref.split("/")[0])
                code = run_task(ds, root, flow_cls, read_spec(ds, task_ref))
                ds.storage.flush()
            except BaseException:  # noqa: BLE001
                import traceback
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        os.close(out_w)
        os.close(err_w)
        child = {"pid": pid, "bufs": {"stdout": b"", "stderr": b""}, "open": 2, "status": None, "pidfd": None}
        children[task_ref] = child
        if hasattr(os, "pidfd_open"):  # wake up the moment the task exits, not on the next poll
            try:
                child["pidfd"] = os.pidfd_open(pid)
                sel.register(child["pidfd"], selectors.EVENT_READ, ("exit", task_ref))
            except OSError:
                child["pidfd"] = None
        sel.register(out_r, selectors.EVENT_READ, ("pipe", (task_ref, "stdout")))
        sel.register(err_r, selectors.EVENT_READ, ("pipe", (task_ref, "stderr")))

    def emit_lines(task_ref: str, stream: str, data: bytes, final: bool) -> None:
        child = children[task_ref]
        buf = child["bufs"][stream] + data
        *lines, rest = buf.split(b"\n")
        if final and rest:
            lines.append(rest)
            rest = b""
        child["bufs"][stream] = rest
        now = time.time()
        for line in lines:
            _emit({"t": "log", "id": task_ref, "s": stream, "x": line.decode("utf-8", "replace"), "ts": now})

    def reap() -> None:
        for task_ref, child in list(children.items()):
            if child["status"] is None:
                try:
                    pid, status, ru = os.wait4(child["pid"], os.WNOHANG)
                except ChildProcessError:
                    pid, status, ru = child["pid"], 0, None
                if pid == 0:
                    continue
                child["status"] = os.waitstatus_to_exitcode(status)
                child["usage"] = {"peak_memory_mib": round(ru.ru_maxrss / 1024, 1),
                                  "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 3)} if ru else {}
                _kill_group(child["pid"], signal.SIGKILL)  # leftovers of the step
            if child["status"] is not None and child["pidfd"] is not None:
                sel.unregister(child["pidfd"])
                os.close(child["pidfd"])
                child["pidfd"] = None
            if child["status"] is not None and child["open"] == 0:
                del children[task_ref]
                kill_at.pop(task_ref, None)
                _emit({"t": "exit", "id": task_ref, "code": child["status"], "usage": child.get("usage", {})})

    pending_msgs: list[bytes] = []
    if b"\n" in stdin_buf:
        *pending_msgs, stdin_buf = stdin_buf.split(b"\n")
    while True:
        for raw in pending_msgs:
            msg = json.loads(raw)
            if msg["t"] == "run":
                start(msg["id"])
            elif msg["t"] == "kill" and msg["id"] in children:
                _kill_group(children[msg["id"]]["pid"], signal.SIGTERM)
                kill_at[msg["id"]] = time.monotonic() + KILL_GRACE
        pending_msgs = []
        polling = any(c["pidfd"] is None and c["status"] is None for c in children.values())
        timeout = 0.005 if polling else (0.25 if kill_at else None)
        for key, _ in sel.select(timeout):
            kind, data = key.data
            if kind == "exit":
                continue  # reaped below
            if kind == "stdin":
                chunk = os.read(key.fd, 65536)
                if not chunk:  # the runtime is gone: stop every task and leave
                    for child in children.values():
                        _kill_group(child["pid"], signal.SIGKILL)
                    return 0
                stdin_buf += chunk
                *pending_msgs, stdin_buf = stdin_buf.split(b"\n")
            else:
                task_ref, stream = data
                chunk = os.read(key.fd, 65536)
                if chunk:
                    emit_lines(task_ref, stream, chunk, final=False)
                else:
                    emit_lines(task_ref, stream, b"", final=True)
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    children[task_ref]["open"] -= 1
        now = time.monotonic()
        for task_ref, when in list(kill_at.items()):
            if now >= when and task_ref in children:
                _kill_group(children[task_ref]["pid"], signal.SIGKILL)
                kill_at.pop(task_ref)
        reap()


def _reseed() -> None:
    """A forked child inherits its parent's random state; give each task its own, as a new process has."""
    import random
    random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        try:
            np.random.seed(int.from_bytes(os.urandom(4), "little"))
        except Exception:
            pass
