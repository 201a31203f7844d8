"""Storage in S3 (or any S3-compatible store): ``s3://bucket/prefix``.

- Every object is written with one PUT (small) or one multipart upload (large, via boto3's transfer
  manager); either is atomic in S3: a reader sees the whole object or none of it.
- Throttling (SlowDown, 503) and 5xx answers are retried by botocore with backoff (see workbench.aws).
- S3 cannot append: ``append_text`` spools a log to a local temporary file (bounded memory) and uploads the
  whole of it on ``flush`` (and at most every ``LOG_UPLOAD_INTERVAL`` seconds while lines keep coming, so a
  long task's log is visible; the runtime also flushes running tasks' logs every few seconds).
- Endpoint and region: ``WORKBENCH_S3_ENDPOINT_URL`` / ``WORKBENCH_S3_REGION``, else ``[datastore]`` in
  workbench.toml, else boto3's defaults. Credentials: boto3's standard chain only.
"""

from __future__ import annotations

import io
import tempfile
import threading
import time
from typing import Any, Iterable, List, Optional

from ..errors import DatastoreError, WorkbenchError
from .storage import Buffer

MULTIPART_THRESHOLD = 8 * 1024 * 1024
MULTIPART_CHUNK = 8 * 1024 * 1024
LOG_UPLOAD_INTERVAL = 5.0


class _ChunkReader(io.RawIOBase):
    """A read-only stream over an iterable of buffers (so a large artifact is never joined in memory)."""

    def __init__(self, chunks: Iterable[Buffer]):
        self._it = iter(chunks)
        self._cur = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:  # io hands a writable buffer (bytearray or memoryview)
        while not len(self._cur):
            try:
                self._cur = memoryview(next(self._it)).cast("B")
            except StopIteration:
                return 0
        n = min(len(b), len(self._cur))
        b[:n] = self._cur[:n]
        self._cur = self._cur[n:]
        return n


def _file_chunks(f: Any, size: int) -> Iterable[bytes]:
    """The first ``size`` bytes of ``f`` in chunks (a log spool that may grow meanwhile)."""
    left = size
    while left > 0:
        chunk = f.read(min(MULTIPART_CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


def _read_into(body: Any, view: memoryview) -> None:  # body: botocore's StreamingBody (untyped)
    """Read a streaming body into ``view`` exactly."""
    got = 0
    try:
        while got < len(view):
            chunk = body.read(min(MULTIPART_CHUNK, len(view) - got))
            if not chunk:
                raise DatastoreError(f"S3 download ended early ({got} of {len(view)} bytes)")
            view[got : got + len(chunk)] = chunk
            got += len(chunk)
    finally:
        body.close()


class S3Storage:
    def __init__(self, url: str, *, endpoint_url: Optional[str] = None, region: Optional[str] = None):
        if not url.startswith("s3://"):
            raise DatastoreError(f"not an S3 URL: {url}")
        self.url = url.rstrip("/")
        self.bucket, _, prefix = url[len("s3://") :].partition("/")
        if not self.bucket:
            raise DatastoreError(f"{url}: no bucket name (use s3://bucket/prefix)")
        self.prefix = prefix.strip("/")
        from ..aws import s3_settings

        env_endpoint, env_region = s3_settings()
        self.endpoint_url = endpoint_url or env_endpoint
        self.region = region or env_region
        self._client: Any = None  # boto3 clients are untyped
        self._transfer: Any = None
        self._lock = threading.Lock()
        self._conditional_puts: Optional[bool] = None  # PUT with If-None-Match: * (S3 since 2024)
        self._logs: dict[str, dict[str, Any]] = {}  # key -> {"spool": file, "dirty": bool, "uploaded": float}

    # ------------------------------------------------------------------ plumbing
    @property
    def client(self) -> Any:
        if self._client is None:
            from .. import aws

            self._client = aws.client("s3", region=self.region, endpoint_url=self.endpoint_url)
        return self._client

    def _transfer_config(self) -> Any:
        if self._transfer is None:
            from boto3.s3.transfer import TransferConfig

            self._transfer = TransferConfig(
                multipart_threshold=MULTIPART_THRESHOLD,
                multipart_chunksize=MULTIPART_CHUNK,
                max_concurrency=8,
                use_threads=True,
            )
        return self._transfer

    def _can_put_conditionally(self) -> bool:
        """Whether this botocore knows PutObject's IfNoneMatch (older ones, e.g. Debian 12's, do not)."""
        if self._conditional_puts is None:
            try:
                members = self.client.meta.service_model.operation_model("PutObject").input_shape.members
                self._conditional_puts = "IfNoneMatch" in members
            except Exception:  # noqa: BLE001
                self._conditional_puts = False
        return self._conditional_puts

    def _key(self, key: str) -> str:
        key = key.strip("/")
        return f"{self.prefix}/{key}" if self.prefix and key else (self.prefix or key)

    def _fail(self, exc: Exception, what: str) -> Exception:
        from ..aws import translate

        err = translate(exc, f"S3 {what} {self.url}")
        return err if isinstance(err, WorkbenchError) else DatastoreError(f"S3 {what} {self.url}: {exc}")

    @staticmethod
    def _is_missing(exc: Exception) -> bool:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        return code in ("404", "NoSuchKey", "NotFound")

    # ------------------------------------------------------------------ Storage
    def put(self, key: str, chunks: Iterable[Buffer], *, overwrite: bool = True) -> None:
        chunks = chunks if isinstance(chunks, (list, tuple)) else list(chunks)
        size = sum(memoryview(c).nbytes for c in chunks)
        conditional = not overwrite and size < MULTIPART_THRESHOLD and self._can_put_conditionally()
        if not overwrite and not conditional and self.exists(key):
            return
        try:
            if size < MULTIPART_THRESHOLD:
                body = b"".join(chunks) if len(chunks) != 1 else bytes(chunks[0])
                extra = {"IfNoneMatch": "*"} if conditional else {}  # one request instead of HEAD + PUT
                try:
                    self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, **extra)
                except Exception as exc:  # noqa: BLE001
                    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                    if conditional and code in ("PreconditionFailed", "ConditionalRequestConflict"):
                        return  # already there
                    if conditional and code in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                        self._conditional_puts = False  # an S3-compatible store without conditional writes
                        return self.put(key, chunks, overwrite=False)
                    raise
            else:
                self.client.upload_fileobj(
                    io.BufferedReader(_ChunkReader(chunks), MULTIPART_CHUNK),
                    self.bucket,
                    self._key(key),
                    Config=self._transfer_config(),
                )
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, f"upload of {key} to") from None

    def get(self, key: str) -> bytearray:
        """The object, read into one preallocated buffer; beyond the first chunk, ranged GETs in parallel."""
        full = self._key(key)
        try:
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=full, Range=f"bytes=0-{MULTIPART_CHUNK - 1}")
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "response", {}).get("Error", {}).get("Code") != "InvalidRange":
                    raise
                resp = self.client.get_object(Bucket=self.bucket, Key=full)  # an empty object
            first = resp["ContentLength"]
            content_range = resp.get("ContentRange") or ""
            total = int(content_range.rpartition("/")[2]) if "/" in content_range else first
            buf = bytearray(total)
            view = memoryview(buf)
            _read_into(resp["Body"], view[:first])
            if total > first:
                etag = resp.get("ETag")
                ranges = [(o, min(o + MULTIPART_CHUNK, total)) for o in range(first, total, MULTIPART_CHUNK)]

                def fetch(r: tuple[int, int]) -> None:
                    extra = {"IfMatch": etag} if etag else {}  # every part from the same version of the object
                    part = self.client.get_object(
                        Bucket=self.bucket, Key=full, Range=f"bytes={r[0]}-{r[1] - 1}", **extra
                    )
                    _read_into(part["Body"], view[r[0] : r[1]])

                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(max_workers=min(8, len(ranges))) as pool:
                    list(pool.map(fetch, ranges))
        except (WorkbenchError, KeyError):
            raise
        except Exception as exc:  # noqa: BLE001
            if self._is_missing(exc):
                raise KeyError(key) from None
            raise self._fail(exc, f"download of {key} from") from None
        return buf

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            if self._is_missing(exc):
                return False
            raise self._fail(exc, f"lookup of {key} in") from None

    def list(self, prefix: str) -> list[str]:
        base = self._key(prefix)
        base = f"{base}/" if base else ""
        names: set[str] = set()
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"
            )
            for page in pages:
                for p in page.get("CommonPrefixes", []):
                    names.add(p["Prefix"][len(base) :].rstrip("/"))
                for o in page.get("Contents", []):
                    names.add(o["Key"][len(base) :])
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "NoSuchBucket":
                return []
            raise self._fail(exc, f"listing of {prefix} in") from None
        return sorted(n for n in names if n and not n.startswith("."))

    def delete(self, key: str) -> None:
        """Delete the object ``key`` and everything under ``key/`` (as the local storage removes a directory)."""
        full = self._key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=full)
            batch: list[dict[str, str]] = []
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full + "/"):
                for o in page.get("Contents", []):
                    batch.append({"Key": o["Key"]})
                    if len(batch) == 1000:
                        self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                        batch = []
            if batch:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, f"delete of {key} in") from None
        with self._lock:
            log = self._logs.pop(key, None)
        if log is not None:
            log["spool"].close()

    def walk(self, prefix: str) -> List[tuple[str, int]]:  # typing.List: this class has a method named list
        """Every object under ``prefix/`` at any depth: (key relative to ``prefix``, size), hidden names too."""
        base = self._key(prefix) + "/"
        out: List[tuple[str, int]] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
                out += [(o["Key"][len(base) :], int(o.get("Size", 0))) for o in page.get("Contents", [])]
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, f"listing of {prefix} in") from None
        return out

    def copy(self, src: str, dst: str) -> None:
        """Server-side copy of ``src`` to ``dst`` in this bucket (multipart for objects over 5 GB)."""
        try:
            self.client.copy(
                {"Bucket": self.bucket, "Key": self._key(src)},
                self.bucket,
                self._key(dst),
                Config=self._transfer_config(),
            )
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            if self._is_missing(exc):
                raise KeyError(src) from None
            raise self._fail(exc, f"copy of {src} in") from None

    # ------------------------------------------------------------------ logs
    def append_text(self, key: str, text: str) -> None:
        """Append to a log kept in a local spool file (memory stays bounded whatever the log's size);
        the whole object is uploaded from the file on ``flush`` and, while lines keep coming, at most every
        ``LOG_UPLOAD_INTERVAL`` seconds (longer for a large log: about 10 MB/s of re-upload at most)."""
        with self._lock:
            log = self._logs.get(key)
            if log is None:
                spool = tempfile.TemporaryFile()
                try:
                    self.client.download_fileobj(self.bucket, self._key(key), spool)
                except Exception as exc:  # noqa: BLE001
                    if not self._is_missing(exc) and "404" not in str(exc):
                        spool.close()
                        raise self._fail(exc, f"download of {key} from") from None
                    spool.seek(0)
                    spool.truncate()
                spool.seek(0, 2)
                log = self._logs[key] = {"spool": spool, "dirty": False, "uploaded": time.monotonic()}
            log["spool"].write(text.encode("utf-8"))
            log["dirty"] = True
            size = log["spool"].tell()
            due = time.monotonic() - log["uploaded"] >= max(LOG_UPLOAD_INTERVAL, size / 10e6)
        if due:
            self.flush(key, keep=True)

    def flush(self, key: Optional[str] = None, keep: bool = False) -> None:
        """Upload buffered log text (one key, or all); forget the buffer unless ``keep``."""
        with self._lock:
            keys = [key] if key is not None else list(self._logs)
        for k in keys:
            with self._lock:
                log = self._logs.get(k)
                if log is None:
                    continue
                if not keep:
                    del self._logs[k]
                if not log["dirty"]:
                    if not keep:
                        log["spool"].close()
                    continue
                log["dirty"] = False
                log["uploaded"] = time.monotonic()
                spool = log["spool"]
                spool.flush()
                size = spool.tell()
                path = f"/proc/self/fd/{spool.fileno()}"
                reader = open(path, "rb")  # an independent read position; the spool keeps appending
            try:
                if size < MULTIPART_THRESHOLD:
                    self.put(k, [reader.read(size)])
                else:  # streamed from the spool: put() would gather the chunks in memory
                    try:
                        self.client.upload_fileobj(
                            io.BufferedReader(_ChunkReader(_file_chunks(reader, size)), MULTIPART_CHUNK),
                            self.bucket,
                            self._key(k),
                            Config=self._transfer_config(),
                        )
                    except Exception as exc:  # noqa: BLE001
                        raise self._fail(exc, f"upload of {k} to") from None
            finally:
                reader.close()
                if not keep:
                    spool.close()

    def local_path(self, key: str) -> Optional[str]:
        return None

    def url_for(self, key: str) -> str:
        """The s3:// URL of ``key``."""
        return f"s3://{self.bucket}/{self._key(key)}"
