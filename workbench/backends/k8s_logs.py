"""Following one pod's log (``follow=True``) into ``on_log``, line by line, on a thread of its own.

Kubernetes merges a container's stdout and stderr into one log, so every line arrives as "stdout". A stream
that breaks while the container still runs is reopened, skipping the lines already delivered (by their
timestamps); a stream that ends with the container is done.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Optional

from ..errors import WorkbenchError
from .k8s_client import KubernetesApi
from .k8s_manifest import CONTAINER
from .k8s_status import container_status, parse_ts

LOG_READ_TIMEOUT = 3600  # seconds of silence after which a followed log is reopened
MAX_FAILURES = 5  # reopening attempts in a row that deliver nothing


class PodLog:
    """The followed log of one pod. ``on_line(text, ts)`` gets each line; ``should_stop()`` is asked between
    reconnects; ``on_end()`` is called once the thread ends, however it ends."""

    def __init__(
        self,
        api: KubernetesApi,
        namespace: str,
        pod_name: str,
        *,
        on_line: Callable[[str, float], None],
        should_stop: Callable[[], bool],
        on_end: Callable[[], None],
    ):
        self.api = api
        self.namespace = namespace
        self.pod_name = pod_name
        self.on_line = on_line
        self.should_stop = should_stop
        self.on_end = on_end
        self.closed = False
        self._response: Any = None
        self.thread = threading.Thread(target=self._run, name=f"kubernetes-logs-{pod_name}", daemon=True)

    def start(self) -> "PodLog":
        self.thread.start()
        return self

    def alive(self) -> bool:
        """Still reading (from another thread than this log's own)."""
        return self.thread.is_alive() and self.thread is not threading.current_thread()

    def close(self) -> None:
        """Stop delivering lines and break the open stream (the thread then ends)."""
        self.closed = True
        resp = self._response
        if resp is not None:
            try:
                resp.close()
            except Exception:  # noqa: BLE001
                pass

    def _run(self) -> None:
        try:
            self._follow()
        finally:
            self.on_end()

    def _follow(self) -> None:
        from kubernetes.client.exceptions import ApiException

        last_ts: Optional[float] = None
        failures = 0
        while failures < MAX_FAILURES and not self.closed:
            failures += 1
            kwargs: dict[str, Any] = {
                "container": CONTAINER,
                "follow": True,
                "timestamps": True,
                "_preload_content": False,
                "_request_timeout": (10, LOG_READ_TIMEOUT),
            }
            if last_ts is not None:
                kwargs["since_seconds"] = max(1, math.ceil(time.time() - last_ts) + 1)
            try:
                resp = self.api.client("core").read_namespaced_pod_log(self.pod_name, self.namespace, **kwargs)
            except ApiException as exc:
                if exc.status in (400,) and not self.should_stop():  # still waiting to start
                    time.sleep(1.0)
                    continue
                return
            except Exception:  # noqa: BLE001 - the connection broke on opening (a busy server): try again
                if self.should_stop():
                    return
                time.sleep(1.0)
                continue
            self._response = resp
            pending = b""
            try:
                for chunk in resp.stream(65536, decode_content=True):
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        last_ts = self._emit(raw, last_ts)
                    if lines:
                        failures = 0  # the stream works: a later break (e.g. a read timeout) reconnects
                if pending:
                    last_ts = self._emit(pending, last_ts)
                ended = True
            except Exception:  # noqa: BLE001 - a broken stream: see below whether to reconnect
                ended = False
            finally:
                resp.release_conn()
            if self.should_stop() or self.closed:
                return
            if ended and not self._still_running():
                return
            time.sleep(0.5)

    def _emit(self, raw: bytes, last_ts: Optional[float]) -> Optional[float]:
        if self.closed:
            return last_ts
        text = raw.decode("utf-8", "replace").rstrip("\r")
        stamp, _, rest = text.partition(" ")
        ts = parse_ts(stamp)
        if ts is None:
            ts, rest = time.time(), text
        elif last_ts is not None and ts <= last_ts:
            return last_ts  # already delivered before a reconnect
        self.on_line(rest, ts)
        return ts

    def _still_running(self) -> bool:
        try:
            pod = self.api.call("read pod", self.api.client("core").read_namespaced_pod, self.pod_name, self.namespace)
        except WorkbenchError:
            return False
        cs = container_status(pod)
        return (
            cs is not None
            and cs.state is not None
            and cs.state.running is not None
            and pod.metadata.deletion_timestamp is None
        )
