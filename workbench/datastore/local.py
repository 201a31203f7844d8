"""Storage in a local directory (the default: ``.workbench/`` at the project root).

Paths are plain strings joined with ``/`` (keys already use it): :mod:`pathlib` interns every part of every
path it parses, and CPython never frees interned strings, so each task id would cost ~200 B for the life of
the process (memory flat in the number of tasks, issue 16)."""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from .storage import Buffer


class LocalStorage:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> str:
        key = key.strip("/")
        return f"{self.url}/{key}" if key else self.url

    def put(self, key: str, chunks: Iterable[Buffer], *, overwrite: bool = True) -> None:
        path = self._path(key)
        if not overwrite and os.path.exists(path):
            return
        parent, name = os.path.split(path)
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            os.replace(tmp, path)  # atomic: a killed writer leaves only a .tmp file behind
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def get(self, key: str) -> bytearray:
        try:
            with open(self._path(key), "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                buf = bytearray(size)
                view = memoryview(buf)
                got = 0
                while got < size:
                    n = f.readinto(view[got:])
                    if not n:
                        break
                    got += n
                return buf if got == size else buf[:got]
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):  # a stray file is no parent
            raise KeyError(key) from None

    def map(self, key: str) -> mmap.mmap:
        """A private copy-on-write mapping of the object: no read up front, writable, pages shared with
        the page cache until written. Used for large artifacts."""
        try:
            with open(self._path(key), "rb") as f:
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):  # a stray file is no parent
            raise KeyError(key) from None

    def size(self, key: str) -> int:
        try:
            return os.stat(self._path(key)).st_size
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):  # a stray file is no parent
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    def list(self, prefix: str) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self._path(prefix)) if not n.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def delete(self, key: str) -> None:
        path = self._path(key)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def append_text(self, key: str, text: str) -> None:
        path = self._path(key)
        try:
            f = open(path, "a", encoding="utf-8")
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            f = open(path, "a", encoding="utf-8")
        with f:
            f.write(text)

    def flush(self, key: Optional[str] = None) -> None:
        pass

    def local_path(self, key: str) -> Optional[str]:
        return self._path(key)
