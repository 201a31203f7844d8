"""Reading task logs in bounded memory, whole or as they grow.

A log is the text object ``<n>.log`` (lines ``<iso ts> <stream> <text>``). :class:`LogTail` reads it
from a byte offset in chunks of at most ``CHUNK`` bytes — a local file by seek, an S3 object by ranged
GET — and keeps only an unfinished last line between reads, so ``workbench logs`` on a log of any size
and ``workbench logs --follow`` / ``workbench attach`` on a growing one (local, or S3 where the runtime
uploads running tasks' logs every few seconds) use memory bounded by the chunk, not the log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional

if TYPE_CHECKING:
    from .datastore import FlowDatastore

CHUNK = 1 << 20  # bytes read at a time
MAX_LINE = 1 << 20  # a line longer than this is cut (and the rest of it printed as further lines)


def parse_line(raw: bytes) -> tuple[str, str, str]:
    """(timestamp, stream, text) of one stored log line."""
    line = raw.decode("utf-8", "replace")
    ts, _, rest = line.partition(" ")
    stream, _, text = rest.partition(" ")
    return ts, stream, text


class LogTail:
    """Reads one log object from where the last read stopped."""

    def __init__(self, ds: "FlowDatastore", key: str, offset: int = 0):
        self.ds, self.key, self.offset = ds, key, offset
        self._partial = b""

    def _read_chunk(self) -> Optional[bytes]:
        """Up to CHUNK bytes from ``offset``; b"" at the current end; None when the log does not exist."""
        storage = self.ds.storage
        path = storage.local_path(self.key)
        if path is not None:
            try:
                with open(path, "rb") as f:
                    f.seek(self.offset)
                    return f.read(CHUNK)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        client = getattr(storage, "client", None)
        if client is None:  # a storage without ranged reads: whole object, then slice
            try:
                return bytes(storage.get(self.key)[self.offset : self.offset + CHUNK])
            except KeyError:
                return None
        try:
            resp = client.get_object(
                Bucket=storage.bucket,  # type: ignore[attr-defined]  # an S3Storage (client is not None)
                Key=storage._key(self.key),  # type: ignore[attr-defined]
                Range=f"bytes={self.offset}-{self.offset + CHUNK - 1}",
            )
            return resp["Body"].read()
        except Exception as exc:  # noqa: BLE001
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")
            if code == "InvalidRange":
                return b""
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise

    def read_new(self, limit: int = 1 << 62) -> Iterator[tuple[str, str, str]]:
        """Every complete line written since the last read (streamed chunk by chunk), at most ``limit``
        bytes' worth."""
        start = self.offset
        while self.offset - start < limit:
            chunk = self._read_chunk()
            if not chunk:
                return
            self.offset += len(chunk)
            data = self._partial + chunk
            *lines, self._partial = data.split(b"\n")
            if len(self._partial) > MAX_LINE:
                lines.append(self._partial)
                self._partial = b""
            for raw in lines:
                yield parse_line(raw)

    def rest(self) -> Iterator[tuple[str, str, str]]:
        """The unfinished last line, once the log is known to be complete."""
        if self._partial:
            raw, self._partial = self._partial, b""
            yield parse_line(raw)


def iter_log(ds: "FlowDatastore", key: str) -> Iterator[tuple[str, str, str]]:
    """Every line of a (finished) log, in bounded memory."""
    tail = LogTail(ds, key)
    yield from tail.read_new()
    yield from tail.rest()


def attempts_with_logs(ds: "FlowDatastore", run_id: str, step: str, task_id: str) -> list[int]:
    """The attempt numbers that have a log, in order."""
    names = ds.storage.list(ds.task_key(run_id, step, task_id))
    return sorted(int(n[:-4]) for n in names if n.endswith(".log") and n[:-4].isdigit())
