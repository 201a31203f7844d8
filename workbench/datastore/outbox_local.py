"""The outbox of a task with a local datastore: a directory ``<store>/.outbox/<task>-<nonce>`` that is the
container's one writable mount over the read-only store (see :mod:`.outbox` for what ingest takes)."""

from __future__ import annotations

import mmap
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from .blob import CorruptBlob, check_blob
from .outbox import MAX_RECORD_BYTES, OUTBOX_DIR, check_record, classify

if TYPE_CHECKING:
    from . import FlowDatastore


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
    kind, detail = classify(key, ds.flow, record)
    if kind == "skip":
        return None
    if kind == "blob":
        return _take_blob(path, detail, ds)
    if kind in ("record", "profile"):
        if st.st_size > MAX_RECORD_BYTES:
            return f"record of {st.st_size:,} bytes is too large"
        data = path.read_bytes()
        why = check_record(data, key) if kind == "record" else None
        if why is None:
            ds.storage.put(key, [data])
        return why
    return detail


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
