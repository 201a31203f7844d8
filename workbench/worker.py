"""The local backend's warm worker: ``python -m workbench.task serve``.

It imports the flow module once, then forks one child per task. Each child is its own process group
with its own stdout/stderr pipes, so tasks cannot see each other's state, a task's subprocesses are
cleaned up with it, and output streams back line by line. The worker talks to the runtime's local
backend (:mod:`workbench.backends.local`) with JSON lines on stdin/stdout:

    in:  {"t": "load", datastore, root, flow_file, class_name} (first),
         {"t": "run", "id": REF, "env": {the step's secret env}}, {"t": "kill", "id": REF}
    out: {"t": "ready"} | {"t": "fatal", error}, {"t": "log", id, s, x, ts}, {"t": "exit", id, code, usage}
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sys
import time
from typing import Any

KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL when a task is cancelled
DRAIN_AFTER_EXIT = 2.0  # a task has ended when its process exits; its pipes get this long to drain


def end_leftovers(task_ref: str, pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal everything a task started: its process group and, by their mark, processes that left the
    group (a ``start_new_session=True`` helper)."""
    from .proctree import kill_marked

    kill_group(pgid, sig)
    kill_marked(task_ref, sig)


def kill_group(pid: int, sig: int) -> None:
    """Signal a task's whole process group (it started its own), ignoring one that is already gone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _emit(message: dict[str, Any]) -> None:
    assert sys.__stdout__ is not None  # the worker talks to its parent over its stdout pipe
    sys.__stdout__.write(json.dumps(message) + "\n")
    sys.__stdout__.flush()


def _first_line() -> tuple[dict[str, Any], bytes]:
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
    from .datastore import FlowDatastore
    from .task import load_flow_class, read_spec, run_task

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
    children: dict[str, dict[str, Any]] = {}  # task -> pid, bufs, open, status, pidfd
    kill_at: dict[str, float] = {}
    from .sampling import GroupSampler

    sampler = GroupSampler()  # each task's CPU and memory over time (workbench.sampling)

    def start(task_ref: str, secret_env: dict[str, str]) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the task
            code = 1
            try:
                os.setpgid(0, 0)
                from .proctree import MARK_VAR

                os.environ[MARK_VAR] = task_ref  # inherited by whatever the step starts (see proctree)
                os.environ.update(secret_env)  # the step's secret env: <redacted> in its spec
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
        child: dict[str, Any] = {
            "pid": pid,
            "bufs": {"stdout": b"", "stderr": b""},
            "open": 2,
            "status": None,
            "pidfd": None,
            "fds": {out_r: "stdout", err_r: "stderr"},
            "drain_until": None,
        }
        children[task_ref] = child
        sampler.watch(task_ref, pid)  # the child makes itself group leader: pgid == pid
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

    def close_pipe(task_ref: str, fd: int, stream: str) -> None:
        emit_lines(task_ref, stream, b"", final=True)
        sel.unregister(fd)
        os.close(fd)
        child = children[task_ref]
        child["fds"].pop(fd, None)
        child["open"] -= 1

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
                child["usage"] = (
                    {
                        "peak_memory_mib": round(ru.ru_maxrss / 1024, 1),
                        "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 3),
                    }
                    if ru
                    else {}
                )
                end_leftovers(task_ref, child["pid"])  # leftovers of the step, in its group or not
                child["drain_until"] = time.monotonic() + DRAIN_AFTER_EXIT
                timeline = sampler.finish(task_ref)
                if timeline is not None and child["usage"]:
                    child["usage"]["timeline"] = timeline
            if child["status"] is not None and child["pidfd"] is not None:
                sel.unregister(child["pidfd"])
                os.close(child["pidfd"])
                child["pidfd"] = None
            if child["status"] is not None and child["open"] and time.monotonic() >= child["drain_until"]:
                for fd, stream in list(child["fds"].items()):  # held open by something we could not kill
                    close_pipe(task_ref, fd, stream)
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
                start(msg["id"], msg.get("env") or {})
            elif msg["t"] == "kill" and msg["id"] in children:
                kill_group(children[msg["id"]]["pid"], signal.SIGTERM)
                kill_at[msg["id"]] = time.monotonic() + KILL_GRACE
        pending_msgs = []
        polling = any(c["pidfd"] is None and c["status"] is None for c in children.values())
        draining = any(c["drain_until"] is not None for c in children.values())
        timeout = 0.005 if polling else (0.25 if kill_at or draining else None)
        due = sampler.seconds_to_next()
        timeout = due if timeout is None else (timeout if due is None else min(timeout, due))
        for key, _ in sel.select(timeout):
            kind, data = key.data
            if kind == "exit":
                continue  # reaped below
            if kind == "stdin":
                chunk = os.read(key.fd, 65536)
                if not chunk:  # the runtime is gone: stop every task and leave
                    for ref, child in children.items():
                        end_leftovers(ref, child["pid"])
                    return 0
                stdin_buf += chunk
                *pending_msgs, stdin_buf = stdin_buf.split(b"\n")
            else:
                task_ref, stream = data
                chunk = os.read(key.fd, 65536)
                if chunk:
                    emit_lines(task_ref, stream, chunk, final=False)
                else:
                    close_pipe(task_ref, key.fd, stream)
        now = time.monotonic()
        for task_ref, when in list(kill_at.items()):
            if now >= when and task_ref in children:
                end_leftovers(task_ref, children[task_ref]["pid"])
                kill_at.pop(task_ref)
        sampler.tick()
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
