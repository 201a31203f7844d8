"""A task's private output area, so a task can add to a datastore but never change what it holds.

A task that runs outside the runtime's process (a container, a remote job) writes through
:class:`OutboxStorage`: reads come from its outbox, then the store; every write goes to the outbox.
After the task has ended, the runtime *ingests* the outbox, letting into the store only:

- blobs ``<Flow>/data/<sha[:2]>/<sha>`` whose content hashes to their name, and only when the store
  does not have that sha yet (so an existing blob is never replaced);
- the task's own ``attempt-<n>.json`` for the attempt that ran, when it is a JSON object, and its
  ``--profile`` report.

Everything else (other paths, symlinks, a record for another task) is refused and named in a warning.
The outbox is then removed. Two kinds, one rule (:func:`classify`):

- a local datastore: the outbox is a directory ``<store>/.outbox/<task>-<nonce>`` mounted read-write over
  the read-only store (:mod:`.outbox_local`);
- an S3 datastore: the outbox is the prefix ``<store>/.outbox/<run>/<step>/<task>/<attempt>-<nonce>/``, the
  only place the task's scoped credentials may write (:mod:`.outbox_s3`, :func:`workbench.aws.task_policy`).
"""

from __future__ import annotations

import mmap
from typing import Iterable, Optional, Union

from .local import LocalStorage
from .storage import Buffer, MappableStorage, Storage

OUTBOX_DIR = ".outbox"
ENV_OUTBOX = "WORKBENCH_OUTBOX"
MAX_RECORD_BYTES = 64 * 1024 * 1024
REFUSED_OUTSIDE = "outside the task's outputs (only new blobs and its own attempt record are taken)"


class OutboxStorage:
    """Reads from the outbox, then the store; every write goes to the outbox.

    ``outbox`` is a directory or an ``s3://`` URL. The task process is the only writer of its outbox, so
    keys it wrote are remembered: a read of any other key goes straight to the store (no extra request).
    """

    def __init__(self, base: Storage, outbox: Union[str, Storage]):
        self.base = base
        if isinstance(outbox, str):
            outbox = open_outbox_storage(outbox)
        self.out: Storage = outbox
        self.url = base.url
        self._written: set[str] = set()

    def _mine(self, key: str) -> bool:
        return key in self._written or (isinstance(self.out, LocalStorage) and self.out.exists(key))

    def put(self, key: str, chunks: Iterable[Buffer], *, overwrite: bool = True) -> None:
        self.out.put(key, chunks, overwrite=overwrite)
        self._written.add(key)

    def get(self, key: str) -> bytearray:
        return self.out.get(key) if self._mine(key) else self.base.get(key)

    def exists(self, key: str) -> bool:
        return self._mine(key) or self.base.exists(key)

    def list(self, prefix: str) -> list[str]:
        mine = {k[len(prefix) :].strip("/").split("/", 1)[0] for k in self._written if k.startswith(prefix)}
        if isinstance(self.out, LocalStorage):
            mine |= set(self.out.list(prefix))
        return sorted(set(self.base.list(prefix)) | {n for n in mine if n})

    def delete(self, key: str) -> None:
        self.out.delete(key)
        self._written.discard(key)

    def append_text(self, key: str, text: str) -> None:
        self.out.append_text(key, text)
        self._written.add(key)

    def flush(self, key: Optional[str] = None) -> None:
        self.out.flush(key)

    def local_path(self, key: str) -> Optional[str]:
        return self.base.local_path(key)


class MappableOutboxStorage(OutboxStorage):
    """An outbox over a local store (the outbox is a local directory too): large blobs are memory-mapped."""

    def map(self, key: str) -> mmap.mmap:
        return self._mappable(key).map(key)

    def size(self, key: str) -> int:
        return self._mappable(key).size(key)

    def _mappable(self, key: str) -> MappableStorage:
        store = self.out if self._mine(key) else self.base
        if not isinstance(store, MappableStorage):
            raise TypeError(f"{store.url} cannot be memory-mapped")
        return store


def outbox_storage(base: Storage, outbox: str) -> OutboxStorage:
    """The storage a task writes through: ``base`` for reads, ``outbox`` (a directory or an ``s3://``
    prefix) for every write; memory-mappable when both are local."""
    if isinstance(base, MappableStorage) and not outbox.startswith("s3://"):
        return MappableOutboxStorage(base, outbox)
    return OutboxStorage(base, outbox)


def open_outbox_storage(where: str) -> Storage:
    """The storage of an outbox: a directory, or an ``s3://`` prefix (read and written with the task's
    own credentials)."""
    if where.startswith("s3://"):
        from .s3 import S3Storage

        return S3Storage(where)
    return LocalStorage(where)


def classify(key: str, flow: str, record_key: str) -> tuple[str, str]:
    """What an outbox key may become in the store: ("blob", sha), ("record", ""), ("profile", ""),
    ("skip", "") for a writer's temporary file, or ("refuse", why)."""
    if key.rsplit("/", 1)[-1].startswith("."):
        return "skip", ""
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == flow and parts[1] == "data" and parts[3][:2] == parts[2]:
        sha = parts[3]
        if len(sha) < 3 or not all(c in "0123456789abcdeft" for c in sha):
            return "refuse", f"{sha[:40]!r} is not a blob name"
        return "blob", sha
    if key == record_key:
        return "record", ""
    if key == record_key.replace("/attempt-", "/profile-").replace(".json", ".html"):  # --profile's report
        return "profile", ""
    return "refuse", REFUSED_OUTSIDE


def check_record(data: Buffer, record_key: str = "") -> Optional[str]:
    """Why an attempt record from an outbox is refused, or None when it may be taken. ``record_key``
    (``FLOW/runs/RUN/STEP/TASK/attempt-N.json``): the record must not claim another task or attempt."""
    import json

    if len(data) > MAX_RECORD_BYTES:
        return f"record of {len(data):,} bytes is too large"
    try:
        doc = json.loads(bytes(data))
    except ValueError as exc:
        return f"not JSON ({exc})"
    if not isinstance(doc, dict):
        return "not a JSON object"
    if record_key:
        flow, _, run_id, step, task_id, name = record_key.split("/")
        pathspec, attempt = f"{flow}/{run_id}/{step}/{task_id}", name[len("attempt-") : -len(".json")]
        if doc.get("pathspec") not in (None, pathspec) or str(doc.get("attempt", attempt)) != attempt:
            claim = f"{doc.get('pathspec', pathspec)} attempt {doc.get('attempt', attempt)}"
            return f"record claims to be {claim}, not {pathspec} attempt {attempt}"
    return None
