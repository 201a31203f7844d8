"""The artifact blob format: encode, decode, and check a blob against its content hash.

A blob is a header, a pickle (protocol 5) and the pickle's out-of-band buffers::

    WBA2 | flags u8 | nbuf u32 | main length u64 | nbuf x buffer length u64 | pad | main | pad | buf | pad | buf ...

In ``WBA2`` the main pickle and every buffer start at a multiple of 64 bytes from the blob's start, so an
array read back from a memory map (page-aligned) or from an aligned read buffer is ALIGNED for numpy and
for SIMD loads, and is summed by the same code path as in the producing step. ``WBA1`` blobs (no padding)
stay readable. Small pickles without buffers are zlib-compressed when that saves at least a tenth.

The name of a blob is the hash of its *content* (main pickle uncompressed + buffers, no header or
padding), so every reader can check that the bytes it got are the bytes that were saved: a flipped
byte, a truncated or an empty blob is a :class:`CorruptBlob`, never a raw ``struct.error`` or
``UnpicklingError``. Checks are remembered per process (:func:`verify_once`), so a blob read again is
not hashed again.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import pickle
import struct
import threading
import zlib
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

from ..errors import DatastoreError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer  # bytes, bytearray, memoryview, mmap (typing only)

# a piece of an encoded blob as written: the header and main pickle (bytes) or an out-of-band buffer (a view)
Chunk = Union[bytes, memoryview]

MAGIC_V1 = b"WBA1"
MAGIC = b"WBA2"
FLAG_ZLIB = 1
ALIGN = 64
_HEAD = struct.Struct("<4sBIQ")  # magic, flags, number of buffers, length of the main pickle
_COMPRESS_MIN = 4096
MAP_THRESHOLD = 8 * 1024 * 1024  # larger local blobs are memory-mapped instead of read
TREE_MIN = 32 * 1024 * 1024
TREE_CHUNK = 8 * 1024 * 1024
_MAX_BUFFERS = 1 << 20


class ArtifactError(Exception):
    """An artifact could not be saved (e.g. it cannot be pickled)."""


class CorruptBlob(DatastoreError):
    """A blob's bytes do not decode, or do not hash to its name. ``detail`` says how, in a few words."""

    def __init__(self, detail: str, sha: str = ""):
        super().__init__(f"corrupt artifact blob {sha[:12]}: {detail}" if sha else f"corrupt artifact blob: {detail}")
        self.detail = detail
        self.sha = sha


class CorruptArtifact(DatastoreError):
    """A corrupt blob, named by the artifact and task that own it (the one line users see)."""

    def __init__(self, name: str, owner: str, detail: str):
        super().__init__(f"corrupt artifact {name} of {owner}: {detail}")
        self.name, self.owner, self.detail = name, owner, detail


def _pad(offset: int) -> int:
    return -offset % ALIGN


def encode_artifact(value: Any) -> tuple[str, list[Chunk], int]:
    """Pickle ``value``; return (sha256 of its content, chunks to write, content size)."""
    buffers: list[pickle.PickleBuffer] = []
    main = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    size = len(main) + sum(r.nbytes for r in raws)
    digest = content_hash([memoryview(main), *raws], size)
    flags = 0
    if not raws and len(main) >= _COMPRESS_MIN:
        sample = main[:65536]
        if len(zlib.compress(sample, 1)) < 0.8 * len(sample):
            packed = zlib.compress(main, 1)
            if len(packed) <= 0.9 * len(main):
                main, flags = packed, FLAG_ZLIB
    head = _HEAD.pack(MAGIC, flags, len(raws), len(main)) + struct.pack(f"<{len(raws)}Q", *(r.nbytes for r in raws))
    chunks: list[Chunk] = [head, b"\0" * _pad(len(head)), main]
    offset = len(head) + _pad(len(head)) + len(main)
    for raw in raws:
        chunks.append(b"\0" * _pad(offset))
        offset += _pad(offset)
        chunks.append(raw)
        offset += raw.nbytes
    return digest, [c for c in chunks if len(c)], size


def content_hash(segments: Sequence[ReadableBuffer], size: int) -> str:
    """sha256 of the content; above TREE_MIN, sha256 over the sha256s of 8 MiB pieces, computed in
    parallel (hashlib releases the GIL), so a large array is hashed at several times one core's speed."""
    if size < TREE_MIN:
        h = hashlib.sha256()
        for seg in segments:
            h.update(seg)
        return h.hexdigest()
    views = [memoryview(s).cast("B") for s in segments]
    pieces = [seg[i : i + TREE_CHUNK] for seg in views for i in range(0, max(seg.nbytes, 1), TREE_CHUNK)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        leaves = list(pool.map(lambda piece: hashlib.sha256(piece).digest(), pieces))
    return "t" + hashlib.sha256(b"".join(leaves)).hexdigest()[1:]


def split_blob(blob: ReadableBuffer) -> tuple[memoryview, list[memoryview]]:
    """The (decompressed) main pickle and the buffers of a blob, as views; CorruptBlob if it does not parse."""
    view = memoryview(blob).cast("B") if not isinstance(blob, memoryview) else blob.cast("B")
    if view.nbytes < _HEAD.size:
        raise CorruptBlob(f"{view.nbytes} bytes, shorter than a header" if view.nbytes else "empty blob")
    magic, flags, nbuf, main_len = _HEAD.unpack_from(view, 0)
    if magic not in (MAGIC, MAGIC_V1):
        raise CorruptBlob("not an artifact blob (bad magic)")
    aligned = magic == MAGIC
    offset = _HEAD.size
    if nbuf > _MAX_BUFFERS or offset + 8 * nbuf > view.nbytes:
        raise CorruptBlob("truncated header")
    lengths = struct.unpack_from(f"<{nbuf}Q", view, offset)
    offset += 8 * nbuf
    if aligned:
        offset += _pad(offset)
    end = offset + main_len
    buffers = []
    for n in lengths:
        if aligned:
            end += _pad(end)
        buffers.append((end, n))
        end += n
    if end != view.nbytes:
        what = "truncated" if end > view.nbytes else "trailing bytes after the content"
        raise CorruptBlob(f"{what} ({view.nbytes:,} bytes, the header says {end:,})")
    main = view[offset : offset + main_len]
    if flags & FLAG_ZLIB:
        try:
            main = memoryview(zlib.decompress(main))
        except zlib.error as exc:
            raise CorruptBlob(f"compressed pickle does not inflate ({exc})") from None
    return main, [view[start : start + n] for start, n in buffers]


_verified: set[tuple[str, str]] = set()
_verified_lock = threading.Lock()


def verify_once(where: str, sha: str, main: memoryview, buffers: list[memoryview]) -> None:
    """Check that the content hashes to ``sha``, once per process for each (store, sha)."""
    key = (where, sha)
    if key in _verified:
        return
    size = main.nbytes + sum(b.nbytes for b in buffers)
    got = content_hash([main, *buffers], size)
    if got != sha:
        raise CorruptBlob(f"content hash {got[:12]} does not match its name {sha[:12]}", sha)
    with _verified_lock:
        _verified.add(key)


def forget_verified() -> None:
    """Forget which blobs were checked (tests)."""
    with _verified_lock:
        _verified.clear()


def decode_artifact(blob: ReadableBuffer, sha: Optional[str] = None, where: str = "") -> Any:
    """Unpickle a blob (a bytearray or a writable mmap); large buffers become views of it, not copies.

    With ``sha``, the content is first checked against it (once per process per ``where`` and sha).
    Anything wrong with the bytes raises :class:`CorruptBlob`.
    """
    main, buffers = split_blob(blob)
    if sha:
        verify_once(where, sha, main, buffers)
    try:
        return pickle.loads(main, buffers=buffers)
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        IndexError,
        struct.error,
        TypeError,
        UnicodeDecodeError,
        OverflowError,
    ) as exc:
        raise CorruptBlob(f"does not unpickle ({type(exc).__name__}: {str(exc)[:120]})", sha or "") from None


def check_blob(blob: ReadableBuffer, sha: str) -> None:
    """Raise CorruptBlob unless ``blob`` parses and its content hashes to ``sha`` (never unpickles)."""
    main, buffers = split_blob(blob)
    size = main.nbytes + sum(b.nbytes for b in buffers)
    got = content_hash([main, *buffers], size)
    if got != sha:
        raise CorruptBlob(f"content hash {got[:12]} does not match its name {sha[:12]}", sha)


def aligned_bytearray_view(data: ReadableBuffer) -> ReadableBuffer:
    """``data`` itself when its first byte sits on a 64-byte boundary, else an aligned copy of it.

    A bytearray comes from malloc (16-byte aligned at best); the offsets inside a WBA2 blob are 64-byte
    multiples, so the buffers are aligned exactly when the blob's start is.
    """
    if isinstance(data, (bytes, bytearray)) and len(data) and _address(data) % ALIGN:
        room = bytearray(len(data) + ALIGN)
        shift = _pad(_address(room))
        view = memoryview(room)[shift : shift + len(data)]
        view[:] = data
        return view
    return data


def _address(buf: bytes | bytearray) -> int:
    if isinstance(buf, bytes):
        return ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value or 0
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))
