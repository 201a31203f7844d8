"""Artifacts, task metadata and logs of every run, on top of a :class:`Storage`.

Layout under the storage root::

    <Flow>/data/<sha[:2]>/<sha>                       artifact blobs, content-addressed (sha256)
    <Flow>/runs/<run_id>/run.json                     RunRecord: status, parameters, timings
    <Flow>/runs/<run_id>/<step>/<task_id>/spec-<n>.json      TaskSpecRecord: what attempt n runs with
    <Flow>/runs/<run_id>/<step>/<task_id>/attempt-<n>.json   AttemptRecord: what the task itself reported
    <Flow>/runs/<run_id>/<step>/<task_id>/task.json   TaskRecord: the task as the runtime saw it (written last)
    <Flow>/runs/<run_id>/<step>/<task_id>/<n>.log     timestamped stdout/stderr lines of attempt n
    <Flow>/runs/<run_id>/<step>/summary.json          StepSummaryRecord: the step's tasks at a glance

The JSON documents are typed records (:mod:`workbench.datastore.records`), each with one writer and one
reader here; their fields are the JSON keys:

- ``run.json`` (written by the runtime at the start and the end of a run): flow, run_id, status
  (running|succeeded|failed|cancelled), started_at, finished_at (epoch seconds), params (shortened
  values, for display), origin_run_id (resume/single step), flow_file, only_step, user, backends,
  failed (pathspecs), message.
- ``spec-<n>.json`` (runtime, before submitting attempt n): flow, run_id, step, task_id, attempt, kind,
  next, foreach_var, flow_file, class_name, origin_run_id, settings, foreach_stack (frames {step, var,
  index, num_splits}), params (name -> sha), unresolved_params, inputs ({pathspec, step,
  foreach_stack, artifacts: name -> sha} per parent).
- ``attempt-<n>.json`` (the task process): status, attempt, pathspec, started_at, finished_at, reason,
  traceback, error {type, message}, caught (the reason @catch caught), artifacts (name -> {sha, size,
  type, ...}), foreach_artifact, foreach_num_splits.
- ``task.json`` (runtime, when the task ends or is cloned): flow, run_id, step, task_id, pathspec, status
  (succeeded|failed|timeout|oom|cancelled|error), attempt (the last), attempts ({attempt, status,
  started_at, finished_at, exit_code, reason, backend, usage} each), artifacts, foreach_stack,
  foreach_num_splits, foreach_artifact, parents, settings, started_at, finished_at, reason, traceback,
  usage, cloned_from.

Readers are tolerant: a missing field takes its default and an unknown one is kept, so run directories
written before the records existed read unchanged.

An artifact blob is a header, a pickle (protocol 5) and its out-of-band buffers at 64-byte offsets, so
large arrays are written and read without extra copies and come back aligned; every read checks the
content against the blob's name (see :mod:`workbench.datastore.blob`).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator, Optional, cast

from ..errors import DatastoreError
from .blob import (  # noqa: F401
    MAP_THRESHOLD,
    TREE_CHUNK,
    TREE_MIN,
    ArtifactError,
    CorruptArtifact,
    CorruptBlob,
    aligned_bytearray_view,
    check_blob,
    content_hash,
    decode_artifact,
    encode_artifact,
)
from .records import AttemptRecord, RunRecord, StepSummaryRecord, TaskRecord, TaskSpecRecord
from .storage import Buffer, MappableStorage, Storage, open_storage

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer  # bytes, bytearray, memoryview, mmap (typing only)

_content_hash = content_hash  # the name older callers used


def iso(ts: Optional[float]) -> Optional[str]:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FlowDatastore:
    """Everything stored for one flow."""

    def __init__(self, storage: Storage | str, flow: str):
        self.storage = open_storage(storage) if isinstance(storage, str) else storage
        self.flow = flow

    @property
    def url(self) -> str:
        return self.storage.url

    # ------------------------------------------------------------------ artifacts
    def _blob_key(self, sha: str) -> str:
        return f"{self.flow}/data/{sha[:2]}/{sha}"

    def save_artifact(self, value: Any) -> tuple[str, int]:
        sha, chunks, size = encode_artifact(value)
        key = self._blob_key(sha)
        if not self.storage.exists(key):
            self.storage.put(key, chunks, overwrite=False)
        return sha, size

    def load_artifact(self, sha: str, *, name: Optional[str] = None, owner: Optional[str] = None) -> Any:
        """The artifact stored under ``sha``, its content checked against the sha (once per process).

        A blob that is damaged raises :class:`CorruptArtifact` naming ``name`` of ``owner``
        (RUN/STEP/TASK) when given, else :class:`CorruptBlob`.
        """
        key = self._blob_key(sha)
        blob: ReadableBuffer
        try:
            if isinstance(self.storage, MappableStorage) and self.storage.size(key) >= MAP_THRESHOLD:
                blob = self.storage.map(key)
            else:
                blob = aligned_bytearray_view(self.storage.get(key))
        except KeyError:
            raise DatastoreError(f"artifact {sha[:12]} of flow {self.flow} is missing from {self.url}") from None
        try:
            return decode_artifact(blob, sha, self.url)
        except CorruptBlob as exc:
            if name or owner:
                raise CorruptArtifact(name or sha[:12], owner or self.flow, exc.detail) from None
            raise

    def import_blob(self, sha: str, blob: Buffer) -> bool:
        """Store a blob that another party (a container, a remote task) wrote, after checking that its
        content hashes to ``sha``; never replaces a blob already stored. True when it was added."""
        if len(sha) < 3 or not all(c in "0123456789abcdeft" for c in sha):
            raise CorruptBlob(f"{sha[:40]!r} is not a blob name")
        check_blob(blob, sha)
        key = self._blob_key(sha)
        if self.storage.exists(key):
            return False
        self.storage.put(key, [blob], overwrite=False)
        return True

    def has_artifact(self, sha: str) -> bool:
        return self.storage.exists(self._blob_key(sha))

    def artifact_key(self, sha: str) -> str:
        return self._blob_key(sha)

    # ------------------------------------------------------------------ json documents
    def _put_json(self, key: str, data: dict[str, Any]) -> None:
        self.storage.put(key, [json.dumps(data, default=str, separators=(",", ":")).encode()])

    def _get_json(self, key: str) -> Optional[dict[str, Any]]:
        try:
            # the documents are JSON objects, written by _put_json from a record's to_dict()
            return cast(dict[str, Any], json.loads(bytes(self.storage.get(key))))
        except KeyError:
            return None

    def _run_key(self, run_id: str) -> str:
        return f"{self.flow}/runs/{run_id}"

    def task_key(self, run_id: str, step: str, task_id: str) -> str:
        return f"{self.flow}/runs/{run_id}/{step}/{task_id}"

    # ------------------------------------------------------------------ runs
    def write_run(self, record: RunRecord) -> None:
        self._put_json(f"{self._run_key(record.run_id)}/run.json", record.to_dict())

    def read_run(self, run_id: str, *, observed: bool = True) -> Optional[RunRecord]:
        """The run's record; ``observed`` (the default): a running run whose runtime is gone reads as
        crashed (:mod:`workbench.liveness`), so every reader (CLI, client, TUI) says the same."""
        data = self._get_json(f"{self._run_key(run_id)}/run.json")
        if data is None:
            return None
        record = RunRecord.from_dict(data)
        if observed:
            from ..liveness import observed_status

            record = observed_status(record)
        return record

    def list_runs(self) -> list[str]:
        """Run ids, oldest first; stray entries (a file, a directory without run.json) are skipped."""
        names = self.storage.list(f"{self.flow}/runs")
        return sorted((n for n in names if self._is_entry(n, f"{self._run_key(n)}/run.json")), key=_run_sort_key)

    def list_steps(self, run_id: str) -> list[str]:
        """Step names (identifiers, as in the flow file); other entries in the run's directory are skipped."""
        return [n for n in self.storage.list(self._run_key(run_id)) if n.isidentifier()]

    def list_tasks(self, run_id: str, step: str) -> list[str]:
        names = self.storage.list(f"{self._run_key(run_id)}/{step}")
        return sorted((n for n in names if n.isdigit()), key=_run_sort_key)

    def _is_entry(self, name: str, record_key: str) -> bool:
        """Ids workbench writes are digits; another name counts only if its record is there."""
        return name.isdigit() or (not name.endswith((".json", ".log")) and self.storage.exists(record_key))

    # ------------------------------------------------------------------ tasks
    def write_spec(self, record: TaskSpecRecord) -> None:
        key = self.task_key(record.run_id, record.step, record.task_id)
        self._put_json(f"{key}/spec-{record.attempt}.json", record.to_dict())

    def read_spec(self, run_id: str, step: str, task_id: str, attempt: int) -> Optional[TaskSpecRecord]:
        data = self._get_json(f"{self.task_key(run_id, step, task_id)}/spec-{attempt}.json")
        return None if data is None else TaskSpecRecord.from_dict(data)

    def write_attempt(self, run_id: str, step: str, task_id: str, record: AttemptRecord) -> None:
        self._put_json(f"{self.task_key(run_id, step, task_id)}/attempt-{record.attempt}.json", record.to_dict())

    def read_attempt(self, run_id: str, step: str, task_id: str, attempt: int) -> Optional[AttemptRecord]:
        data = self._get_json(f"{self.task_key(run_id, step, task_id)}/attempt-{attempt}.json")
        return None if data is None else AttemptRecord.from_dict(data)

    def write_task(self, record: TaskRecord) -> None:
        self._put_json(f"{self.task_key(record.run_id, record.step, record.task_id)}/task.json", record.to_dict())

    def read_task(self, run_id: str, step: str, task_id: str) -> Optional[TaskRecord]:
        data = self._get_json(f"{self.task_key(run_id, step, task_id)}/task.json")
        return None if data is None else TaskRecord.from_dict(data)

    def write_step_summary(self, record: StepSummaryRecord) -> None:
        self._put_json(f"{self._run_key(record.run_id)}/{record.step}/summary.json", record.to_dict())

    def read_step_summary(self, run_id: str, step: str) -> Optional[StepSummaryRecord]:
        data = self._get_json(f"{self._run_key(run_id)}/{step}/summary.json")
        return None if data is None else StepSummaryRecord.from_dict(data)

    # ------------------------------------------------------------------ logs
    def log_key(self, run_id: str, step: str, task_id: str, attempt: int) -> str:
        return f"{self.task_key(run_id, step, task_id)}/{attempt}.log"

    def append_log(self, key: str, lines: list[tuple[float, str, str]]) -> None:
        self.storage.append_text(key, "".join(f"{iso(ts)} {stream} {text}\n" for ts, stream, text in lines))

    def read_log(
        self, run_id: str, step: str, task_id: str, attempt: Optional[int] = None
    ) -> Iterator[tuple[str, str, str]]:
        """(timestamp, stream, text) of each line of the given (default: last) attempt."""
        if attempt is None:
            task = self.read_task(run_id, step, task_id)
            attempt = task.attempt if task is not None else 0
        from ..logs import iter_log  # streamed in chunks: memory bounded whatever the log's size

        yield from iter_log(self, self.log_key(run_id, step, task_id, attempt))


def list_flows(storage: Storage) -> list[str]:
    """Flows with runs at the storage root; a stray entry (a README, a backup directory) is skipped."""
    return [n for n in storage.list("") if n.isidentifier() and storage.list(f"{n}/runs")]


def _run_sort_key(name: str) -> tuple[int, int, str]:
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def new_run_id() -> str:
    """Sortable, unique run ids: microseconds since the epoch (as Metaflow's local runs)."""
    return str(time.time_ns() // 1000)
