"""boto3 sessions and clients for the S3 datastore and the remote backends (Batch, Kubernetes).

boto3 is imported here, lazily: the core never imports it at module level. Credentials always come
from boto3's standard chain (environment, shared files, SSO, instance/container roles); nothing here
reads, stores or logs a secret. Retries are botocore's own: throttling and 5xx answers are retried
with exponential backoff and jitter (``standard`` mode, or ``adaptive`` which also rate-limits the
client when it is throttled), ``max_attempts`` tries in all.

Endpoints: an explicit value (from workbench.toml) wins; otherwise boto3 reads ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_<SERVICE>`` itself. Remote tasks get the S3 endpoint as ``WORKBENCH_S3_ENDPOINT_URL``.
"""

from __future__ import annotations

import os
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from .errors import BackendError, CredentialsError, EngineUnreachable

RETRY_MODE = os.environ.get("WORKBENCH_AWS_RETRY_MODE", "adaptive")  # standard | adaptive
MAX_ATTEMPTS = int(os.environ.get("WORKBENCH_AWS_MAX_ATTEMPTS", "10"))
DEFAULT_REGION = "us-east-1"

ENV_S3_ENDPOINT = "WORKBENCH_S3_ENDPOINT_URL"
ENV_S3_REGION = "WORKBENCH_S3_REGION"

_lock = threading.Lock()
_sessions: dict[Optional[str], Any] = {}


def retry_config(max_pool_connections: int = 32, **extra: Any):
    """The botocore Config every client here uses: library retries with backoff, a connection pool."""
    from botocore.config import Config
    return Config(retries={"mode": RETRY_MODE, "max_attempts": MAX_ATTEMPTS},
                  max_pool_connections=max_pool_connections, connect_timeout=10, read_timeout=120, **extra)


def session(region: Optional[str] = None):
    """One boto3 Session per region (sessions are not thread-safe to create, clients are to use)."""
    import boto3
    with _lock:
        s = _sessions.get(region)
        if s is None:
            s = _sessions[region] = boto3.session.Session(region_name=region or _env_region())
        return s


def _env_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def client(service: str, *, region: Optional[str] = None, endpoint_url: Optional[str] = None,
           config: Any = None):
    """A boto3 client with the shared retry config; CredentialsError (one line) when there are none."""
    s = session(region)
    if s.get_credentials() is None:
        raise CredentialsError(f"no AWS credentials found for {service} (set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                               f"AWS_SECRET_ACCESS_KEY, or run where an instance/task role is available)")
    return s.client(service, endpoint_url=endpoint_url or None, config=config or retry_config())


def translate(exc: BaseException, what: str) -> BaseException:
    """A botocore exception as a one-line workbench error (never including request signatures)."""
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover
        return exc
    if isinstance(exc, bx.NoCredentialsError) or isinstance(exc, bx.PartialCredentialsError):
        return CredentialsError(f"{what}: no usable AWS credentials ({type(exc).__name__})")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return EngineUnreachable(f"{what}: cannot reach {getattr(exc, 'kwargs', {}).get('endpoint_url', 'AWS')}")
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "")
        msg = err.get("Message", "")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "UnrecognizedClientException",
                    "InvalidClientTokenId", "AccessDenied", "AccessDeniedException", "ExpiredTokenException"):
            return CredentialsError(f"{what}: AWS refused the credentials ({code}: {msg})")
        return BackendError(f"{what}: {code}: {msg}")
    return exc


# ---------------------------------------------------------------------------------------- S3 settings

def s3_settings() -> tuple[Optional[str], Optional[str]]:
    """(endpoint_url, region) for the S3 datastore.

    ``WORKBENCH_S3_ENDPOINT_URL`` / ``WORKBENCH_S3_REGION`` win (remote tasks get them; an empty value means
    "none"); then ``[datastore] endpoint_url`` / ``region`` of the project's workbench.toml; then boto3's own
    defaults (AWS_ENDPOINT_URL, AWS_REGION, ...).
    """
    endpoint = os.environ.get(ENV_S3_ENDPOINT)
    region = os.environ.get(ENV_S3_REGION)
    if endpoint is None or region is None:
        cfg_endpoint, cfg_region = _datastore_section(os.environ.get("WORKBENCH_CONFIG"), os.getcwd())
        endpoint = cfg_endpoint if endpoint is None else endpoint
        region = cfg_region if region is None else region
    return endpoint or None, region or None


@lru_cache(maxsize=16)
def _datastore_section(config_path: Optional[str], cwd: str) -> tuple[Optional[str], Optional[str]]:
    """[datastore] endpoint_url and region, read with tomllib only (remote images have no pydantic)."""
    path: Optional[Path] = Path(config_path) if config_path else None
    if path is None:
        here = Path(cwd).resolve()
        for d in (here, *here.parents):
            if (d / "workbench.toml").is_file():
                path = d / "workbench.toml"
                break
    if path is None:
        return None, None
    try:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - a broken file is reported by the config loader, not here
        return None, None
    section = data.get("datastore") or {}
    return section.get("endpoint_url"), section.get("region")


def task_environment(endpoint_url: Optional[str], region: Optional[str]) -> dict[str, str]:
    """What a remote task needs to reach the same S3 datastore (no credentials: those come from its role)."""
    env = {ENV_S3_ENDPOINT: endpoint_url or "", ENV_S3_REGION: region or ""}
    if region:
        env["AWS_DEFAULT_REGION"] = region
    return env
