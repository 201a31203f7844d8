"""Runs a flow's graph: ready tasks go to their backend, foreach fans out, joins wait for their inputs.

The runtime owns every task's state. Backends report through callbacks that only put messages on one
queue; a single loop takes them off, so no state is shared between threads. Events go to the sink
(CLI renderer, TUI, JSON/JUnit writers) as they happen.
"""

from __future__ import annotations

import dataclasses
import heapq
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from . import events as ev
from .backends import Backend, RunContext, TaskExit, TaskSpec, create_backend
from .config import ProjectConfig
from .datastore import FlowDatastore, new_run_id
from .errors import DatastoreError, UsageError, WorkbenchError
from .graph import FlowGraph
from .redact import redact_settings, secret_env_warnings
from .settings import StepSettings, effective_settings

# the most remote tasks in flight at once; local and docker tasks are bounded by max_workers
MAX_REMOTE_IN_FLIGHT = 256
HARD_TIMEOUT_GRACE = 30.0


@dataclass
class TaskState:
    step: str
    task_id: str
    foreach_stack: list[dict]
    parents: list["TaskState"]
    settings: StepSettings
    attempt: int = 0
    status: str = "pending"  # pending, running, succeeded, failed, cancelled
    artifacts: dict[str, dict] = field(default_factory=dict)
    num_splits: Optional[int] = None
    foreach_artifact: Optional[str] = None
    staged: bool = False
    started: float = 0.0
    deadline: Optional[float] = None
    handle: Any = None
    attempts: list[dict] = field(default_factory=list)
    cloned_from: Optional[str] = None
    log_buffer: list = field(default_factory=list)

    @property
    def stack_key(self) -> tuple:
        return tuple((f["step"], f["index"]) for f in self.foreach_stack)


@dataclass
class RunResult:
    flow: str
    run_id: str
    status: str  # succeeded | failed | cancelled
    failed: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def exit_code(self) -> int:
        return {"succeeded": 0, "failed": 1, "cancelled": 130}.get(self.status, 1)


class Runtime:
    """One run of one flow. Build it, then call :meth:`run` (blocking); :meth:`cancel` from anywhere."""

    def __init__(self, graph: FlowGraph, config: ProjectConfig, *, params: Optional[dict[str, Any]] = None,
                 sink: Optional[ev.EventSink] = None, max_workers: Optional[int] = None,
                 backend: Optional[str] = None, step_overrides: Optional[dict[str, dict]] = None,
                 origin_run_id: Optional[str] = None, rerun_steps: Optional[set[str]] = None,
                 only_step: Optional[str] = None, only_task_index: Optional[int] = None,
                 run_id: Optional[str] = None, datastore: Optional[FlowDatastore] = None):
        if not graph.ok:
            raise graph.errors[0]
        self.graph = graph
        self.config = config
        self.flow = graph.name or ""
        self.sink = sink or (lambda e: None)
        self.max_workers = max_workers or os.cpu_count() or 2
        self.run_id = run_id or new_run_id()
        self.ds = datastore or FlowDatastore(config.datastore_url, self.flow)
        self.origin_run_id = origin_run_id
        self.rerun_steps = rerun_steps or set()
        self.only_step = only_step
        self.only_task_index = only_task_index
        if params is None:
            from .parameters import resolve_parameters
            params = resolve_parameters(graph.parameters, {})  # defaults (a resume takes the origin's)
        self.params = params
        root = Path(config.root).resolve()
        flow_path = Path(graph.path).resolve()
        try:
            self.flow_file = str(flow_path.relative_to(root))
            self.project_root = str(root)
        except ValueError:  # a flow outside the project: its own directory is the root
            self.flow_file, self.project_root = flow_path.name, str(flow_path.parent)
        overrides = step_overrides or {}
        cli = {"backend": backend} if backend else {}
        self.settings = {name: effective_settings(graph, name, config, {**cli, **overrides.get(name, {})})
                         for name in graph.steps}
        self._queue: "queue.Queue[tuple]" = queue.Queue()
        self._cancel = threading.Event()
        self._cancel_reason = "cancelled"
        self._ready: list[TaskState] = []
        self._delayed: list[tuple[float, int, TaskState]] = []
        self._running: dict[str, TaskState] = {}
        self._join_buckets: dict[tuple, list[TaskState]] = {}
        self._next_id = 1
        self._failed: list[TaskState] = []
        self._backends: dict[str, Backend] = {}
        self._origin: dict[tuple, dict] = {}
        self._param_refs: dict[str, str] = {}
        self._unresolved: list[str] = []
        self._ctx: Optional[RunContext] = None
        self._stage: Optional[FlowDatastore] = None  # S3 staging for remote tasks when self.ds is local

    # ------------------------------------------------------------------ public
    def cancel(self, reason: str = "cancelled") -> None:
        self._cancel_reason = reason
        self._cancel.set()
        self._queue.put(("wake",))

    def run(self) -> RunResult:
        started = time.time()
        self._ctx = RunContext(self.flow, self.run_id, self.graph, self.config, self.ds, self.project_root,
                               self.flow_file, self.graph.name or "", warn=self._warn)
        for line in secret_env_warnings(self.settings):
            self._warn(line)
        used = {s.backend for s in self.settings.values()}
        for name in sorted(used):
            backend = create_backend(name, self.config)
            if backend.remote and not self.ds.url.startswith("s3://"):
                if self.config.remote_url:
                    self._stage = self._stage or FlowDatastore(self.config.remote_url, self.flow)
                else:
                    steps = ", ".join(n for n, s in self.settings.items() if s.backend == name)
                    raise UsageError(
                        f"step(s) {steps} run on {name}, which needs an S3 datastore: in workbench.toml set "
                        f"[datastore] root = \"s3://bucket/prefix\" (keep everything in S3) or "
                        f"[datastore] remote = \"s3://bucket/prefix\" (remote steps exchange their inputs and "
                        f"outputs there)")
            for step_name, s in self.settings.items():
                if s.backend == name:
                    try:
                        backend.check(s)
                    except WorkbenchError as exc:
                        exc.message = f"step {step_name}: {exc.message}"
                        raise
            self._backends[name] = backend
        self._save_parameters()
        if self.origin_run_id:
            self._load_origin()
        run_doc = {"flow": self.flow, "run_id": self.run_id, "status": "running", "started_at": started,
                   "params": {k: _short(v) for k, v in self.params.items()}, "origin_run_id": self.origin_run_id,
                   "flow_file": self.flow_file, "only_step": self.only_step,
                   "user": os.environ.get("USER") or os.environ.get("USERNAME"),
                   "backends": sorted(used)}
        self.ds.write_run(self.run_id, run_doc)
        self.sink(ev.RunStarted(self.flow, self.run_id, run_doc["params"], self.origin_run_id,
                                tuple(self.graph.topological())))
        status, message = "failed", ""
        started_backends: list[Backend] = []
        try:
            for backend in self._backends.values():
                backend.start_run(self._ctx_for(backend))
                started_backends.append(backend)
            self._enqueue(self._new_task("start", [], []))
            status = self._loop()
        except KeyboardInterrupt:
            self._cancel_reason = "cancelled"
            self._stop_all()
            status = "cancelled"
        except WorkbenchError as exc:
            message = str(exc)
            self._stop_all()
            status = "failed"
        finally:
            for backend in started_backends:
                try:
                    backend.end_run(self._ctx_for(backend))
                except Exception as exc:  # noqa: BLE001 - cleanup must not hide the run's result
                    self._warn(f"{backend.name}: cleanup failed: {exc}")
        if status == "cancelled" and not message:
            message = self._cancel_reason
        failed = [self._pathspec(t) for t in self._failed]
        if status == "failed" and not message and failed:
            message = f"step {self._failed[0].step} failed"
        finished = time.time()
        run_doc.update(status=status, finished_at=finished, failed=failed, message=message)
        self.ds.write_run(self.run_id, run_doc)
        self.sink(ev.RunFinished(self.flow, self.run_id, status, finished - started, tuple(failed), message))
        return RunResult(self.flow, self.run_id, status, failed, message)

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> str:
        while True:
            if self._cancel.is_set():
                self._stop_all()
                return "cancelled"
            self._release_delayed()
            self._dispatch()
            if not self._running and not self._ready and not self._delayed:
                return "failed" if self._failed else "succeeded"
            try:
                msg = self._queue.get(timeout=self._wait_time())
            except queue.Empty:
                msg = None
            batch = [msg] if msg else []
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            touched = set()
            for m in batch:
                if m[0] == "log":
                    _, key, stream, text, ts = m
                    task = self._running.get(key)
                    if task is not None:
                        task.log_buffer.append((ts, stream, text))
                        touched.add(key)
                        self.sink(ev.LogLine(self._pathspec(task), stream, text, task.attempt, ts))
                elif m[0] == "exit":
                    _, key, attempt, result = m
                    task = self._running.get(key)
                    if task is not None and task.attempt == attempt:
                        self._flush_logs(task, final=True)
                        self._finish(task, result)
            for key in touched:
                if key in self._running:
                    self._flush_logs(self._running[key])
            self._check_deadlines()
            if self._failed and not self._running and not self._delayed:
                # a task failed for good: let nothing new start, report the run as failed
                self._ready.clear()

    def _wait_time(self) -> float:
        waits = [1.0]
        now = time.time()
        if self._delayed:
            waits.append(self._delayed[0][0] - now)
        for t in self._running.values():
            if t.deadline:
                waits.append(t.deadline - now)
        return max(0.01, min(waits))

    def _dispatch(self) -> None:
        if self._failed:
            return
        while self._ready:
            local_running = sum(1 for t in self._running.values() if not self._backends[t.settings.backend].remote)
            remote_running = len(self._running) - local_running
            for i, task in enumerate(self._ready):
                remote = self._backends[task.settings.backend].remote
                if (remote and remote_running < MAX_REMOTE_IN_FLIGHT) or (not remote and local_running < self.max_workers):
                    break
            else:
                return
            self._submit(self._ready.pop(i))

    def _release_delayed(self) -> None:
        now = time.time()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, task = heapq.heappop(self._delayed)
            self._ready.append(task)

    def _check_deadlines(self) -> None:
        now = time.time()
        for task in list(self._running.values()):
            if task.deadline and now > task.deadline and task.handle is not None:
                task.deadline = None
                task.handle.cancel(f"timed out after {task.settings.timeout}s")

    def _stop_all(self) -> None:
        """Cancel every running task and wait (bounded) until each backend says it has ended."""
        self._ready.clear()
        self._delayed.clear()
        for task in list(self._running.values()):
            if task.handle is not None:
                try:
                    task.handle.cancel(self._cancel_reason)
                except Exception as exc:  # noqa: BLE001
                    self._warn(f"could not cancel {self._pathspec(task)}: {exc}")
        deadline = time.time() + 60
        while self._running and time.time() < deadline:
            try:
                m = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if m[0] == "exit":
                task = self._running.get(m[1])
                if task is not None:
                    self._flush_logs(task, final=True)
                    result: TaskExit = m[3]
                    if result.status == "succeeded":
                        self._finish(task, result)
                    else:
                        self._record(task, "cancelled", TaskExit("cancelled", result.exit_code,
                                                                 self._cancel_reason, result.usage))
            elif m[0] == "log" and m[1] in self._running:
                task = self._running[m[1]]
                task.log_buffer.append((m[4], m[2], m[3]))
        for task in list(self._running.values()):
            self._record(task, "cancelled", TaskExit("cancelled", None, f"{self._cancel_reason} (no answer)"))

    # ------------------------------------------------------------------ tasks
    def _pathspec(self, task: TaskState) -> str:
        return f"{self.flow}/{self.run_id}/{task.step}/{task.task_id}"

    def _new_task(self, step: str, stack: list[dict], parents: list[TaskState]) -> TaskState:
        task = TaskState(step=step, task_id=str(self._next_id), foreach_stack=stack, parents=parents,
                         settings=self.settings[step])
        self._next_id += 1
        return task

    def _enqueue(self, task: TaskState) -> None:
        if self.origin_run_id and task.step not in self.rerun_steps and task.step != self.only_step:
            origin = self._origin.get((task.step, task.stack_key))
            if origin is not None:
                self._clone(task, origin)
                return
            if self.only_step:
                raise UsageError(f"run {self.origin_run_id} has no successful task of step {task.step} "
                                 f"to take the inputs of step {self.only_step} from")
        if self.only_step and task.step == self.only_step and self.only_task_index is not None:
            if not task.foreach_stack or task.foreach_stack[-1]["index"] != self.only_task_index:
                return
        self._ready.append(task)

    def _spec_doc(self, task: TaskState) -> dict:
        node = self.graph.steps[task.step]
        return {
            "flow": self.flow, "run_id": self.run_id, "step": task.step, "task_id": task.task_id,
            "attempt": task.attempt, "kind": node.kind, "next": node.out, "foreach_var": node.foreach_var,
            "flow_file": self.flow_file, "class_name": self.graph.name, "origin_run_id": self.origin_run_id,
            "settings": task.settings.to_dict(), "foreach_stack": task.foreach_stack,
            "params": self._param_refs, "unresolved_params": self._unresolved if task.step == "start" else [],
            "inputs": [{"pathspec": self._pathspec(p), "step": p.step, "foreach_stack": p.foreach_stack,
                        "artifacts": {n: a["sha"] for n, a in p.artifacts.items()}} for p in task.parents],
        }

    def _ctx_for(self, backend: Backend) -> RunContext:
        if backend.remote and self._stage is not None:
            return dataclasses.replace(self._ctx, datastore=self._stage)
        return self._ctx

    def _task_ds(self, task: TaskState) -> FlowDatastore:
        """Where a task reads its inputs and writes its outputs: the staging area for a staged remote task."""
        return self._stage if task.staged else self.ds

    def _stage_inputs(self, task: TaskState) -> None:
        shas = set(self._param_refs.values())
        for parent in task.parents:
            shas.update(a["sha"] for a in parent.artifacts.values())
        _copy_blobs(self.ds, self._stage, shas)

    def _submit(self, task: TaskState) -> None:
        backend = self._backends[task.settings.backend]
        key = f"{task.task_id}"
        task.staged = backend.remote and self._stage is not None
        if task.staged:
            self._stage_inputs(task)
        ds = self._task_ds(task)
        ds._put_json(f"{ds.task_key(self.run_id, task.step, task.task_id)}/spec-{task.attempt}.json",
                     self._spec_doc(task))
        spec = TaskSpec(flow=self.flow, run_id=self.run_id, step=task.step, task_id=task.task_id,
                        attempt=task.attempt, settings=task.settings, datastore_url=ds.url,
                        project_root=self.project_root, flow_file=self.flow_file, class_name=self.graph.name or "",
                        labels={"workbench.flow": self.flow, "workbench.run": self.run_id,
                                "workbench.step": task.step, "workbench.task": task.task_id,
                                "workbench.project": self.config.model.project.name or Path(self.project_root).name})
        attempt = task.attempt
        q = self._queue

        def on_log(stream: str, text: str, ts: float) -> None:
            q.put(("log", key, stream, text, ts))

        def on_exit(result: TaskExit) -> None:
            q.put(("exit", key, attempt, result))

        task.status = "running"
        task.started = time.time()
        task.deadline = task.started + task.settings.timeout + HARD_TIMEOUT_GRACE if task.settings.timeout else None
        self._running[key] = task
        self.sink(ev.TaskStarted(self._pathspec(task), task.step, task.attempt, backend.name))
        try:
            task.handle = backend.submit(spec, on_log, on_exit)
        except WorkbenchError as exc:
            on_exit(TaskExit("failed", None, str(exc)))

    def _flush_logs(self, task: TaskState, final: bool = False) -> None:
        key = self.ds.log_key(self.run_id, task.step, task.task_id, task.attempt)
        if task.log_buffer:
            lines, task.log_buffer = task.log_buffer, []
            self.ds.append_log(key, lines)
        if final:
            self.ds.storage.flush(key)  # object stores (S3) cannot append: they upload a log when told

    def _finish(self, task: TaskState, result: TaskExit) -> None:
        report = self._task_ds(task).read_attempt(self.run_id, task.step, task.task_id, task.attempt) or {}
        if task.staged and report:  # bring the outputs home, each blob checked against its hash
            try:
                _import_blobs(self._stage, self.ds, {a["sha"] for a in report.get("artifacts", {}).values()})
            except DatastoreError as exc:
                report = {"status": "failed", "reason": f"outputs refused: {exc}"}
            self.ds.write_attempt(self.run_id, task.step, task.task_id, task.attempt, report)
        status = result.status
        reason = result.reason
        if status == "succeeded" and report.get("status") != "succeeded":
            status, reason = "failed", report.get("reason") or "the task exited 0 but saved no result"
        elif status in ("failed", "timeout") and report.get("status") in ("failed", "timeout"):
            status = report["status"]  # the task's own account is the most precise
            reason = report.get("reason") or reason
        if status == "succeeded":
            task.artifacts = report.get("artifacts", {})
            task.num_splits = report.get("foreach_num_splits")
            task.foreach_artifact = report.get("foreach_artifact")
            self._record(task, "succeeded", result, report)
            if task.step == "start":
                for attr in self._unresolved:
                    if attr in task.artifacts:
                        self._param_refs[attr] = task.artifacts[attr]["sha"]
            self._schedule_successors(task)
            return
        settings = task.settings
        if status != "cancelled" and task.attempt < settings.retries and not self._cancel.is_set():
            self._record(task, "retrying", TaskExit(status, result.exit_code, reason, result.usage), report,
                         final=False)
            delay = settings.retry_delay
            self.sink(ev.TaskRetrying(self._pathspec(task), task.step, task.attempt, reason, delay))
            task.attempt += 1
            heapq.heappush(self._delayed, (time.time() + delay, id(task), task))
            return
        self._record(task, status, TaskExit(status, result.exit_code, reason, result.usage), report)
        if status != "cancelled":
            self._failed.append(task)

    def _record(self, task: TaskState, status: str, result: TaskExit, report: Optional[dict] = None,
                final: bool = True) -> None:
        report = report or {}
        now = time.time()
        task.attempts.append({"attempt": task.attempt, "status": status, "started_at": task.started,
                              "finished_at": now, "exit_code": result.exit_code, "reason": result.reason,
                              "backend": task.settings.backend, "usage": result.usage})
        self._running.pop(task.task_id, None)
        if not final:
            return
        task.status = "succeeded" if status == "succeeded" else ("cancelled" if status == "cancelled" else "failed")
        doc = {"flow": self.flow, "run_id": self.run_id, "step": task.step, "task_id": task.task_id,
               "pathspec": self._pathspec(task), "status": status, "attempt": task.attempt,
               "attempts": task.attempts, "artifacts": task.artifacts, "foreach_stack": task.foreach_stack,
               "foreach_num_splits": task.num_splits, "foreach_artifact": task.foreach_artifact,
               "parents": [self._pathspec(p) for p in task.parents],
               "settings": redact_settings(task.settings.to_dict()), "started_at": task.started, "finished_at": now,
               "reason": result.reason, "traceback": report.get("traceback", ""), "usage": result.usage,
               "cloned_from": task.cloned_from}
        self.ds.write_task(self.run_id, task.step, task.task_id, doc)
        self.sink(ev.TaskFinished(self._pathspec(task), task.step, status, task.attempt, now - task.started,
                                  result.reason, result.exit_code, report.get("traceback", "")))
        # it is on disk now: keep only what its successors and joins need (memory stays flat in a wide foreach)
        task.artifacts = {name: {"sha": a["sha"]} for name, a in task.artifacts.items()}
        task.attempts, task.handle, task.log_buffer = [], None, []

    def _schedule_successors(self, task: TaskState) -> None:
        node = self.graph.steps[task.step]
        if task.step == self.only_step:
            return
        if node.kind == "foreach":
            child = node.out[0]
            n = task.num_splits or 0
            for i in range(n):
                frame = {"step": task.step, "var": task.foreach_artifact or node.foreach_var, "index": i,
                         "num_splits": n}
                self._enqueue(self._new_task(child, task.foreach_stack + [frame], [task]))
            return
        for target in node.out:
            t = self.graph.steps[target]
            if t.kind != "join":
                self._enqueue(self._new_task(target, task.foreach_stack, [task]))
                continue
            opener = self.graph.steps[t.closes]
            if opener.kind == "foreach":
                outer = task.foreach_stack[:-1]
                expected = task.foreach_stack[-1]["num_splits"]
                order = lambda p: p.foreach_stack[-1]["index"]  # noqa: E731
            else:
                outer = task.foreach_stack
                expected = len(t.in_steps)
                order = lambda p: t.in_steps.index(p.step)  # noqa: E731
            bucket_key = (target, tuple((f["step"], f["index"]) for f in outer))
            bucket = self._join_buckets.setdefault(bucket_key, [])
            bucket.append(task)
            if len(bucket) == expected:
                del self._join_buckets[bucket_key]
                self._enqueue(self._new_task(target, outer, sorted(bucket, key=order)))

    # ------------------------------------------------------------------ parameters, resume, clones
    def _save_parameters(self) -> None:
        from .graph import Unresolved
        for attr, value in self.params.items():
            if isinstance(value, Unresolved):
                self._unresolved.append(attr)
                continue
            sha, _ = self.ds.save_artifact(value)
            self._param_refs[attr] = sha

    def _load_origin(self) -> None:
        origin = self.origin_run_id
        if self.ds.read_run(origin) is None:
            raise UsageError(f"no run {origin} of flow {self.flow} in {self.ds.url}")
        for step in self.ds.list_steps(origin):
            for task_id in self.ds.list_tasks(origin, step):
                doc = self.ds.read_task(origin, step, task_id)
                if doc and doc.get("status") == "succeeded":
                    key = (step, tuple((f["step"], f["index"]) for f in doc.get("foreach_stack", [])))
                    self._origin[key] = doc
        start = self._origin.get(("start", ()))
        if start is not None:  # the origin's parameter values, also when start itself runs again
            for p in self.graph.parameters:
                if p.attr in start.get("artifacts", {}):
                    self._param_refs[p.attr] = start["artifacts"][p.attr]["sha"]
                    if p.attr in self._unresolved:
                        self._unresolved.remove(p.attr)

    def _clone(self, task: TaskState, origin: dict) -> None:
        task.artifacts = origin.get("artifacts", {})
        task.num_splits = origin.get("foreach_num_splits")
        task.foreach_artifact = origin.get("foreach_artifact")
        task.cloned_from = origin["pathspec"]
        task.started = time.time()
        task.status = "succeeded"
        if task.step == "start":
            # a resumed run keeps the origin's parameters
            for p in self.graph.parameters:
                if p.attr in task.artifacts:
                    self._param_refs[p.attr] = task.artifacts[p.attr]["sha"]
        doc = {"flow": self.flow, "run_id": self.run_id, "step": task.step, "task_id": task.task_id,
               "pathspec": self._pathspec(task), "status": "succeeded", "attempt": origin.get("attempt", 0),
               "attempts": origin.get("attempts", []), "artifacts": task.artifacts,
               "foreach_stack": task.foreach_stack, "foreach_num_splits": task.num_splits,
               "foreach_artifact": task.foreach_artifact,
               "parents": [self._pathspec(p) for p in task.parents], "settings": origin.get("settings", {}),
               "started_at": origin.get("started_at"), "finished_at": origin.get("finished_at"),
               "reason": "", "usage": origin.get("usage", {}), "cloned_from": task.cloned_from}
        self.ds.write_task(self.run_id, task.step, task.task_id, doc)
        self.sink(ev.TaskCloned(self._pathspec(task), task.step, task.cloned_from))
        self._schedule_successors(task)

    def _warn(self, message: str) -> None:
        self.sink(ev.RunWarning(message))


def _copy_blobs(src: FlowDatastore, dst: FlowDatastore, shas: set[str]) -> None:
    for sha in shas:
        if not dst.has_artifact(sha):
            dst.storage.put(dst.artifact_key(sha), [src.storage.get(src.artifact_key(sha))], overwrite=False)


def _import_blobs(src: FlowDatastore, dst: FlowDatastore, shas: set[str]) -> None:
    """Copy blobs a remote task wrote into ``dst``, refusing any whose content does not hash to its name."""
    for sha in shas:
        if not dst.has_artifact(sha):
            dst.import_blob(sha, src.storage.get(src.artifact_key(sha)))


def _short(value: Any) -> Any:
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "..."


def resume_plan(graph: FlowGraph, ds: FlowDatastore, origin_run_id: str, from_step: Optional[str]) -> set[str]:
    """Steps a resume re-runs: ``from_step`` and everything after it; without it, nothing is forced
    (every task that did not succeed in the origin runs again, and so does everything after it)."""
    if from_step is None:
        return set()
    if from_step not in graph.steps:
        raise UsageError(f"--from {from_step}: flow {graph.name} has no such step "
                         f"(steps: {', '.join(graph.steps)})")
    return {from_step} | graph.descendants(from_step)


def latest_run_id(ds: FlowDatastore, predicate: Callable[[dict], bool] = lambda doc: True) -> Optional[str]:
    for run_id in reversed(ds.list_runs()):
        doc = ds.read_run(run_id)
        if doc and predicate(doc):
            return run_id
    return None
