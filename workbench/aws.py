"""boto3 sessions and clients for the S3 datastore and the remote backends (Batch, Kubernetes).

boto3 is imported here, lazily: the core never imports it at module level. Credentials always come
from boto3's standard chain (environment, shared files, SSO, instance/container roles); nothing here
reads, stores or logs a secret (the one exception: a run's short-lived credentials file for its
containers, see :class:`TaskCredentials`). Retries are botocore's own: throttling and 5xx answers are retried
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

    return Config(
        retries={"mode": RETRY_MODE, "max_attempts": MAX_ATTEMPTS},
        max_pool_connections=max_pool_connections,
        connect_timeout=10,
        read_timeout=120,
        **extra,
    )


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


def client(service: str, *, region: Optional[str] = None, endpoint_url: Optional[str] = None, config: Any = None):
    """A boto3 client with the shared retry config; CredentialsError (one line) when there are none."""
    s = session(region)
    if s.get_credentials() is None:
        raise CredentialsError(
            f"no AWS credentials found for {service} (set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
            f"AWS_SECRET_ACCESS_KEY, or run where an instance/task role is available)"
        )
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
        if code in (
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "ExpiredToken",
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "AccessDenied",
            "AccessDeniedException",
            "ExpiredTokenException",
        ):
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


# ---------------------------------------------------------------------------------- credentials for containers

SECRET_ENV = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    }
)
SESSION_SECONDS = 12 * 3600


def container_aws_env() -> dict[str, str]:
    """The caller's AWS_* settings a container may see in its environment: endpoints and regions, never a
    credential or a pointer to the caller's own credential files."""
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_") and k not in SECRET_ENV}


def secret_dir() -> str:
    """A private directory for a run's credentials, on a tmpfs when there is one (/dev/shm, then
    $XDG_RUNTIME_DIR), so the secret never reaches a disk; mode 0700."""
    import tempfile

    for base in ("/dev/shm", os.environ.get("XDG_RUNTIME_DIR") or ""):
        if base and os.path.isdir(base) and os.access(base, os.W_OK):
            return tempfile.mkdtemp(prefix="workbench-creds-", dir=base)
    return tempfile.mkdtemp(prefix="workbench-creds-")


def short_lived_credentials(endpoint_url: Optional[str] = None) -> tuple[Any, str]:
    """(frozen credentials, what they are): the caller's session credentials when they already have a
    token; long-lived keys are exchanged for a session token (STS GetSessionToken) when STS allows it."""
    creds = session().get_credentials()
    if creds is None:
        raise CredentialsError(
            "no AWS credentials found to hand to the run's containers (set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )
    frozen = creds.get_frozen_credentials()
    if frozen.token:
        return frozen, "the caller's session credentials"
    try:
        sts = session().client("sts", endpoint_url=endpoint_url or None, config=retry_config())
        c = sts.get_session_token(DurationSeconds=SESSION_SECONDS)["Credentials"]
        from botocore.credentials import ReadOnlyCredentials

        return ReadOnlyCredentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]), "an STS session token"
    except Exception:  # noqa: BLE001 - STS may be unreachable or refused; fall back to the caller's keys
        return frozen, "the caller's long-lived keys (STS GetSessionToken was refused)"


# ------------------------------------------------------------------------ credentials scoped to one task

TASK_SECONDS = 12 * 3600
ENV_TASK_ROLE = "WORKBENCH_TASK_ROLE"


def task_policy(bucket: str, store_prefix: str, outbox_prefix: str, partition: str = "aws") -> str:
    """The session policy of one task's credentials: read the whole datastore, list the bucket, and write
    (PutObject, multipart parts) only under the task's own outbox prefix. No delete, no copy into the store.

    ``store_prefix`` is the datastore's prefix in the bucket ("" for the bucket's root); ``outbox_prefix``
    is the outbox's key relative to it (``.outbox/RUN/STEP/TASK/ATTEMPT-NONCE``).
    """
    import json

    root = f"{bucket}/{store_prefix.strip('/')}".rstrip("/")
    arn = f"arn:{partition}:s3:::"
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{arn}{root}/*"]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"{arn}{bucket}"]},
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": [f"{arn}{root}/{outbox_prefix.strip('/')}/*"],
            },
        ],
    }
    return json.dumps(doc, separators=(",", ":"))


class TaskCredentials:
    """Credentials for the tasks of one run (Docker with an S3 datastore), each task its own.

    How they are cut, first that works:

    - ``role``: a role is configured (``[datastore] task_role`` or ``WORKBENCH_TASK_ROLE``): STS AssumeRole per
      task with :func:`task_policy` as the session policy, so the task can write only its outbox;
    - ``federation``: the caller has long-lived IAM user keys: STS GetFederationToken per task, same policy;
    - ``run``: neither (session credentials and no role): one file for the whole run with the caller's
      session credentials (or an STS session token), not scoped; the runtime says so once per run.

    A scoped task gets a directory (0700, on a tmpfs, mounted read-only) holding a ``config`` whose
    ``credential_process`` reads ``credentials.json`` there; a thread re-mints each live task's credentials
    ``REFRESH_BEFORE`` seconds before they expire and replaces that file, and botocore in the task re-reads
    it (15 minutes before expiry), so a task may outlive one session (a role's is often one hour).
    Everything is removed when the task ends (:meth:`release`) and when the run ends (:meth:`close`).
    """

    REFRESH_BEFORE = 20 * 60.0
    REFRESH_EVERY = 30.0

    def __init__(self, endpoint_url: Optional[str], role_arn: Optional[str] = None):
        self.endpoint_url = endpoint_url
        self.role_arn = role_arn or os.environ.get(ENV_TASK_ROLE) or None
        self.dir = secret_dir()
        self._run_file: Optional[str] = None
        self._lock = threading.Lock()
        self._live: dict[str, tuple[str, str, float]] = {}  # task directory -> (policy, session name, expiry)
        self._stop = threading.Event()
        self._refresher: Optional[threading.Thread] = None
        creds = session().get_credentials()
        if creds is None:
            raise CredentialsError(
                "no AWS credentials found to hand to the run's containers (set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
            )
        frozen = creds.get_frozen_credentials()
        self.mode = "role" if self.role_arn else ("federation" if not frozen.token else "run")
        self.what = ""

    def _sts(self) -> Any:
        return session().client("sts", endpoint_url=self.endpoint_url or None, config=retry_config())

    def for_task(self, datastore_url: str, outbox_prefix: str, label: str) -> str:
        """Where one task's credentials are for the S3 datastore ``datastore_url`` whose outbox is
        ``outbox_prefix``: a directory with ``config`` (scoped), or the run's shared credentials file."""
        if self.mode != "run":
            bucket, _, store_prefix = datastore_url[len("s3://") :].partition("/")
            policy = task_policy(bucket, store_prefix, outbox_prefix)
            name = "".join(ch if ch.isalnum() or ch in "=,.@-" else "-" for ch in label)[-32:] or "workbench-task"
            try:
                return self._task_dir(policy, name, self._mint(policy, name))
            except Exception as exc:  # noqa: BLE001 - STS refused: the run goes on with unscoped credentials
                if self.mode == "role":
                    raise CredentialsError(
                        f"STS AssumeRole of {self.role_arn} (set as the tasks' role) failed: {translate(exc, 'sts')}"
                    ) from None
                self.mode, self.what = "run", f"STS GetFederationToken was refused ({type(exc).__name__})"
        with self._lock:  # tasks start on threads of their own: one run file
            if self._run_file is None:
                creds, what = short_lived_credentials(self.endpoint_url)
                self.what = self.what or what
                self._run_file = self._write("credentials", creds.access_key, creds.secret_key, creds.token)
            return self._run_file

    def _mint(self, policy: str, name: str) -> dict[str, Any]:
        """STS credentials (AccessKeyId, SecretAccessKey, SessionToken, Expiration) under ``policy``."""
        sts = self._sts()
        if self.mode == "role":
            try:
                c = sts.assume_role(
                    RoleArn=self.role_arn, RoleSessionName=name, Policy=policy, DurationSeconds=TASK_SECONDS
                )["Credentials"]
            except Exception as exc:  # noqa: BLE001 - the role's maximum session may be shorter: one hour then
                if "DurationSeconds" not in str(exc) and "MaxSessionDuration" not in str(exc):
                    raise
                c = sts.assume_role(RoleArn=self.role_arn, RoleSessionName=name, Policy=policy)["Credentials"]
        else:
            c = sts.get_federation_token(Name=name, Policy=policy, DurationSeconds=TASK_SECONDS)["Credentials"]
        return dict(c)

    def _task_dir(self, policy: str, name: str, creds: dict[str, Any]) -> str:
        import tempfile

        path = tempfile.mkdtemp(prefix="task-", dir=self.dir)
        expiry = self._write_process_credentials(path, creds)
        fd = os.open(os.path.join(path, "config"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"[default]\ncredential_process = cat {os.path.join(path, 'credentials.json')}\n")
        with self._lock:
            self._live[path] = (policy, name, expiry)
            if self._refresher is None:
                self._refresher = threading.Thread(target=self._refresh_loop, name="task-credentials", daemon=True)
                self._refresher.start()
        return path

    @staticmethod
    def _write_process_credentials(path: str, c: dict[str, Any]) -> float:
        """``credentials.json`` in credential_process format, replaced atomically; returns its expiry (epoch)."""
        import json
        import time
        from datetime import datetime, timezone

        expires = c.get("Expiration")
        if isinstance(expires, str):
            expires = datetime.fromisoformat(expires.replace("Z", "+00:00"))
        at = expires.timestamp() if isinstance(expires, datetime) else time.time() + 3600
        doc = {
            "Version": 1,
            "AccessKeyId": c["AccessKeyId"],
            "SecretAccessKey": c["SecretAccessKey"],
            "SessionToken": c["SessionToken"],
            "Expiration": datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        tmp = os.path.join(path, f".credentials.{uuid_hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, os.path.join(path, "credentials.json"))  # the directory is mounted: the task sees it
        return at

    def refresh_due(self) -> int:
        """Re-mint the credentials of live tasks that expire within ``REFRESH_BEFORE``; how many were."""
        import time

        with self._lock:
            due = [(d, v) for d, v in self._live.items() if v[2] - time.time() < self.REFRESH_BEFORE]
        done = 0
        for path, (policy, name, _) in due:
            try:
                creds = self._mint(policy, name)
            except Exception:  # noqa: BLE001 - tried again on the next round, while time is left
                continue
            with self._lock:
                if path in self._live:
                    self._live[path] = (policy, name, self._write_process_credentials(path, creds))
                    done += 1
        return done

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.REFRESH_EVERY):
            self.refresh_due()

    def _write(self, name: str, key: str, secret: str, token: Optional[str]) -> str:
        lines = ["[default]", f"aws_access_key_id = {key}", f"aws_secret_access_key = {secret}"]
        if token:
            lines.append(f"aws_session_token = {token}")
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def scoped(self) -> bool:
        return self.mode != "run"

    def unscoped_warning(self) -> str:
        return (
            f"tasks get the run's own S3 credentials ({self.what}), not credentials confined to their outbox: a "
            f"hostile step could overwrite the datastore (readers still check every blob's hash); set "
            f"[datastore] task_role to a role the tasks' credentials are cut from"
        )

    def release(self, path: Optional[str]) -> None:
        """Remove a task's own credentials (the run's shared file stays until :meth:`close`)."""
        import shutil

        if not path or path == self._run_file:
            return
        with self._lock:
            self._live.pop(path, None)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            Path(path).unlink(missing_ok=True)

    def close(self) -> None:
        import shutil

        self._stop.set()
        with self._lock:
            self._live.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
        self._run_file = None


def uuid_hex() -> str:
    import uuid

    return uuid.uuid4().hex
