"""The Kubernetes API as the backend uses it: which cluster (kubeconfig or in-cluster), one shared ApiClient,
and every call's error as one line. The official ``kubernetes`` client is imported here only, lazily.

Configuration: ``[kubernetes] kubeconfig`` (relative to the project root) or ``KUBECONFIG`` or
``~/.kube/config``, with ``[kubernetes] context``; in a pod without any kubeconfig, the in-cluster config
(service account token). The API server not answering is an :class:`EngineUnreachable` naming its URL.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import BackendError, ConfigError, CredentialsError, EngineUnreachable, WorkbenchError

REQUEST_TIMEOUT = 30  # seconds, for every API call but the followed logs
HINT = (
    "check [kubernetes] kubeconfig / context in workbench.toml or KUBECONFIG, and that the cluster is up "
    "(`kubectl cluster-info`)"
)


class KubernetesApi:
    """``client(kind)`` gives CoreV1Api (``core``), BatchV1Api (``batch``) or VersionApi (``version``) over one
    ApiClient made on first use; ``call`` runs one request and turns any failure into a WorkbenchError."""

    def __init__(self, section, root: Optional[str]):
        self.section = section  # the [kubernetes] table
        self.root = root
        self.url = ""
        self.reachable = False
        self._lock = threading.Lock()
        self._api: Any = None
        self._apis: dict[str, Any] = {}

    def kubeconfig_path(self) -> Optional[str]:
        path = self.section.kubeconfig
        if not path:
            return None
        p = Path(os.path.expandvars(path)).expanduser()
        if not p.is_absolute() and self.root:
            p = Path(self.root) / p
        return str(p)

    def client(self, kind: str):
        with self._lock:
            if self._api is None:
                self._api = self._make_api_client()
            api = self._apis.get(kind)
            if api is None:
                from kubernetes import client

                cls = {"core": client.CoreV1Api, "batch": client.BatchV1Api, "version": client.VersionApi}[kind]
                api = self._apis[kind] = cls(self._api)
            return api

    def _make_api_client(self):
        from kubernetes import client
        from kubernetes import config as kconfig

        configuration = client.Configuration()
        path = self.kubeconfig_path()
        in_cluster = (
            not path
            and not os.environ.get("KUBECONFIG")
            and not Path("~/.kube/config").expanduser().exists()
            and os.environ.get("KUBERNETES_SERVICE_HOST")
        )
        try:
            if in_cluster:
                kconfig.load_incluster_config(client_configuration=configuration)
            else:
                if path and not Path(path).is_file():
                    raise ConfigError(f"kubernetes: [kubernetes] kubeconfig {path} does not exist")
                # KUBECONFIG is passed explicitly: the client reads it only once, when it is imported
                kconfig.load_kube_config(
                    config_file=path or os.environ.get("KUBECONFIG") or None,
                    context=self.section.context,
                    client_configuration=configuration,
                )
        except WorkbenchError:
            raise
        except Exception as exc:  # ConfigException, a malformed file, ...
            where = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise EngineUnreachable(
                f"kubernetes: no usable cluster configuration in {where}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                hint=HINT,
            ) from None
        self.url = configuration.host
        # one followed log per running pod holds a connection: keep them pooled (up to the runtime's 256 in flight)
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 64)
        return client.ApiClient(configuration)

    def call(self, what: str, fn: Callable, *args, **kwargs):
        """An API call with one-line errors: unreachable, refused credentials, or the API's own message."""
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        try:
            return fn(*args, **kwargs)
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self.translate(exc, what) from None

    def translate(self, exc: BaseException, what: str) -> WorkbenchError:
        from kubernetes.client.exceptions import ApiException

        if isinstance(exc, ApiException):
            message = exc.reason or ""
            try:
                message = json.loads(exc.body or "{}").get("message") or message
            except (ValueError, AttributeError):
                pass
            if exc.status in (401, 403):
                return CredentialsError(
                    f"kubernetes: {what}: the API server at {self.url} refused the request ({exc.status}: {message})",
                    hint=HINT,
                )
            if exc.status == 429:
                return ThrottledByApi(
                    f"kubernetes: {what}: the API server at {self.url} asks to slow down (429: {message})",
                    retry_after=_retry_after(exc),
                )
            return BackendError(f"kubernetes: {what}: {exc.status} {message}")
        return EngineUnreachable(
            f"kubernetes: {what}: cannot reach the API server at {self.url or '?'} ({type(exc).__name__})", hint=HINT
        )

    def ping(self) -> None:
        """Raise EngineUnreachable / CredentialsError unless the API server answers."""
        if self.reachable:
            return
        self.call("get version", self.client("version").get_code, _request_timeout=10)
        self.reachable = True

    def delete_job(self, name: str, namespace: str) -> None:
        """Delete a Job and (in the background) its pods; a Job already gone is fine."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.client("batch").delete_namespaced_job(
                name, namespace, propagation_policy="Background", _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 404:
                raise self.translate(exc, f"delete job {name}") from None
        except Exception as exc:  # noqa: BLE001
            raise self.translate(exc, f"delete job {name}") from None


class ThrottledByApi(BackendError):
    """The API server answered 429 Too Many Requests (API priority and fairness)."""

    def __init__(self, message: str, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(exc) -> Optional[float]:
    try:
        value = (exc.headers or {}).get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
