"""The run lifecycle shared by the backends whose tasks run elsewhere (AWS Batch, Kubernetes).

Once for all of them:

- ``start_run`` uploads the run's code package (once per run; the task's bootstrap downloads it) and starts
  two threads, the submitter and the poller.
- ``submit`` checks what it can without the API (a request that can never run raises a WorkbenchError in
  the caller's thread), queues the job and returns its handle at once. The API calls happen on the
  :class:`Submitter` thread, in batches, at a rate that halves when the API throttles and creeps back up
  while it does not; a submission the API refuses is reported through ``on_exit`` (status failed).
- The poller asks for the status of every live job in as few calls as the API allows (the subclass's
  :meth:`RemoteBackend.poll`): every ``poll_min`` seconds while jobs change, less and less often while
  nothing does (up to ``poll_max``), and backing off the same way while the API fails.
- A job that has ended is *concluded* (its outcome known, first word wins) and *reported* (``on_exit``)
  exactly once, and only once its log has drained (:meth:`RemoteBackend.drain_logs`) or ``log_drain``
  seconds have passed.
- Siblings go out together: the submitter waits for a burst of submissions to end (``coalesce_quiet`` seconds
  without a new one, at most ``coalesce_linger``), and :meth:`RemoteBackend.group_jobs` puts the tasks of one
  step and attempt (:meth:`RemoteBackend.array_key`) into arrays of up to ``array_max``, each sent by the
  subclass's ``submit_array`` in one call (a Batch array job, a Kubernetes Indexed Job; the index -> task
  manifest: :mod:`workbench.arrays`). A lone task is a single job, so a retried index goes alone. Each job of
  an array stays a task of its own: its own status, log, on_exit. The rate limit counts API calls, not jobs.
- A @parallel gang (every Submit has ``spec.parallel``) is held until its last node is submitted, then sent whole by
  the subclass's ``submit_gang`` (a multi-node job); stopping any node stops the gang (``terminate_gang``). See
  :mod:`workbench.backends.remote_gang`.
- ``cancel`` queues the stop and wakes the poller, whose thread makes the API calls (never the runtime's
  thread); stops queued together go together, and an array whose every unreported job is stopped is stopped
  in one call (``terminate_array``). ``on_exit`` follows soon; a job still waiting for the submitter is
  never sent. ``end_run`` cancels every live job, waits (bounded) until each
  is reported, reports the rest as cancelled, then lets the subclass sweep the run's leftovers.

A subclass implements ``submit_job`` (one API call on the submitter thread), ``poll`` (one status round),
``terminate`` (stop one job) and ``_requested_exit`` (the outcome of a cancel), and may override
``prepare`` (checks before queueing), ``submit_array`` + ``array_max`` (several jobs in one call),
``terminate_array``, ``drain_logs``, ``stop_logs``, ``after_report``, ``forget``, ``is_throttling``, ``prepare_run`` and
``cleanup_run``.
The job records live in :mod:`workbench.backends.remote_jobs`, the cancel half in
:mod:`workbench.backends.remote_stopping`; both are re-exported here.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Any, Callable, ClassVar, Optional

from ..datastore.records import TaskStatus
from ..errors import BackendError, WorkbenchError
from .base import Backend, LogCallback, RunContext, TaskExit, TaskHandle, TaskSpec
from .remote_gang import RemoteGangs, gang_of
from .remote_jobs import QUEUED, SENT, SUBMITTING, JobArray, RemoteHandle, RemoteJob
from .remote_stopping import RemoteStopping
from .submitter import Submitter, Throttled


class RemoteBackend(RemoteStopping, RemoteGangs, Backend):
    """A backend whose tasks run as jobs behind an API; see the module docstring for the lifecycle."""

    remote = True
    #: environment variable with the seconds between status rounds while jobs change
    poll_env: ClassVar[str] = ""
    poll_default: ClassVar[float] = 1.0
    poll_max: ClassVar[float] = 10.0
    #: how long a concluded job may wait for its log before it is reported anyway
    log_drain: ClassVar[float] = 10.0
    #: how long end_run waits for the cancelled jobs to be reported
    end_run_wait: ClassVar[float] = 30.0
    #: submissions a second at the start, and the most the submitter climbs to
    submit_rate: ClassVar[float] = 50.0
    submit_rate_max: ClassVar[float] = 50.0
    submit_batch: ClassVar[int] = 100
    #: the most sibling tasks one API call may start (1: no arrays); several arrays beyond
    array_max: ClassVar[int] = 1
    #: coalescing window (see :class:`Submitter`): quiet gap and longest wait, in seconds
    coalesce_quiet: ClassVar[float] = 0.0
    coalesce_linger: ClassVar[float] = 0.0

    def __init__(self, config):
        super().__init__(config)
        self._lock = threading.RLock()
        self._jobs: dict[Any, RemoteJob] = {}  # the run's jobs, by a key unique in the run
        self._ctx: Optional[RunContext] = None
        self._package_url: Optional[str] = None
        self._task_env: dict[str, str] = {}
        from .remote_env import RemoteEnvironments

        self.environments = RemoteEnvironments(lambda line: self._warn(f"{self.name}: {line}"))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._poller: Optional[threading.Thread] = None
        self._submitter: Optional[Submitter] = None
        self._terminations: collections.deque[RemoteJob] = collections.deque()  # sent jobs to stop (poller thread)
        self._terminations_first = self._terminations_last = 0.0  # when the queued stops were asked for
        self.calls: collections.Counter[str] = collections.Counter()  # API calls by name, for the benchmarks

    # ------------------------------------------------------------------ hooks for the subclass
    def prepare(self, job: RemoteJob) -> None:
        """Checks and work that need no API call, on the caller's thread (raise a WorkbenchError to refuse)."""

    def submit_job(self, job: RemoteJob) -> None:
        """Create the job through the API (on the submitter thread); raise on failure."""
        raise NotImplementedError

    def submit_array(self, jobs: list[RemoteJob]) -> None:
        """Create ``jobs`` (siblings: same :meth:`array_key`, 2 to ``array_max`` of them) in one API call, as an
        array whose index ``i`` runs ``jobs[i]``; set each job's ``array`` and ``index``. Raise on failure."""
        raise NotImplementedError

    def array_key(self, job: RemoteJob) -> Any:
        """Jobs with the same key (not None) may go out as one array: by default one attempt of one step's
        tasks on one datastore (they share settings, image and command but for the task)."""
        s = job.spec
        return (s.step, s.attempt, s.datastore_url)

    def group_jobs(self, jobs: list[RemoteJob]) -> list[list[RemoteJob]]:
        """Split a batch into API calls: siblings together (up to ``array_max`` a call), in the order they came."""
        if self.array_max <= 1:
            return [[job] for job in jobs]
        groups: dict[Any, list[list[RemoteJob]]] = {}
        order: list[list[RemoteJob]] = []
        for job in jobs:
            key = None if gang_of(job) is not None else self.array_key(job)
            if key is None:
                order.append([job])
                continue
            chunks = groups.setdefault(key, [])
            if not chunks or len(chunks[-1]) >= self.array_max:
                chunks.append([])
                order.append(chunks[-1])
            chunks[-1].append(job)
        return order

    def submit_jobs(self, jobs: list[RemoteJob]) -> int:
        """Send a batch, siblings as one array each (:meth:`group_jobs`); return the API calls made. A call the
        API refuses fails its jobs alone; throttling sends the unsent rest back to the submitter (:class:`Throttled`)."""
        calls = 0
        groups = self.group_jobs(jobs)
        for i, group in enumerate(groups):
            gang = gang_of(group[0])  # a gang's node 0 stands for the whole gang
            group = self.begin_gang(gang) if gang is not None else [job for job in group if self._begin_submit(job)]
            if not group:
                continue
            try:
                if gang is not None:
                    self.submit_gang(group)
                elif len(group) == 1:
                    self.submit_job(group[0])
                else:
                    self.submit_array(group)
                calls += 1
                self.calls["submit"] += 1
            except Exception as exc:  # noqa: BLE001 - reported as the tasks' failure, never lost
                if self.is_throttling(exc):
                    with self._lock:
                        for job in group:
                            job.phase = QUEUED
                            if gang is None:
                                job.array = None
                    rest = [job for later in groups[i + 1 :] for job in later]
                    retry = group[:1] if gang is not None else group  # node 0 stands for its gang
                    raise Throttled(retry + rest, getattr(exc, "retry_after", None)) from None
                for job in group:
                    self._submit_failed(job, exc)
                continue
            for job in group:
                self._sent(job)
        return calls

    def is_throttling(self, exc: BaseException) -> bool:
        """Whether the API refused for rate (the submitter backs off and retries)."""
        return False

    def poll(self, active: list[RemoteJob]) -> bool:
        """One status round over the sent jobs not yet concluded; conclude those that ended. True when
        anything changed (the poller then keeps its fastest pace)."""
        raise NotImplementedError

    def terminate(self, job: RemoteJob) -> None:
        """Ask the API to stop a sent job (its reason is ``job.requested``); the poller concludes it."""
        raise NotImplementedError

    def _requested_exit(self, job: RemoteJob) -> TaskExit:
        """The outcome of a job the runtime cancelled (``job.requested`` says why)."""
        raise NotImplementedError

    def usage(self, job: RemoteJob) -> dict[str, Any]:
        """What the TaskExit's usage names the job by."""
        return {}

    def drain_logs(self, job: RemoteJob) -> bool:
        """Deliver what is left of a concluded job's log; True once nothing more will come."""
        return True

    def stop_logs(self, job: RemoteJob) -> None:
        """The job is reported before its log drained: stop following it."""

    def after_report(self, job: RemoteJob) -> None:
        """Called once after on_exit (e.g. free the cluster of a finished job); then :meth:`forget`."""

    def prepare_run(self, ctx: RunContext) -> None:
        """First thing of start_run (e.g. check the API answers)."""

    def cleanup_run(self, ctx: RunContext) -> None:
        """Last thing of end_run, once every job is reported: sweep whatever of the run is left."""

    def more_coming(self, more: bool) -> None:
        if self._submitter is not None:
            self._submitter.more_coming(more)

    # ------------------------------------------------------------------ run lifecycle
    def start_run(self, ctx: RunContext) -> None:
        from ..aws import task_environment

        self._ctx = ctx
        self.prepare_run(ctx)
        self._package_url = self.upload_package(ctx)
        storage = ctx.datastore.storage
        self._task_env = {
            **task_environment(getattr(storage, "endpoint_url", None), getattr(storage, "region", None)),
            "PYTHONUNBUFFERED": "1",
        }
        if str(getattr(storage, "url", "")).startswith("s3://"):  # tasks write only their outbox, ingested
            from ..datastore.outbox import ENV_OUTBOX
            from ..datastore.outbox_s3 import PER_TASK

            self._task_env[ENV_OUTBOX] = PER_TASK
        self._stop.clear()
        self._submitter = Submitter(
            self.submit_jobs,
            rate=self.submit_rate,
            max_rate=self.submit_rate_max,
            batch_size=self.submit_batch,
            name=f"{self.name}-submitter",
            warn=self._warn,
            failed=self._batch_failed,
            quiet=self.coalesce_quiet,
            linger=self.coalesce_linger,
        )
        self._submitter.start()
        self._poller = threading.Thread(target=self._poll_loop, name=f"{self.name}-poller", daemon=True)
        self._poller.start()

    def upload_package(self, ctx: RunContext) -> str:
        """Put the project's code in the datastore, once per run (content-addressed: an unchanged project is not
        uploaded again); the URL the task's bootstrap downloads it from."""
        from .. import package

        t0 = time.time()
        pkg = package.collect(ctx.project_root)
        warning = pkg.warning()
        if warning:
            ctx.warn(f"{self.name}: {warning}")
        url, uploaded = package.upload(pkg, ctx.datastore.storage, ctx.flow)
        if uploaded and time.time() - t0 > 5:
            ctx.warn(
                f"{self.name}: code package of {len(pkg.blob) / 2**20:.1f} MiB took {time.time() - t0:.0f}s to upload"
            )
        return url

    def environment_env(self, spec: TaskSpec) -> dict[str, str]:
        """What tells the task to install its environment archive (uploaded once per content)."""
        if spec.environment is None and not spec.input_pins:
            return {}
        if self._ctx is None:
            raise BackendError(f"{self.name}: submit before start_run (no datastore for the environment)")
        return self.environments.job_env(spec, self._ctx.datastore.storage)

    def end_run(self, ctx: RunContext) -> None:
        with self._lock:
            unreported = [j for j in self._jobs.values() if not j.done]
        for job in unreported:
            if job.outcome is None:
                self.cancel_job(job, job.requested or "the run ended")
        if self._submitter is not None:
            self._submitter.stop()
        deadline = time.time() + (self.end_run_wait if unreported else 0)
        while time.time() < deadline:
            with self._lock:
                if all(j.done for j in self._jobs.values()):
                    break
            self._wake.set()
            time.sleep(0.1)
        self._stop.set()
        self._wake.set()
        if self._poller is not None:
            self._poller.join(timeout=15)
        self._flush_terminations()  # stops asked for while the poller was ending
        # every job gets its on_exit exactly once, whatever happened
        with self._lock:
            unreported = [j for j in self._jobs.values() if not j.done]
        for job in unreported:
            with self._lock:
                if job.outcome is None:
                    job.outcome = TaskExit(
                        TaskStatus.CANCELLED, None, job.requested or "the run ended", self.usage(job)
                    )
                    job.outcome_at = time.time()
            self.settle(job, force=True)
        self.cleanup_run(ctx)

    # ------------------------------------------------------------------ submitting
    def submit(self, spec: TaskSpec, on_log: LogCallback, on_exit: Callable[[TaskExit], None]) -> TaskHandle:
        if self._package_url is None or self._submitter is None:
            raise BackendError(f"{self.name}: submit before start_run (no code package)")
        job = self.new_job(spec, on_log, on_exit)
        self.prepare(job)
        with self._lock:
            self._jobs[self.job_key(job)] = job
        if spec.parallel:  # a @parallel gang goes out whole, once its last node is in (remote_gang)
            gang = self.gather(job)
            if gang is not None:
                self._submitter.put(gang[0])
        else:
            self._submitter.put(job)
        return self.handle_for(job)

    def new_job(self, spec: TaskSpec, on_log: LogCallback, on_exit: Callable[[TaskExit], None]) -> RemoteJob:
        return RemoteJob(spec, on_log, on_exit)

    def job_key(self, job: RemoteJob) -> Any:
        return job  # compared by identity (RemoteJob has eq=False): no id() int kept per job

    def handle_for(self, job: RemoteJob) -> TaskHandle:
        return RemoteHandle(self, job)

    def _begin_submit(self, job: RemoteJob) -> bool:
        """Move a queued job to submitting; False when it was cancelled (it is never sent, and concluded)."""
        with self._lock:
            if not (job.requested or job.outcome is not None or job.done):
                job.phase = SUBMITTING
                return True
        if job.requested:
            self.conclude(job, self._requested_exit(job))  # no-op when cancel_job already did
        return False

    def _sent(self, job: RemoteJob) -> None:
        """The API accepted the job: from now the poller follows it (and a cancel that came meanwhile stops it)."""
        with self._lock:
            job.phase = SENT
            job.submitted = time.time()
            cancelled = job.requested is not None
        if cancelled:
            self._queue_termination(job)
        self._wake.set()

    def _batch_failed(self, jobs: list[RemoteJob], exc: BaseException) -> None:
        """Fail every job of a batch the API never accepted (sent ones are followed by the poller)."""
        for job in jobs:
            if job.phase != SENT:
                self._submit_failed(job, exc)

    def _submit_failed(self, job: RemoteJob, exc: BaseException) -> None:
        if job.requested:  # cancelled while the API call was on its way
            self.conclude(job, self._requested_exit(job))
            return
        message = str(exc) if isinstance(exc, WorkbenchError) else f"{self.name}: submit: {exc}"
        self.conclude(job, TaskExit(TaskStatus.FAILED, None, message, self.usage(job)))

    # ------------------------------------------------------------------ status
    def poll_interval(self) -> float:
        """Seconds between status rounds while jobs change (``poll_env``, at least 0.05)."""
        try:
            return max(0.05, float(os.environ.get(self.poll_env, self.poll_default)))
        except ValueError:
            return self.poll_default

    def live_jobs(self) -> list[RemoteJob]:
        """The jobs the API has accepted and whose on_exit has not been called."""
        with self._lock:
            return [j for j in self._jobs.values() if not j.done and j.phase == SENT]

    def _poll_loop(self) -> None:
        interval = poll_min = self.poll_interval()
        errors = 0
        while not self._stop.is_set():
            if self.terminations_settling():
                time.sleep(self.COALESCE_S)  # a cancel is stopping many jobs: let the rest of them queue up
                continue
            self._flush_terminations()
            active = self.live_jobs()
            if not active:
                interval = poll_min
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                changed = self.poll_once(active)
                errors = 0
                interval = poll_min if changed else min(self.poll_max, interval * 1.5)
            except Exception as exc:  # noqa: BLE001 - keep polling, slower; say so once in a while
                errors += 1
                interval = min(self.poll_max, max(interval, poll_min) * 2)
                if errors in (1, 10, 100, 1000):
                    self._warn(
                        f"{self.name}: reading the status of the run's jobs failed, retrying in {interval:.1f}s: {exc}"
                    )
            if self._wake.wait(interval):
                interval = poll_min  # a submit, a cancel or a log that ended: look now
            self._wake.clear()

    def poll_once(self, active: Optional[list[RemoteJob]] = None) -> bool:
        """One round: the status of the jobs not concluded, then report those whose logs have drained.
        True when anything changed or a concluded job still waits for its log."""
        if active is None:
            active = self.live_jobs()
        changed = False
        for job in active:
            if job.outcome is not None and not job.done:
                self.settle(job)
                changed = True  # keep the fast pace until every concluded job is reported
        pending = [j for j in active if j.outcome is None]
        if pending and self.poll(pending):
            changed = True
        return changed or any(j.outcome is not None and not j.done for j in pending)

    # ------------------------------------------------------------------ reporting
    def conclude(self, job: RemoteJob, result: TaskExit) -> None:
        """Record how the job ended (the first outcome wins) and report it if its log has drained."""
        with self._lock:
            if job.outcome is not None or job.done:
                return
            job.outcome = result
            job.outcome_at = time.time()
        self.settle(job)

    def settle(self, job: RemoteJob, force: bool = False) -> bool:
        """Call on_exit, exactly once, when the log has drained (or ``log_drain`` has passed, or ``force``).
        True when this call reported the job."""
        with self._lock:
            if job.done or job.outcome is None:
                return False
        drained = not force and self.drain_logs(job)
        if not (drained or force or time.time() >= job.outcome_at + self.log_drain):
            return False
        with self._lock:
            if job.done:
                return False
            job.done = True
            if self._jobs.get(self.job_key(job)) is job:
                del self._jobs[self.job_key(job)]  # reported: the run's memory stays flat in its number of tasks
        if not drained:
            self.stop_logs(job)
        try:
            self.ingest_outputs(job)
            job.on_exit(job.outcome)
        finally:
            try:
                self.after_report(job)
            finally:
                self.forget(job)
        return True

    def ingest_outputs(self, job: RemoteJob) -> None:
        """Take the job's outbox into the datastore (checked, :mod:`workbench.datastore.outbox_s3`), before
        the runtime reads its attempt record; refusals go to the task's log and one warning."""
        if self._ctx is None or self._task_env.get("WORKBENCH_OUTBOX") is None:
            return
        from ..datastore.outbox_s3 import ingest_s3, task_outbox_prefix

        spec = job.spec
        try:
            refused = ingest_s3(
                self._ctx.datastore, task_outbox_prefix(spec.ref), spec.run_id, spec.step, spec.task_id, spec.attempt
            )
        except WorkbenchError as exc:
            refused = [f"(the outbox): {exc}"]
        for line in refused[:20]:
            job.on_log("stderr", f"workbench: refused from the task's outputs: {line}", time.time())
        if refused:
            self._warn(
                f"{self.name}: task {spec.step}/{spec.task_id} wrote {len(refused)} thing(s) outside its outputs "
                f"or failed their hash check; they were refused (see its log)"
            )

    def forget(self, job: RemoteJob) -> None:
        """Drop what a reported job no longer needs (its array keeps it until every sibling is reported)."""

    def _warn(self, message: str) -> None:
        if self._ctx is not None:
            self._ctx.warn(message)


__all__ = [
    "QUEUED",
    "SENT",
    "SUBMITTING",
    "JobArray",
    "RemoteBackend",
    "RemoteHandle",
    "RemoteJob",
    "Submitter",
    "Throttled",
]
