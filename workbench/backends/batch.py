"""Tasks as AWS Batch jobs.

- Each task is one Batch job whose container runs the code-package bootstrap (workbench.package), which
  downloads the run's package from S3 and execs the task entrypoint. The job definition is built from the
  step's settings by :func:`job_definition` (a pure function), named by a hash of its content, registered
  once and reused: run-specific values (package, datastore, task) are Batch parameters (``Ref::...``).
- The run's lifecycle (package upload, submitter, poller with back-off, report after the logs drain, cancel,
  end_run) is the shared one of :mod:`workbench.backends.remote`; what is Batch's is here: the poller's
  round is ``describe_jobs`` for up to 100 jobs per call; ``SubmitJob`` goes at most 50 a second and backs
  off when throttled. A job RUNNABLE for longer than ``[batch] runnable_warning`` gets a warning that says
  what was requested.
- Logs come from CloudWatch Logs (``/aws/batch/job``, the job's ``logStreamName``), followed with the
  forward token while the job runs (a few running jobs per status round: LIVE_LOG_JOBS_PER_ROUND) and read
  once when it ends, ``WORKBENCH_BATCH_LOG_SETTLE`` seconds later (more pages only when one comes back full).
- A foreach's tasks arriving together go out as array jobs (``arrayProperties.size`` 2 to 10,000; several
  arrays beyond): child ``i`` (job ``<parent>:<i>``) runs task ``i`` of a manifest written first
  (:mod:`workbench.arrays`), through a second job definition whose command ends ``--array Ref::array``. Each
  child is polled (describe_jobs, 100 ids a call), logged and reported as its own task; a failed exit code is
  read from list_jobs by arrayJobId, once for every child that ended alike in a round.
- A @parallel gang is one multi-node parallel job (batch_gang): node ``i`` is job ``<id>#<i>`` and its own task;
  moto reports the job only as a whole, so its one status and one log stream (split per node) stand for each.
- ``cancel`` terminates the job (a child alone: ``<parent>:<i>``; any node of a gang: the whole gang); a cancelled run terminates each array's
  parent, one call per array (see ARRAY_STOP_FALLBACK for moto); ``end_run`` terminates every job of the run
  that has not ended.
- ``check`` refuses, before the run, a request no compute environment of the queue can fit, where the API
  says (managed compute environments: maxvCpus and their instance types).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..datastore.records import TaskStatus
from ..errors import BackendError, ConfigError, WorkbenchError
from ..exitcodes import TASK_TIMEOUT as EXIT_TIMEOUT
from ..redact import redact_env, secret_env
from ..units import format_memory
from .base import LogCallback, TaskExit, TaskHandle, TaskSpec
from .batch_capacity import BatchCapacity, _Fit
from .batch_gang import BatchGangs
from .batch_jobs import (  # noqa: F401 - re-exported: the job-definition builders were defined here
    MIN_ATTEMPT_SECONDS,
    TIMEOUT_GRACE,
    describe_request,
    job_definition,
    job_name,
    resource_requirements,
    runnable_warning,
    task_command_template,
)
from .batch_logs import (  # noqa: F401 - re-exported: tests and batch_gang read them here
    LIVE_LOG_JOBS_PER_ROUND,
    LOG_FOLLOW_INTERVAL,
    LOG_GROUP,
    LOG_PAGE_LIMIT,
    BatchLogs,
)
from .remote import JobArray, RemoteBackend, RemoteHandle, RemoteJob
from .remote_gang import gang_of
from .waiting import BATCH_WAITING, batch_reason, say_waiting

DESCRIBE_BATCH = 100  # describe_jobs takes at most 100 job ids
POLL_MAX = 10.0
# after a job ends, its last lines may take a moment to reach CloudWatch: follow the stream this much longer
# before reporting the end (WORKBENCH_BATCH_LOG_SETTLE, seconds)
TERMINAL = ("SUCCEEDED", "FAILED")
THROTTLING = ("ThrottlingException", "TooManyRequestsException", "Throttling", "RequestLimitExceeded")
ARRAY_MAX = 10_000  # arrayProperties.size: 2 to 10,000 children
# moto stops the parent of an array, not its children, when the parent is terminated (AWS stops them all):
# children still running this long after are terminated one by one
ARRAY_STOP_FALLBACK = 5.0


# ---------------------------------------------------------------------------------------- jobs
@dataclass(eq=False)
class _Job(RemoteJob):
    queue: str = ""
    job_id: str = ""
    status: str = "SUBMITTED"
    runnable_since: Optional[float] = None
    warned: bool = False
    log_stream: Optional[str] = None
    log_token: Optional[str] = None
    log_fetched: float = 0.0
    ended: Optional[dict] = None  # the describe_jobs answer that said the job ended
    settle_until: float = 0.0
    stopped_alone: bool = False  # a child of a terminated array, terminated on its own (moto)


class _BatchHandle(RemoteHandle):
    job: _Job  # the backend builds these handles over its own jobs only

    @property
    def job_id(self) -> str:
        return self.job.job_id


class BatchBackend(BatchGangs, BatchCapacity, BatchLogs, RemoteBackend):
    name = "batch"
    poll_env = "WORKBENCH_BATCH_POLL"
    poll_max = POLL_MAX
    log_drain = 60.0  # the settle time (WORKBENCH_BATCH_LOG_SETTLE) decides; this is the backstop
    image_requirement = " with python3 and boto3"
    submit_rate = submit_rate_max = 50.0  # SubmitJob: 50 calls a second per account
    # a foreach's tasks arriving together go out as array jobs (one SubmitJob per step and attempt): the runtime
    # writes each task's spec to S3 before submitting it, so a wide burst can take seconds; it is one burst while
    # no gap reaches 0.5 s, for up to 10 s (measured: 200 tasks took 8 s to arrive on a loaded 2-core machine)
    array_max = ARRAY_MAX
    submit_batch = ARRAY_MAX
    coalesce_quiet, coalesce_linger = 0.5, 10.0

    def __init__(self, config):
        super().__init__(config)
        self._clients: dict[str, Any] = {}
        self._definitions: dict[str, str] = {}  # definition name -> ARN
        self._fits: dict[str, list[_Fit]] = {}
        self._exit_codes: dict[tuple, tuple[float, dict[str, Optional[int]]]] = {}  # list_jobs answers, briefly
        self.describe_calls = 0

    # ------------------------------------------------------------------ clients and settings
    def _client(self, service: str):
        with self._lock:
            c = self._clients.get(service)
            if c is None:
                from .. import aws

                b = self.config.model.batch
                region = b.region or self.config.model.datastore.region
                endpoint = b.endpoint_url if service in ("batch", "logs", "ec2") else None
                c = self._clients[service] = aws.client(service, region=region, endpoint_url=endpoint)
            return c

    def _call(self, what: str, fn: Callable, **kwargs):
        try:
            return fn(**kwargs)
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            if self.is_throttling(exc):
                raise  # the submitter and the poller back off on it
            from ..aws import translate

            err = translate(exc, f"batch: {what}")
            raise err if isinstance(err, WorkbenchError) else BackendError(f"batch: {what}: {exc}") from None

    def is_throttling(self, exc: BaseException) -> bool:
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")
        return code in THROTTLING

    def queue_for(self, settings) -> str:
        queue = settings.queue or self.config.model.batch.job_queue
        if not queue:
            raise ConfigError(
                'the batch backend needs a job queue: set [batch] job_queue = "..." in '
                "workbench.toml or @batch(queue=...)"
            )
        return queue

    def role_for(self, settings) -> Optional[str]:
        return settings.extra.get("iam_role") or self.config.model.batch.job_role

    # ------------------------------------------------------------------ submitting
    def definition_env(self, spec: TaskSpec) -> dict[str, str]:
        """The job definition's environment: siblings of an array (or nodes of a gang) share a step, so its env."""
        return {
            **redact_env(spec.settings.env),
            **self._task_env,  # the task sets its env from its spec; no secret here
            **self.environment_env(spec),
        }

    def _definition_arn(self, spec: TaskSpec, array: bool = False) -> str:
        s = spec.settings
        body = job_definition(
            s,
            image=self.image_for(s),
            command=task_command_template(spec, array),
            environment=self.definition_env(spec),
            job_role=self.role_for(s),
        )
        return self.register_definition(body)

    def register_definition(self, body: dict[str, Any]) -> str:
        """The ARN of a job definition with this content: registered once, found again by its name."""
        name = body["jobDefinitionName"]
        with self._lock:
            arn = self._definitions.get(name)
        if arn:
            return arn
        batch = self._client("batch")
        found = self._call(
            "describe job definitions", batch.describe_job_definitions, jobDefinitionName=name, status="ACTIVE"
        ).get("jobDefinitions", [])
        if found:
            arn = max(found, key=lambda d: d.get("revision", 0))["jobDefinitionArn"]
        else:
            arn = self._call("register job definition", batch.register_job_definition, **body)["jobDefinitionArn"]
        with self._lock:
            self._definitions[name] = arn
        return arn

    def new_job(self, spec: TaskSpec, on_log: LogCallback, on_exit: Callable[[TaskExit], None]) -> _Job:
        return _Job(spec, on_log, on_exit, self.queue_for(spec.settings))

    def prepare(self, job: RemoteJob) -> None:
        self.image_for(job.spec.settings)

    def handle_for(self, job: RemoteJob) -> TaskHandle:
        return _BatchHandle(self, job)

    def submit_job(self, job: RemoteJob) -> None:
        assert isinstance(job, _Job)
        spec = job.spec
        arn = self._definition_arn(spec)
        tags = {k: re.sub(r"[^\w.:/=+\-@ ]", "_", v)[:256] for k, v in spec.labels.items() if v}
        self.calls["submit_job"] += 1
        resp = self._call(
            "submit job",
            self._client("batch").submit_job,
            jobName=job_name(spec),
            jobQueue=job.queue,
            jobDefinition=arn,
            parameters={"package": self._package_url, "datastore": spec.datastore_url, "task": spec.ref},
            tags=tags,
            **_secret_overrides(spec),
        )
        job.job_id = resp["jobId"]

    def array_key(self, job: RemoteJob) -> Any:
        assert isinstance(job, _Job)
        return (*super().array_key(job), job.queue)

    def submit_array(self, jobs: list[RemoteJob]) -> None:
        """One SubmitJob with ``arrayProperties.size``: the manifest (index -> task) goes to the datastore first;
        child ``i`` is job ``<parent id>:<i>`` and runs ``jobs[i]``."""
        from ..arrays import manifest_name, write_manifest

        first = jobs[0]
        assert isinstance(first, _Job) and self._ctx is not None
        spec = first.spec
        arn = self._definition_arn(spec, array=True)
        name = manifest_name(spec.step, spec.attempt, spec.task_id)
        array_ref = write_manifest(self._ctx.datastore, spec.run_id, name, [j.spec.ref for j in jobs])
        tags = {
            k: re.sub(r"[^\w.:/=+\-@ ]", "_", v)[:256] for k, v in spec.labels.items() if v and k != "workbench.task"
        }
        self.calls["submit_job"] += 1
        resp = self._call(
            "submit array job",
            self._client("batch").submit_job,
            jobName=job_name(spec)[:100] + f"-x{len(jobs)}",
            jobQueue=first.queue,
            jobDefinition=arn,
            arrayProperties={"size": len(jobs)},
            parameters={"package": self._package_url, "datastore": spec.datastore_url, "array": array_ref},
            tags=tags,
            **_secret_overrides(spec),  # siblings share a step, so its env
        )
        parent = resp["jobId"]
        array = JobArray(list(jobs), manifest=array_ref, name=parent)
        for i, job in enumerate(jobs):
            assert isinstance(job, _Job)
            job.array, job.index, job.job_id = array, i, f"{parent}:{i}"

    def terminate(self, job: RemoteJob) -> None:
        assert isinstance(job, _Job)
        self._terminate_id(job.job_id, job.requested)
        self._wake.set()

    def terminate_array(self, array: JobArray) -> None:
        """Terminating the parent terminates every child (AWS); see ARRAY_STOP_FALLBACK for moto."""
        reason = next((j.requested for j in array.jobs if j.requested), None)
        self._terminate_id(array.name, reason)
        self._wake.set()

    def _terminate_id(self, job_id: str, reason: Optional[str]) -> None:
        self.calls["terminate_job"] += 1
        try:
            self._client("batch").terminate_job(jobId=job_id, reason=(reason or "cancelled")[:200])
        except Exception as exc:  # noqa: BLE001
            self._warn(f"batch: could not terminate job {job_id}: {exc}")

    def _stop_stragglers(self, jobs: list[_Job]) -> None:
        """Children of a terminated array still live ARRAY_STOP_FALLBACK seconds later (moto does not pass the
        parent's termination on): stop them one by one, once."""
        now = time.time()
        for job in jobs:
            array = job.array
            if (
                array is not None
                and array.terminated
                and now - array.terminated > ARRAY_STOP_FALLBACK
                and job.status not in TERMINAL
                and not job.stopped_alone
            ):
                job.stopped_alone = True
                self._terminate_id(job.job_id, job.requested)

    # ------------------------------------------------------------------ held / release (workbench cancel)
    def held_ref(self, spec: TaskSpec) -> dict[str, Any]:
        return {"queue": self.queue_for(spec.settings), "job_name": job_name(spec)}

    def release(self, flow: str, run_id: str, held: list[dict], warn) -> list[str]:
        """Terminate every unfinished job of the run, found by the names recorded before each submit in
        the queues they went to (list_jobs per queue and live status: a few calls however many tasks)."""
        by_queue: dict[str, set[str]] = {}
        for h in held:
            if h.get("queue") and h.get("job_name"):
                by_queue.setdefault(str(h["queue"]), set()).add(str(h["job_name"]))
        batch, removed = self._client("batch"), []
        for queue, names in sorted(by_queue.items()):
            # an array job (a gang) is named after its first task, cut to 100 characters, plus -x<size> (-g<size>)
            firsts = {n[:100] for n in names}
            for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"):
                try:
                    pages = batch.get_paginator("list_jobs").paginate(jobQueue=queue, jobStatus=status)
                    jobs = [j for page in pages for j in page.get("jobSummaryList", [])]
                except Exception as exc:  # noqa: BLE001
                    warn(f"batch: could not list {status} jobs of queue {queue}: {exc}")
                    continue
                for j in jobs:
                    name = str(j.get("jobName", ""))
                    if name in names or re.sub(r"-[xg]\d+$", "", name) in firsts:
                        try:
                            batch.terminate_job(jobId=j["jobId"], reason=f"workbench cancel {run_id}")
                            removed.append(f"Batch job {j['jobId']} ({j['jobName']}, {status.lower()})")
                        except Exception as exc:  # noqa: BLE001
                            warn(f"batch: could not terminate job {j['jobId']}: {exc}")
        return removed

    def usage(self, job: RemoteJob) -> dict[str, Any]:
        return {"batch_job_id": getattr(job, "job_id", "")}

    # ------------------------------------------------------------------ polling
    def poll(self, active: list[RemoteJob]) -> bool:
        """describe_jobs per 100 jobs; follow the logs of running ones; conclude the ended ones."""
        batch = self._client("batch")
        changed = False
        jobs = [j for j in active if isinstance(j, _Job) and j.job_id and j.ended is None]
        nodes = [j for j in jobs if gang_of(j) is not None]  # @parallel gangs: batch_gang
        if nodes:
            jobs = [j for j in jobs if gang_of(j) is None]
            changed = self.poll_gangs(nodes)
        for i in range(0, len(jobs), DESCRIBE_BATCH):
            chunk = jobs[i : i + DESCRIBE_BATCH]
            self.describe_calls += 1
            self.calls["describe_jobs"] += 1
            described = {d["jobId"]: d for d in batch.describe_jobs(jobs=[j.job_id for j in chunk])["jobs"]}
            for job in chunk:
                d = described.get(job.job_id)
                if d is not None and self._update(job, d):
                    changed = True
        self._stop_stragglers([j for j in jobs if j.requested and j.ended is None])
        now = time.time()
        due = [
            j
            for j in jobs
            if j.ended is None and j.status == "RUNNING" and j.log_stream and now - j.log_fetched >= LOG_FOLLOW_INTERVAL
        ]
        for job in sorted(due, key=lambda j: j.log_fetched)[:LIVE_LOG_JOBS_PER_ROUND]:
            self._follow_logs(job)
        return changed

    def _update(self, job: _Job, d: dict) -> bool:
        status = d.get("status", job.status)
        changed = status != job.status
        job.status = status
        now = time.time()
        say_waiting(
            self._ctx,
            job,
            "batch",
            batch_reason(status, d, job.spec.settings, job.queue) if status in BATCH_WAITING else "",
        )
        if status == "RUNNABLE":
            job.runnable_since = job.runnable_since or now
            limit = int(self.config.model.batch.runnable_warning)  # seconds (validated by parse_duration)
            if not job.warned and limit and now - job.runnable_since > limit and self._ctx is not None:
                job.warned = True
                self._ctx.warn(
                    runnable_warning(job.spec.step, job.job_id, now - job.runnable_since, job.spec.settings, job.queue)
                )
        stream = (d.get("container") or {}).get("logStreamName")
        if stream:
            job.log_stream = stream
        if status in TERMINAL:
            job.ended = d  # its log is read once, when the settle time has passed (drain_logs)
            settle = float(os.environ.get("WORKBENCH_BATCH_LOG_SETTLE", "2.0"))
            job.settle_until = now + (settle if job.log_stream and not job.requested else 0)
            result = self._exit_of(job, d)
            if isinstance(d.get("stoppedAt"), (int, float)):
                result.ended_at = d["stoppedAt"] / 1000  # epoch milliseconds
            self.conclude(job, result)
            return True
        return changed

    def forget(self, job: RemoteJob) -> None:
        if isinstance(job, _Job) and job.ended:
            job.ended = {}  # the describe_jobs answer (kilobytes); an array keeps its children until all are reported

    def _exit_code(self, job: _Job, d: dict) -> Optional[int]:
        code = (d.get("container") or {}).get("exitCode")
        if code is not None:
            return code
        # describe_jobs may omit it (moto does); the job summary of list_jobs carries it (an array's children:
        # listed by arrayJobId)
        where = {"arrayJobId": job.array.name} if job.array is not None else {"jobQueue": job.queue}
        key = (tuple(where.items()), d.get("status"))
        for old in [k for k, (at, _) in self._exit_codes.items() if time.time() - at > 10]:
            del self._exit_codes[old]  # memory flat in the number of arrays
        cached = self._exit_codes.get(key)
        if cached is None or cached[1].get(job.job_id) is None:
            codes: dict[str, Optional[int]] = {}
            try:
                self.calls["list_jobs"] += 1
                pages = self._client("batch").get_paginator("list_jobs").paginate(**where, jobStatus=d.get("status"))
                for page in pages:
                    for summary in page.get("jobSummaryList", []):
                        codes[summary.get("jobId")] = (summary.get("container") or {}).get("exitCode")
            except Exception:  # noqa: BLE001
                pass
            # one listing serves every child of the array that ended the same way in this round
            cached = self._exit_codes[key] = (time.time(), codes)
        return cached[1].get(job.job_id)

    def _requested_exit(self, job: RemoteJob, code: Optional[int] = None) -> TaskExit:
        reason = job.requested or "cancelled"
        kind = TaskStatus.TIMEOUT if job.requested_timeout else TaskStatus.CANCELLED
        return TaskExit(kind, code, reason, self.usage(job))

    def _exit_of(self, job: _Job, d: dict) -> TaskExit:
        status = d.get("status")
        container = d.get("container") or {}
        usage = {"batch_job_id": job.job_id}
        if status == "SUCCEEDED" and not job.requested:
            return TaskExit(TaskStatus.SUCCEEDED, 0, "", usage)
        code = self._exit_code(job, d)
        if job.requested:
            return self._requested_exit(job, code)
        words = [w for w in (d.get("statusReason"), container.get("reason")) if w]
        reason = f"exited with code {code}" if code is not None else "the job failed"
        if words:
            reason += f" ({'; '.join(dict.fromkeys(words))})"
        text = " ".join(words).lower()
        if "outofmemory" in text.replace(" ", "") or "memory" in text and "killed" in text:
            return TaskExit(
                TaskStatus.OOM,
                code,
                f"killed for memory (asked for {format_memory(job.spec.settings.memory)}): {reason}",
                usage,
            )
        if code == EXIT_TIMEOUT:
            return TaskExit(TaskStatus.TIMEOUT, code, "the step ran past its timeout", usage)
        if "timeout" in text or "attempt duration" in text:
            return TaskExit(TaskStatus.TIMEOUT, code, reason, usage)
        return TaskExit(TaskStatus.FAILED, code, reason, usage)


def _secret_overrides(spec: TaskSpec) -> dict:
    """The step's secret-looking env, for this submission only: ``<redacted>`` in the job definition (which
    outlives the run and is shared) and in the task's spec in the datastore."""
    secrets = secret_env(spec.settings.env or {})
    if not secrets:
        return {}
    return {"containerOverrides": {"environment": [{"name": k, "value": v} for k, v in sorted(secrets.items())]}}
