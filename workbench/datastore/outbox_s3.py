"""The outbox of a task with an S3 datastore: the prefix ``<store>/.outbox/<run>/<step>/<task>/<attempt>-<nonce>/``.

The task writes there with credentials that allow no other write (:func:`workbench.aws.task_policy`,
where the caller can mint them); the runtime, with its own credentials, ingests after the task has
ended (see :mod:`.outbox` for what is taken). A blob is never copied from the outbox unchecked:

- under ``MULTIPART_THRESHOLD`` it is read once, checked against its name, and those very bytes are
  written (``If-None-Match``: an existing blob is never replaced);
- larger, it is first copied server-side to ``.ingest/<nonce>`` (a place the task cannot write), read
  back and checked there, then copied server-side to its name; so whatever the task does to its outbox
  meanwhile, what enters the store is what was checked.

The outbox prefix is deleted afterwards, whatever it held.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Optional

from ..errors import WorkbenchError
from .blob import CorruptBlob, check_blob
from .outbox import MAX_RECORD_BYTES, OUTBOX_DIR, check_record, classify
from .s3 import MULTIPART_THRESHOLD, S3Storage

if TYPE_CHECKING:
    from . import FlowDatastore

INGEST_DIR = ".ingest"
INGEST_THREADS = 8


def new_outbox_prefix(run_id: str, step: str, task_id: str, attempt: int) -> str:
    """A fresh outbox prefix (relative to the store's root); the nonce makes it unguessable by other tasks."""
    return f"{OUTBOX_DIR}/{run_id}/{step}/{task_id}/{attempt}-{uuid.uuid4().hex[:16]}"


PER_TASK = "per-task"  # WORKBENCH_OUTBOX=per-task: the task derives its outbox from its own reference


def task_outbox_prefix(ref: str) -> str:
    """The outbox prefix of a remote task (Batch, Kubernetes) from its FLOW/RUN/STEP/TASK/ATTEMPT: its jobs
    share a definition (and an array shares one submission), so the task works it out for itself."""
    _flow, run_id, step, task_id, attempt = ref.split("/")
    return f"{OUTBOX_DIR}/{run_id}/{step}/{task_id}/{attempt}"


def outbox_url(storage: S3Storage, prefix: str) -> str:
    """The ``s3://`` URL of an outbox prefix of ``storage`` (what the task is told)."""
    return f"{storage.url}/{prefix}"


def ingest_s3(ds: FlowDatastore, prefix: str, run_id: str, step: str, task_id: str, attempt: int) -> list[str]:
    """Take what the task legitimately wrote under ``prefix`` into ``ds``; return one line per refusal.
    The outbox is deleted afterwards, whatever it held."""
    storage = ds.storage
    if not isinstance(storage, S3Storage):
        raise TypeError(f"{storage.url} is not an S3 datastore")
    record = f"{ds.flow}/runs/{run_id}/{step}/{task_id}/attempt-{attempt}.json"
    refused: list[str] = []
    try:
        entries = storage.walk(prefix)
        blobs: list[tuple[str, str, int]] = []
        for key, size in entries:
            kind, detail = classify(key, ds.flow, record)
            if kind == "blob":
                blobs.append((key, detail, size))
            elif kind in ("record", "profile"):
                why = _take_document(storage, f"{prefix}/{key}", key, size, record=kind == "record")
                if why:
                    refused.append(f"{key}: {why}")
            elif kind == "refuse":
                refused.append(f"{key}: {detail}")
        if blobs:
            with ThreadPoolExecutor(max_workers=min(INGEST_THREADS, len(blobs))) as pool:
                whys = list(pool.map(lambda b: _take_blob(ds, storage, f"{prefix}/{b[0]}", b[1], b[2]), blobs))
            refused += [f"{key}: {why}" for (key, _, _), why in zip(blobs, whys, strict=True) if why]
    finally:
        try:
            storage.delete(prefix)
        except WorkbenchError as exc:
            refused.append(f"(the outbox itself): could not be deleted ({exc})")
    return refused


def _take_document(storage: S3Storage, source: str, key: str, size: int, *, record: bool) -> Optional[str]:
    if size > MAX_RECORD_BYTES:
        return f"record of {size:,} bytes is too large"
    try:
        data = storage.get(source)
    except KeyError:
        return "vanished before it was read"
    why = check_record(data, key) if record else None
    if why is None:
        storage.put(key, [data])  # the bytes just checked, written with the runtime's credentials
    return why


def _take_blob(ds: FlowDatastore, storage: S3Storage, source: str, sha: str, size: int) -> Optional[str]:
    """Check a new blob against its name; add it when the store lacks it (never replace one)."""
    if ds.has_artifact(sha):
        return None  # same name, same content by construction: the stored one stays
    final = ds.artifact_key(sha)
    try:
        if size < MULTIPART_THRESHOLD:
            data = storage.get(source)
            check_blob(data, sha)
            storage.put(final, [data], overwrite=False)
            return None
        staged = f"{INGEST_DIR}/{uuid.uuid4().hex}"
        storage.copy(source, staged)
        try:
            check_blob(storage.get(staged), sha)
            if not ds.has_artifact(sha):
                storage.copy(staged, final)
        finally:
            storage.delete(staged)
    except KeyError:
        return "vanished before it was read"
    except CorruptBlob as exc:
        return f"blob refused: {exc.detail}"
    return None
