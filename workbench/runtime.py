"""The driver of a run: it owns the threads, the queue, the backends, the datastore, S3 staging, log
buffering and the event sink, and carries out what the :class:`~workbench.scheduler.Scheduler` decides.

Backends report through callbacks that only put small messages (:class:`LogMessage`,
:class:`ExitMessage`) on one queue; a single loop takes them off and turns them into scheduler events,
so no state is shared between threads. Events go to the sink (CLI renderer, TUI, JSON/JUnit writers)
as they happen.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from . import events as ev
from . import scheduler as sched
from .backends import Backend, RunContext, TaskExit, TaskSpec, create_backend
from .config import ProjectConfig
from .datastore import FlowDatastore, new_run_id
from .datastore.records import AttemptRecord, RunRecord, RunStatus, TaskStatus
from .errors import DatastoreError, UsageError, WorkbenchError
from .graph import FlowGraph
from .liveness import Heartbeat, HeldEntry, append_held, stamp
from .redact import redact_settings, secret_env_warnings
from .runtime_datastore import (
    StepSummaryWriter,
    _import_blobs,
    latest_run_id,
    load_origin,
    resume_plan,
    save_parameters,
    short_value,
)
from .runtime_specs import SpecWrite, SpecWriter
from .runtime_types import ExitMessage, LogMessage, Message, RunResult, Wake, _Handover, _Running
from .scheduler import HARD_TIMEOUT_GRACE, MAX_REMOTE_IN_FLIGHT
from .settings import effective_settings

__all__ = ["Runtime", "latest_run_id", "resume_plan"]  # the last two live in runtime_datastore

if TYPE_CHECKING:
    from .environment_run import RunEnvironments

STOP_WAIT = 60.0  # how long a cancelled run waits for its tasks' backends to confirm they ended
HURRIED_STOP_WAIT = 2.0  # the same after a second Ctrl-C: backends' end_run still removes what is left
LOG_FLUSH_INTERVAL = 2.0  # running tasks' buffered log text reaches object stores at least this often


class Runtime:
    """One run of one flow. Build it, then call :meth:`run` (blocking); :meth:`cancel` from anywhere."""

    def __init__(
        self,
        graph: FlowGraph,
        config: ProjectConfig,
        *,
        params: Optional[dict[str, Any]] = None,
        sink: Optional[ev.EventSink] = None,
        max_workers: Optional[int] = None,
        max_num_splits: Optional[int] = None,
        backend: Optional[str] = None,
        step_overrides: Optional[dict[str, dict[str, Any]]] = None,
        origin_run_id: Optional[str] = None,
        rerun_steps: Optional[set[str]] = None,
        only_step: Optional[str] = None,
        only_task_index: Optional[int] = None,
        run_id: Optional[str] = None,
        datastore: Optional[FlowDatastore] = None,
        configs: Optional[dict[str, Any]] = None,
    ):
        if not graph.ok:
            raise graph.errors[0]
        self.graph = graph
        self.config = config
        self.flow = graph.name or ""
        self.sink = sink or (lambda e: None)
        self.max_workers = max_workers or os.cpu_count() or 2
        self.max_num_splits = max_num_splits  # None: no limit (Metaflow's --max-num-splits, only when given)
        self.max_workers_given = max_workers  # None: the default (the cores), which says nothing about remote tasks
        self.run_id = run_id or new_run_id()
        self.ds = datastore or FlowDatastore(config.datastore_url, self.flow)
        self.origin_run_id = origin_run_id
        self.rerun_steps = rerun_steps or set()
        self.only_step = only_step
        self.only_task_index = only_task_index
        from .parameters import resolve_parameters

        # the parameters not given take their defaults (all of them when none are given; a resume takes the
        # origin's); one that is required and not given is refused here, in one line
        missing = [p for p in graph.parameters if params is None or p.attr not in params]
        params = {**resolve_parameters(missing, {}), **(params or {})}
        self.params = params
        self.configs = configs or {}  # Config name -> value (workbench.config_values), artifacts of every task
        if graph.configs and configs is None:
            names = ", ".join(c.name for c in graph.configs)
            raise UsageError(
                f"flow {self.flow} has configs ({names}): start it with workbench run, which resolves them"
            )
        root = Path(config.root).resolve()
        flow_path = Path(graph.path).resolve()
        try:
            self.flow_file = str(flow_path.relative_to(root))
            self.project_root = str(root)
        except ValueError:  # a flow outside the project: its own directory is the root
            self.flow_file, self.project_root = flow_path.name, str(flow_path.parent)
        overrides = step_overrides or {}
        cli = {"backend": backend} if backend else {}
        self.settings = {
            name: effective_settings(graph, name, config, {**cli, **overrides.get(name, {})}) for name in graph.steps
        }
        self._queue: "queue.Queue[Message]" = queue.Queue()
        self._cancel = threading.Event()
        self._cancel_reason = "cancelled"
        self._backends: dict[str, Backend] = {}
        self._tasks: dict[str, _Running] = {}  # submitted attempts, by scheduler key
        self._run_path = f"{self.flow}/{self.run_id}"  # shared by every _Running (each makes its pathspec when asked)
        self._stopping = False
        self._finished: Optional[sched.FinishRun] = None
        self.scheduler: sched.Scheduler  # both set when run() starts
        self._ctx: RunContext
        self._stage: Optional[FlowDatastore] = None  # S3 staging for remote tasks when self.ds is local
        self._envs: Optional["RunEnvironments"] = None  # each step's prepared environment (set by run)
        self._hurry = threading.Event()
        self._record_lock = threading.Lock()
        self._last_log_flush = 0.0
        self.detached = False  # set by the detached launcher (workbench.detach)
        self.runtime_log: Optional[str] = None
        self._summaries: StepSummaryWriter  # each step's summary for viewers (set when run() starts)
        self._specs: SpecWriter  # writes the specs of the tasks an event starts (set when run() starts)

    # ------------------------------------------------------------------ public
    def cancel(self, reason: str = "cancelled") -> None:
        """Stop the run from any thread: running tasks are cancelled, the run ends as cancelled."""
        self._cancel_reason = reason
        self._cancel.set()
        self._queue.put(Wake())

    def hurry(self) -> None:
        """Stop waiting for tasks to confirm they ended (a second Ctrl-C): the backends' end_run still
        removes what the run started."""
        self._hurry.set()
        self.cancel(self._cancel_reason if self._cancel.is_set() else "cancelled")

    def run(self) -> RunResult:
        started = time.time()
        self._summaries = StepSummaryWriter(self.ds, self.flow, self.run_id, warn=self._warn)
        self._ctx = RunContext(
            self.flow,
            self.run_id,
            self.graph,
            self.config,
            self.ds,
            self.project_root,
            self.flow_file,
            self.graph.name or "",
            warn=self._warn,
            waiting=lambda *why: self.sink(ev.TaskWaiting(*why)),
            max_workers=self.max_workers_given,
        )
        for line in secret_env_warnings(self.settings):
            self._warn(line)
        used = {s.backend for s in self.settings.values()}
        self._open_backends(used)
        self._specs = SpecWriter(self.ds, self._stage)  # after _open_backends, which opens the stage
        from .environment_run import RunEnvironments  # before anything runs: a missing package is one line

        self._envs = RunEnvironments(self.graph, self.config, self.settings, say=self._warn)
        param_refs, unresolved = save_parameters(self.ds, self.params, self.graph, self.configs)
        origin_tasks = load_origin(self.ds, self.flow, self.origin_run_id, self._envs) if self.origin_run_id else []
        self.scheduler = sched.Scheduler(
            self.graph,
            run_id=self.run_id,
            settings=self.settings,
            max_workers=self.max_workers,
            max_num_splits=self.max_num_splits,
            remote_backends=frozenset(n for n, b in self._backends.items() if b.remote),
            param_refs=param_refs,
            unresolved_params=unresolved,
            origin_run_id=self.origin_run_id,
            origin_tasks=origin_tasks,
            rerun_steps=self.rerun_steps,
            only_step=self.only_step,
            only_task_index=self.only_task_index,
            flow_file=self.flow_file,
            max_remote=self.max_remote_tasks(),
            hard_timeout_grace=HARD_TIMEOUT_GRACE,
        )
        record = RunRecord(
            flow=self.flow,
            run_id=self.run_id,
            status=RunStatus.RUNNING,
            started_at=started,
            params={k: short_value(v) for k, v in self.params.items()},
            configs=self.configs,
            origin_run_id=self.origin_run_id,
            flow_file=self.flow_file,
            only_step=self.only_step,
            user=os.environ.get("USER") or os.environ.get("USERNAME"),
            backends=sorted(used),
            runtime_log=self.runtime_log,
        )
        stamp(record, detached=self.detached)
        self.ds.write_run(record)
        heartbeat = Heartbeat(record, self.ds.write_run, self._record_lock).start()
        self.sink(
            ev.RunStarted(self.flow, self.run_id, record.params, self.origin_run_id, tuple(self.graph.topological()))
        )
        started_backends: list[Backend] = []
        try:
            try:
                for backend in self._backends.values():
                    backend.start_run(self._ctx_for(backend))
                    started_backends.append(backend)
                self._feed(sched.RunStart(time.time()))
                self._loop()
            except WorkbenchError as exc:
                self._feed(sched.Abort(str(exc), time.time()))
                self._wait_stopped()
            except KeyboardInterrupt:
                self._cancel_reason = "cancelled"
                self._feed(sched.CancelRequested("cancelled", time.time()))
                self._wait_stopped()
        finally:
            for backend in started_backends:
                if self._hurry.is_set():
                    self._warn(f"{backend.name}: removing what the run started")
                try:
                    backend.end_run(self._ctx_for(backend))
                except Exception as exc:  # noqa: BLE001 - cleanup must not hide the run's result
                    self._warn(f"{backend.name}: cleanup failed: {exc}")
            heartbeat.stop()
            self._summaries.close()
            self._specs.close()
        end = self._finished or sched.FinishRun(RunStatus.FAILED, "the run ended without a result")
        finished = time.time()
        with self._record_lock:
            record.status, record.finished_at = end.status, finished
            record.failed, record.message = list(end.failed), end.message
            self.ds.write_run(record)
        self.sink(ev.RunFinished(self.flow, self.run_id, str(end.status), finished - started, end.failed, end.message))
        return RunResult(self.flow, self.run_id, str(end.status), list(end.failed), end.message)

    def max_remote_tasks(self) -> int:
        """``[project] max_remote_tasks``, else one array wide (10,000) or ``--max-workers`` when larger."""
        return self.config.model.project.max_remote_tasks or max(MAX_REMOTE_IN_FLIGHT, self.max_workers_given or 0)

    def _open_backends(self, used: set[str]) -> None:
        """Create each backend the steps use; refuse remote ones without S3 and requests none can run."""
        for name in sorted(used):
            backend = create_backend(name, self.config)
            if backend.remote and not self.ds.url.startswith("s3://"):
                if self.config.remote_url:
                    self._stage = self._stage or FlowDatastore(self.config.remote_url, self.flow)
                else:
                    steps = ", ".join(n for n, s in self.settings.items() if s.backend == name)
                    raise UsageError(
                        f"step(s) {steps} run on {name}, which needs an S3 datastore: in workbench.toml set "
                        f'[datastore] root = "s3://bucket/prefix" (keep everything in S3) or '
                        f'[datastore] remote = "s3://bucket/prefix" (remote steps exchange their inputs and '
                        f"outputs there)"
                    )
            for step_name, s in self.settings.items():
                if s.backend == name:
                    try:
                        backend.check(s)
                    except WorkbenchError as exc:
                        exc.message = f"step {step_name}: {exc.message}"
                        raise
            self._backends[name] = backend

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        """Take messages off the queue, turn them into scheduler events, until the run has finished."""
        while self._finished is None:
            if self._cancel.is_set() and self.scheduler.phase == "running":
                self._feed(sched.CancelRequested(self._cancel_reason, time.time()))
                continue
            if self.scheduler.phase == "stopping":
                self._wait_stopped()
                return
            try:
                batch: list[Message] = [self._queue.get(timeout=self._wait_time())]
            except queue.Empty:
                batch = []
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._take(batch)
            self._feed(sched.Tick(time.time()))
            self._flush_running_logs()
            self._summaries.flush()

    def _take(self, batch: list["Message"]) -> None:
        touched = set()
        for m in batch:
            if isinstance(m, LogMessage):
                task = self._tasks.get(m.key)
                if task is not None:
                    task.buffer(m.ts, m.stream, m.text)
                    touched.add(m.key)
                    if not self._stopping:
                        self.sink(ev.LogLine(task.pathspec, m.stream, m.text, task.attempt, m.ts))
            elif isinstance(m, ExitMessage):
                task = self._tasks.get(m.key)
                if task is not None and task.attempt == m.attempt:
                    if self._cancel.is_set() and self.scheduler.phase == "running":
                        self._feed(sched.CancelRequested(self._cancel_reason, time.time()))
                    if not TaskStatus.parse(m.result.status).ok and m.result.reason:
                        task.buffer(time.time(), "stderr", f"[workbench] {m.result.status}: {m.result.reason}")
                    self._flush_logs(task, final=True)
                    self._tasks.pop(m.key)
                    self._feed(sched.TaskExited(m.key, m.attempt, m.result, self._report(task), time.time()))
        for key in touched:
            if key in self._tasks:
                self._flush_logs(self._tasks[key])

    def _wait_stopped(self) -> None:
        """After cancelling: wait (bounded) until each backend says its tasks have ended."""
        self._stopping = True
        deadline = time.time() + STOP_WAIT
        while self._finished is None and time.time() < deadline:
            if self._hurry.is_set():
                deadline = min(deadline, time.time() + HURRIED_STOP_WAIT)
            try:
                self._take([self._queue.get(timeout=0.5)])
            except queue.Empty:
                continue
        if self._finished is None:
            for task in self._tasks.values():
                self._flush_logs(task, final=True)
            self._tasks.clear()
            self._feed(sched.StopExpired(time.time()))

    def _wait_time(self) -> float:
        wake = self.scheduler.wake_at
        return max(0.01, min(1.0, wake - time.time())) if wake is not None else 1.0

    def _feed(self, event: "sched.SchedulerEvent") -> None:
        """Hand one event to the scheduler and carry out what it answers. The tasks it starts are prepared one by
        one, their specs written together (:class:`SpecWriter`), and handed to their backends together at the end
        (one held.jsonl upload for all)."""
        ready: list[tuple[_Handover, SpecWrite]] = []
        for instruction in self.scheduler.handle(event):
            try:
                if isinstance(instruction, sched.Submit):
                    ready.append(self._prepare(instruction))
                else:
                    self._execute(instruction)
            except WorkbenchError as exc:
                self._feed(sched.Abort(str(exc), time.time()))
        if ready:
            self._hand_over(self._write_specs(ready))
            more = self.scheduler.dispatch_pending  # a wide foreach is handed over in slices: one array for all
            for backend in self._backends.values():
                backend.more_coming(more)

    def _execute(self, instruction: "sched.Instruction") -> None:
        self._summaries.take(instruction)
        if isinstance(instruction, sched.Emit):
            self.sink(instruction.event)
        elif isinstance(instruction, sched.WriteTask):
            record = instruction.record  # step env values that look like secrets never reach the record
            self.ds.write_task(dataclasses.replace(record, settings=redact_settings(record.settings)))
        elif isinstance(instruction, sched.Submit):
            self._hand_over(self._write_specs([self._prepare(instruction)]))
        elif isinstance(instruction, sched.Cancel):
            task = self._tasks.get(instruction.key)
            if task is not None and task.handle is not None:
                try:
                    task.handle.cancel(instruction.reason, timeout=instruction.timeout)
                except Exception as exc:  # noqa: BLE001
                    self._warn(f"could not cancel {task.pathspec}: {exc}")
        elif isinstance(instruction, sched.FinishRun):
            self._finished = instruction

    # ------------------------------------------------------------------ tasks
    def _ctx_for(self, backend: Backend) -> RunContext:
        if backend.remote and self._stage is not None:
            return dataclasses.replace(self._ctx, datastore=self._stage)
        return self._ctx

    def _prepare(self, sub: "sched.Submit") -> tuple["_Handover", SpecWrite]:
        """Everything before the backend but the spec's write (:meth:`_write_specs`): the TaskSpec, the held entry."""
        backend = self._backends[sub.backend]
        spec_record = sub.spec
        stage = self._stage if backend.remote else None
        staged = stage is not None
        task = _Running(
            sub.key, self._run_path, spec_record.step, spec_record.task_id, spec_record.attempt, staged, self._queue
        )
        self._tasks[sub.key] = task
        ds = stage or self.ds
        spec = TaskSpec(
            flow=self.flow,
            run_id=self.run_id,
            step=spec_record.step,
            task_id=spec_record.task_id,
            attempt=spec_record.attempt,
            settings=sub.settings,
            datastore_url=ds.url,
            project_root=self.project_root,
            flow_file=self.flow_file,
            class_name=self.graph.name or "",
            labels={
                "workbench.flow": self.flow,
                "workbench.run": self.run_id,
                "workbench.step": spec_record.step,
                "workbench.task": spec_record.task_id,
                "workbench.project": self.config.model.project.name or Path(self.project_root).name,
            },
            environment=self._envs.environment(spec_record.step) if self._envs else None,
            input_pins=(
                self._envs.input_pins(spec_record.step, spec_record) if self._envs and sub.backend != "local" else ()
            ),
            parallel=spec_record.parallel,
        )
        held = HeldEntry(backend.name, spec.pathspec, spec.attempt, backend.held_ref(spec))
        return (backend, spec, task, held), SpecWrite(spec_record, staged, sub.input_shas)

    def _write_specs(self, prepared: list[tuple["_Handover", SpecWrite]]) -> list["_Handover"]:
        """Write the specs of the tasks one event starts, together; a task whose spec could not be written ends
        failed and stops the run (the scheduler still hears it ended). The rest go on to :meth:`_hand_over`."""
        errors = self._specs.write([write for _, write in prepared])
        ready, first = [], None
        for (handover, _), error in zip(prepared, errors, strict=True):
            if error is None:
                ready.append(handover)
                continue
            handover[2].on_exit(TaskExit(TaskStatus.FAILED, None, str(error)))
            first = first or error
        if first is not None:
            self._feed(sched.Abort(str(first), time.time()))
        return ready

    def _hand_over(self, ready: list["_Handover"]) -> None:
        """Record what the backends will hold, then submit. Tasks of an event that stopped the run are never
        sent: they end as cancelled (the scheduler waits for their exit)."""
        if self.scheduler.phase != "running":
            for _, _, task, _ in ready:
                task.on_exit(TaskExit(TaskStatus.CANCELLED, None, self.scheduler.cancel_reason))
            return
        try:  # before the backend holds anything: `workbench cancel` finds it even if this process dies
            append_held(self.ds, self.run_id, *(held for _, _, _, held in ready))
        except WorkbenchError as exc:
            self._warn(f"could not record {len(ready)} task(s) before submitting them: {exc}")
        for backend, spec, task, _ in ready:
            try:
                task.handle = backend.submit(spec, task.on_log, task.on_exit)
            except WorkbenchError as exc:
                task.on_exit(TaskExit(TaskStatus.FAILED, None, str(exc)))

    def _report(self, task: "_Running") -> Optional[AttemptRecord]:
        """What the task reported about its attempt; a staged task's outputs are copied home first."""
        stage = self._stage if task.staged else None
        ds = stage or self.ds
        report = ds.read_attempt(self.run_id, task.step, task.task_id, task.attempt)
        if report is not None and self._envs is not None:
            self._envs.learn(report.artifacts)
        if stage is not None and report is not None:  # bring the outputs home, each blob checked against its hash
            try:
                _import_blobs(stage, self.ds, {a["sha"] for a in report.artifacts.values()})
            except DatastoreError as exc:
                report = AttemptRecord(status=TaskStatus.FAILED, attempt=task.attempt, reason=f"outputs refused: {exc}")
            self.ds.write_attempt(self.run_id, task.step, task.task_id, report)
        return report

    def _flush_running_logs(self) -> None:
        """Upload the buffered log text of running tasks at a bounded interval (object stores cannot
        append), so `workbench logs --follow` on an S3 datastore sees lines while the task runs."""
        now = time.monotonic()
        if now - self._last_log_flush < LOG_FLUSH_INTERVAL:
            return
        self._last_log_flush = now
        flush = self.ds.storage.flush
        for task in self._tasks.values():
            key = self.ds.log_key(self.run_id, task.step, task.task_id, task.attempt)
            try:
                flush(key, keep=True)  # type: ignore[call-arg]
            except TypeError:  # local storage: appends are on disk already
                return
            except WorkbenchError as exc:
                self._warn(f"could not upload the log of {task.pathspec}: {exc}")

    def _flush_logs(self, task: "_Running", final: bool = False) -> None:
        key = self.ds.log_key(self.run_id, task.step, task.task_id, task.attempt)
        if task.log_buffer:
            lines, task.log_buffer = task.log_buffer, None
            self.ds.append_log(key, lines)
        if final:
            self.ds.storage.flush(key)  # object stores (S3) cannot append: they upload a log when told

    def _warn(self, message: str) -> None:
        self.sink(ev.RunWarning(message))
