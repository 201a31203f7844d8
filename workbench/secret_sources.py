"""@secrets: values put in the task's environment, read by the task process itself just before the step
runs. They are never written to a spec, a record, a log or an artifact; a step that wants to keep one
has to assign it to ``self`` itself.

Sources follow Metaflow's ``@secrets(sources=[...])``: ``"type.id"`` strings or ``{"type", "id",
"options", "role"}`` dicts; a source without a type takes ``WORKBENCH_DEFAULT_SECRETS_BACKEND_TYPE``
(or ``METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE``). Types:

- ``aws-secrets-manager``: Metaflow's provider. A JSON object SecretString gives one variable per key
  (``-``, ``.``, ``/`` in keys become ``_``); ``options={"json": False}`` gives the whole string as one
  variable named ``env_var_name`` (or the secret id); a SecretBinary is given base64-encoded. Region:
  from an ARN, ``options["region"]``, ``AWS_SECRETS_MANAGER_DEFAULT_REGION``, then boto3's own.
- ``local-file``: the local source. The id names a file ``<id>.json`` (a JSON object) or ``<id>.env``
  (``KEY=VALUE`` lines) in ``WORKBENCH_SECRETS_DIR`` (default ``~/.config/workbench/secrets``) on the
  machine where the task runs (so: the local backend; a container does not see it).
- ``inline``: ``options={"env_vars": {...}}`` (Metaflow's, for tests: the values are in the flow file).
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any, Optional

from .errors import WorkbenchError


class SecretsError(WorkbenchError):
    """A secret could not be read, or its variables clash: the task fails with this one line."""


def _sanitize(key: str) -> str:
    return key.replace("-", "_").replace(".", "_").replace("/", "_")


def _spec(source: Any, role: Optional[str]) -> tuple[str, str, dict, Optional[str]]:
    default = os.environ.get("WORKBENCH_DEFAULT_SECRETS_BACKEND_TYPE") or os.environ.get(
        "METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE"
    )
    if isinstance(source, str):
        kind, sep, secret_id = source.partition(".")
        if not sep:
            kind, secret_id = default or "", source
        return kind, secret_id, {}, role
    return (
        source.get("type") or default or "",
        source["id"],
        dict(source.get("options") or {}),
        source.get("role") or role,
    )


def _aws(secret_id: str, options: dict, role: Optional[str]) -> dict[str, str]:
    from . import aws

    m = re.match(r"arn:aws:secretsmanager:([^:]+):", secret_id)
    region = (
        (m.group(1) if m else None)
        or options.get("region")
        or os.environ.get("AWS_SECRETS_MANAGER_DEFAULT_REGION")
        or os.environ.get("METAFLOW_AWS_SECRETS_MANAGER_DEFAULT_REGION")
    )
    client = aws.client("secretsmanager", region=region)
    response = client.get_secret_value(SecretId=secret_id)
    name = response.get("Name") or secret_id
    if "SecretString" in response:
        text = response["SecretString"]
        if not options.get("json", True):
            return {_sanitize(options.get("env_var_name") or secret_id): text}
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            raise SecretsError('the secret string is not JSON (pass options={"json": False})') from None
        if not isinstance(obj, dict):
            raise SecretsError(f"the secret string is JSON but not an object ({type(obj).__name__})")
        return {_sanitize(str(k)): str(v) for k, v in obj.items()}
    return {_sanitize(options.get("env_var_name") or name): base64.b64encode(response["SecretBinary"]).decode()}


def _local_file(secret_id: str) -> dict[str, str]:
    folder = Path(os.environ.get("WORKBENCH_SECRETS_DIR") or Path.home() / ".config" / "workbench" / "secrets")
    if "/" in secret_id or secret_id.startswith("."):
        raise SecretsError("a local-file secret id is a file name in the secrets folder, not a path")
    for path in (folder / f"{secret_id}.json", folder / f"{secret_id}.env"):
        if path.is_file():
            text = path.read_text()
            if path.suffix == ".json":
                obj = json.loads(text)
                if not isinstance(obj, dict):
                    raise SecretsError(f"{path} must hold a JSON object")
                return {_sanitize(str(k)): str(v) for k, v in obj.items()}
            pairs = [
                line.split("=", 1) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
            ]
            if any(len(p) != 2 for p in pairs):
                raise SecretsError(f"{path}: every line must be KEY=VALUE")
            return {k.strip(): v.strip() for k, v in pairs}
    raise SecretsError(f"no {secret_id}.json or {secret_id}.env in {folder} (set WORKBENCH_SECRETS_DIR)")


def resolve(config: dict[str, Any]) -> dict[str, str]:
    """Every source's variables, checked: valid names, no clash between sources, none already set
    (unless allow_override). Raises SecretsError naming the secret, never a value."""
    env: dict[str, str] = {}
    for source in config.get("sources") or []:
        kind, secret_id, options, role = _spec(source, config.get("role"))
        try:
            if kind == "aws-secrets-manager":
                values = _aws(secret_id, options, role)
            elif kind == "local-file":
                values = _local_file(secret_id)
            elif kind == "inline":
                values = {str(k): str(v) for k, v in (options.get("env_vars") or {}).items()}
            else:
                raise SecretsError(
                    f"unknown secrets type {kind!r} (aws-secrets-manager, local-file or inline; "
                    f"or set WORKBENCH_DEFAULT_SECRETS_BACKEND_TYPE)"
                )
        except SecretsError as exc:
            raise SecretsError(f"@secrets: cannot read secret {secret_id!r} ({kind or 'no type'}): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a provider's error, reduced to its type and first line
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise SecretsError(
                f"@secrets: cannot read secret {secret_id!r} ({kind}): {type(exc).__name__}: {first}"
            ) from None
        for name in values:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise SecretsError(f"@secrets: secret {secret_id!r} gives {name!r}, not a valid variable name")
            if name in env:
                raise SecretsError(f"@secrets: variable {name} comes from more than one secret")
            if name in os.environ and not config.get("allow_override"):
                raise SecretsError(
                    f"@secrets: secret {secret_id!r} would replace variable {name}, which is "
                    f"already set (pass allow_override=True)"
                )
        env.update(values)
    return env
