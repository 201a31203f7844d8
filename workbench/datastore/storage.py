"""The storage interface every datastore backend implements: keys are '/'-separated paths."""

from __future__ import annotations

import mmap
from typing import Iterable, Optional, Protocol, Union, runtime_checkable

Buffer = Union[bytes, bytearray, memoryview]


@runtime_checkable
class Storage(Protocol):
    """Blob storage. ``put`` is atomic: a reader sees the whole object or none of it."""

    url: str

    def put(self, key: str, chunks: Iterable[Buffer], *, overwrite: bool = True) -> None: ...

    def get(self, key: str) -> bytearray:
        """The object's bytes (a bytearray, so zero-copy views of it are writable). KeyError if absent."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """Names of the immediate children under ``prefix`` (objects and 'directories')."""

    def delete(self, key: str) -> None: ...

    def append_text(self, key: str, text: str) -> None:
        """Append to a log object (local: a real append; object stores buffer until ``flush``)."""

    def flush(self, key: Optional[str] = None) -> None: ...

    def local_path(self, key: str) -> Optional[str]:
        """A filesystem path for ``key`` when the storage is local (used to mount it into containers)."""


@runtime_checkable
class MappableStorage(Storage, Protocol):
    """A storage whose objects are files (the local one): large artifacts are memory-mapped, not read."""

    def map(self, key: str) -> mmap.mmap:
        """A private copy-on-write mapping of the object. KeyError if absent."""

    def size(self, key: str) -> int: ...


def open_storage(url: str) -> Storage:
    """``/abs/dir`` or ``file:///abs/dir`` -> LocalStorage; ``s3://bucket/prefix`` -> S3Storage."""
    if url.startswith("s3://"):
        from .s3 import S3Storage

        return S3Storage(url)
    from .local import LocalStorage

    return LocalStorage(url[len("file://") :] if url.startswith("file://") else url)
