"""Artifacts, task metadata and logs of every run, on top of a :class:`Storage`.

Layout under the storage root::

    <Flow>/data/<sha[:2]>/<sha>                       artifact blobs, content-addressed (sha256)
    <Flow>/runs/<run_id>/run.json                     RunRecord: status, parameters, timings
    <Flow>/runs/<run_id>/<step>/<task_id>/spec-<n>.json      TaskSpecRecord: what attempt n runs with
    <Flow>/runs/<run_id>/<step>/<task_id>/attempt-<n>.json   AttemptRecord: what the task itself reported
    <Flow>/runs/<run_id>/<step>/<task_id>/task.json   TaskRecord: the task as the runtime saw it (written last)
    <Flow>/runs/<run_id>/<step>/<task_id>/<n>.log     timestamped stdout/stderr lines of attempt n

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

An artifact blob is ``WBA1`` + flags + buffer lengths + a pickle (protocol 5) + its out-of-band
buffers, so large arrays are written and read without extra copies. Small pickles are compressed
when that saves at least a tenth.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
import time
import zlib
from datetime import datetime, timezone
from typing import Any, Iterator, Optional

from ..errors import DatastoreError
from .records import AttemptRecord, RunRecord, TaskRecord, TaskSpecRecord
from .storage import Storage, open_storage

MAGIC = b"WBA1"
FLAG_ZLIB = 1
_HEAD = struct.Struct("<4sBIQ")  # magic, flags, number of buffers, length of the main pickle
_COMPRESS_MIN = 4096
MAP_THRESHOLD = 8 * 1024 * 1024
TREE_MIN = 32 * 1024 * 1024
TREE_CHUNK = 8 * 1024 * 1024  # larger local blobs are memory-mapped instead of read


class ArtifactError(Exception):
    """An artifact could not be saved (e.g. it cannot be pickled)."""


def encode_artifact(value: Any) -> tuple[str, list, int]:
    """Pickle ``value``; return (sha256 of its content, chunks to write, content size)."""
    buffers: list[pickle.PickleBuffer] = []
    main = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    size = len(main) + sum(r.nbytes for r in raws)
    digest = _content_hash([memoryview(main), *raws], size)
    flags = 0
    if not raws and len(main) >= _COMPRESS_MIN:
        sample = main[:65536]
        if len(zlib.compress(sample, 1)) < 0.8 * len(sample):
            packed = zlib.compress(main, 1)
            if len(packed) <= 0.9 * len(main):
                main, flags = packed, FLAG_ZLIB
    head = _HEAD.pack(MAGIC, flags, len(raws), len(main)) + struct.pack(f"<{len(raws)}Q", *(r.nbytes for r in raws))
    return digest, [head, main, *raws], size


def _content_hash(segments: list, size: int) -> str:
    """sha256 of the content; above TREE_MIN, sha256 over the sha256s of 8 MiB pieces, computed in
    parallel (hashlib releases the GIL), so a large array is hashed at several times one core's speed."""
    if size < TREE_MIN:
        h = hashlib.sha256()
        for seg in segments:
            h.update(seg)
        return h.hexdigest()
    pieces = [seg[i:i + TREE_CHUNK] for seg in segments for i in range(0, max(seg.nbytes, 1), TREE_CHUNK)]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        leaves = list(pool.map(lambda piece: hashlib.sha256(piece).digest(), pieces))
    return "t" + hashlib.sha256(b"".join(leaves)).hexdigest()[1:]


def decode_artifact(blob) -> Any:
    """Unpickle a blob (a bytearray or a writable mmap); large buffers become views of it, not copies."""
    view = memoryview(blob)
    magic, flags, nbuf, main_len = _HEAD.unpack_from(view, 0)
    if magic != MAGIC:
        raise DatastoreError("artifact blob is corrupt (bad magic)")
    offset = _HEAD.size
    lengths = struct.unpack_from(f"<{nbuf}Q", view, offset)
    offset += 8 * nbuf
    main = view[offset:offset + main_len]
    offset += main_len
    buffers = []
    for n in lengths:
        buffers.append(view[offset:offset + n])
        offset += n
    if flags & FLAG_ZLIB:
        main = zlib.decompress(main)
    return pickle.loads(main, buffers=buffers)


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

    def load_artifact(self, sha: str) -> Any:
        key = self._blob_key(sha)
        try:
            if hasattr(self.storage, "map") and self.storage.size(key) >= MAP_THRESHOLD:
                return decode_artifact(self.storage.map(key))
            blob = self.storage.get(key)
        except KeyError:
            raise DatastoreError(f"artifact {sha[:12]} of flow {self.flow} is missing from {self.url}") from None
        return decode_artifact(blob)

    def has_artifact(self, sha: str) -> bool:
        return self.storage.exists(self._blob_key(sha))

    def artifact_key(self, sha: str) -> str:
        return self._blob_key(sha)

    # ------------------------------------------------------------------ json documents
    def _put_json(self, key: str, data: dict) -> None:
        self.storage.put(key, [json.dumps(data, default=str, separators=(",", ":")).encode()])

    def _get_json(self, key: str) -> Optional[dict]:
        try:
            return json.loads(bytes(self.storage.get(key)))
        except KeyError:
            return None

    def _run_key(self, run_id: str) -> str:
        return f"{self.flow}/runs/{run_id}"

    def task_key(self, run_id: str, step: str, task_id: str) -> str:
        return f"{self.flow}/runs/{run_id}/{step}/{task_id}"

    # ------------------------------------------------------------------ runs
    def write_run(self, record: RunRecord) -> None:
        self._put_json(f"{self._run_key(record.run_id)}/run.json", record.to_dict())

    def read_run(self, run_id: str) -> Optional[RunRecord]:
        data = self._get_json(f"{self._run_key(run_id)}/run.json")
        return None if data is None else RunRecord.from_dict(data)

    def list_runs(self) -> list[str]:
        """Run ids, oldest first."""
        return sorted(self.storage.list(f"{self.flow}/runs"), key=_run_sort_key)

    def list_steps(self, run_id: str) -> list[str]:
        return [n for n in self.storage.list(self._run_key(run_id)) if not n.endswith(".json")]

    def list_tasks(self, run_id: str, step: str) -> list[str]:
        return sorted(self.storage.list(f"{self._run_key(run_id)}/{step}"), key=_run_sort_key)

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

    # ------------------------------------------------------------------ logs
    def log_key(self, run_id: str, step: str, task_id: str, attempt: int) -> str:
        return f"{self.task_key(run_id, step, task_id)}/{attempt}.log"

    def append_log(self, key: str, lines: list[tuple[float, str, str]]) -> None:
        self.storage.append_text(key, "".join(f"{iso(ts)} {stream} {text}\n" for ts, stream, text in lines))

    def read_log(self, run_id: str, step: str, task_id: str, attempt: Optional[int] = None) -> Iterator[tuple[str, str, str]]:
        """(timestamp, stream, text) of each line of the given (default: last) attempt."""
        if attempt is None:
            task = self.read_task(run_id, step, task_id)
            attempt = task.attempt if task is not None else 0
        try:
            raw = bytes(self.storage.get(self.log_key(run_id, step, task_id, attempt))).decode("utf-8", "replace")
        except KeyError:
            return
        for line in raw.splitlines():
            ts, _, rest = line.partition(" ")
            stream, _, text = rest.partition(" ")
            yield ts, stream, text


def _run_sort_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def new_run_id() -> str:
    """Sortable, unique run ids: microseconds since the epoch (as Metaflow's local runs)."""
    return str(time.time_ns() // 1000)
