"""A task's private output area, so a container can add to a local datastore but never change it.

A container sees the datastore read-only and one writable directory of its own, the *outbox*
(``<store>/.outbox/<task>``, mounted read-write over the read-only store). Inside the container the
task writes through :class:`OutboxStorage` (reads: outbox, then the store; writes: the outbox only).
After the container has exited, the runtime calls :func:`ingest`, which lets into the store only:

- blobs ``<Flow>/data/<sha[:2]>/<sha>`` whose content hashes to their name, and only when the store
  does not have that sha yet (so an existing blob is never replaced);
- the task's own ``attempt-<n>.json`` for the attempt that ran, when it is a JSON object.

Everything else (other paths, symlinks, devices, a record for another task) is refused and named in a
warning. The outbox is then removed.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Union, cast

from .blob import CorruptBlob, check_blob
from .local import LocalStorage
from .storage import Buffer, MappableStorage, Storage

if TYPE_CHECKING:
    from . import FlowDatastore

OUTBOX_DIR = ".outbox"
ENV_OUTBOX = "WORKBENCH_OUTBOX"
MAX_RECORD_BYTES = 64 * 1024 * 1024


class OutboxStorage:
    """Reads from the outbox, then the store; every write goes to the outbox."""

    def __init__(self, base: Storage, outbox: str):
        self.base = base
        self.out = LocalStorage(outbox)
        self.url = base.url

    def put(self, key: str, chunks: Iterable[Buffer], *, overwrite: bool = True) -> None:
        self.out.put(key, chunks, overwrite=overwrite)

    def get(self, key: str) -> bytearray:
        return self.out.get(key) if self.out.exists(key) else self.base.get(key)

    def map(self, key: str) -> mmap.mmap:
        if self.out.exists(key):
            return self.out.map(key)
        return self._local_base().map(key)

    def size(self, key: str) -> int:
        return self.out.size(key) if self.out.exists(key) else self._local_base().size(key)

    def _local_base(self) -> MappableStorage:
        """The store under an outbox is the local one (mounted read-only into the container)."""
        return cast(MappableStorage, self.base)

    def exists(self, key: str) -> bool:
        return self.out.exists(key) or self.base.exists(key)

    def list(self, prefix: str) -> list[str]:
        return sorted(set(self.base.list(prefix)) | set(self.out.list(prefix)))

    def delete(self, key: str) -> None:
        self.out.delete(key)

    def append_text(self, key: str, text: str) -> None:
        self.out.append_text(key, text)

    def flush(self, key: Optional[str] = None) -> None:
        pass

    def local_path(self, key: str) -> Optional[str]:
        return self.base.local_path(key)


def new_outbox(store_dir: str, label: str) -> str:
    """Create a fresh, private outbox under the store (same filesystem: ingesting a blob is a rename)."""
    safe = "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in label)[:120]
    path = Path(store_dir, OUTBOX_DIR, f"{safe}-{uuid.uuid4().hex[:8]}")
    path.mkdir(parents=True, mode=0o700)
    return str(path)


def ingest(outbox: str, ds: FlowDatastore, run_id: str, step: str, task_id: str, attempt: int) -> list[str]:
    """Move what the task legitimately wrote from ``outbox`` into ``ds``; return one line per refusal.

    ``ds`` is the host's FlowDatastore. The outbox is removed afterwards, whatever it held.
    """
    refused: list[str] = []
    root = Path(outbox)
    record = f"{ds.flow}/runs/{run_id}/{step}/{task_id}/attempt-{attempt}.json"
    try:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                path = Path(dirpath, name)
                key = path.relative_to(root).as_posix()
                try:
                    why = _take(path, key, record, ds)
                except OSError as exc:
                    why = f"unreadable ({exc.strerror or exc})"
                if why:
                    refused.append(f"{key}: {why}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return refused


def _take(path: Path, key: str, record: str, ds: FlowDatastore) -> Optional[str]:
    """Ingest one file of the outbox; None when it was taken (or already there), else why not."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (symlinks and devices are refused)"
    if key.rsplit("/", 1)[-1].startswith("."):
        return None  # a writer's temporary file: nothing to take
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == ds.flow and parts[1] == "data" and parts[3][:2] == parts[2]:
        return _take_blob(path, parts[3], ds)
    if key == record.replace("/attempt-", "/profile-").replace(".json", ".html"):  # --profile's report
        if st.st_size <= MAX_RECORD_BYTES:
            ds.storage.put(key, [path.read_bytes()])
        return None
    if key == record:
        if st.st_size > MAX_RECORD_BYTES:
            return f"record of {st.st_size:,} bytes is too large"
        try:
            doc = json.loads(path.read_bytes())
        except ValueError as exc:
            return f"not JSON ({exc})"
        if not isinstance(doc, dict):
            return "not a JSON object"
        ds.storage.put(key, [path.read_bytes()])
        return None
    return "outside the task's outputs (only new blobs and its own attempt record are taken)"


def _take_blob(path: Path, sha: str, ds: FlowDatastore) -> Optional[str]:
    """Check a new blob against its name; add it when the store lacks it (never replace one)."""
    if ds.has_artifact(sha):
        return None  # same name, same content by construction: the stored one stays
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        size = os.fstat(fd).st_size
        data: Union[mmap.mmap, bytes] = mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size else b""
    finally:
        os.close(fd)
    try:
        check_blob(data, sha)
    except CorruptBlob as exc:
        return f"blob refused: {exc.detail}"
    finally:
        if isinstance(data, mmap.mmap):
            data.close()
    dest = ds.storage.local_path(ds.artifact_key(sha))
    if dest:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            os.link(path, dest)  # atomic, and fails (never replaces) when the blob appeared meanwhile
        except FileExistsError:
            pass
        except OSError:
            ds.storage.put(ds.artifact_key(sha), [path.read_bytes()], overwrite=False)
    else:
        ds.storage.put(ds.artifact_key(sha), [path.read_bytes()], overwrite=False)
    return None
