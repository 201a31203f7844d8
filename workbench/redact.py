"""Step ``env`` values that look like secrets: a warning that points at @secrets, and redaction wherever a
value would otherwise be kept as written (task records, job definitions, container environments, the
packaged workbench.toml).

A step's plain env reaches its task through the task's spec in the datastore (the task sets ``os.environ``
from it); its secret-looking values are ``<redacted>`` there too, and each backend hands them to the task
itself (:func:`secret_env`): local through the worker's pipe or the process environment, Docker through a
0600 file on a tmpfs mounted read-only (``WORKBENCH_SECRET_ENV_FILE``), Batch in the job's
containerOverrides (never the job definition), Kubernetes in the pod's env.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(
    r"SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|PRIVATE|API_?KEY|(^|_)KEY($|_)|"
    r"ACCESS_KEY",
    re.IGNORECASE,
)
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16}\b")
_AWS_SECRET = re.compile(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9/+])[A-Za-z0-9/+]{40}$")  # mixed case: not a hex sha


def looks_secret(name: str, value: Any) -> bool:
    """True for names like *SECRET*, *TOKEN*, *PASSWORD*, *KEY*, or values shaped like AWS keys."""
    text = str(value)
    if not text:
        return False
    return bool(_SECRET_NAME.search(str(name)) or _AWS_KEY_ID.search(text) or _AWS_SECRET.match(text))


def redact_env(env: Mapping[str, Any]) -> dict[str, str]:
    """``env`` with every secret-looking value replaced by ``<redacted>``."""
    return {str(k): (REDACTED if looks_secret(k, v) else str(v)) for k, v in (env or {}).items()}


def secret_env(env: Mapping[str, Any]) -> dict[str, str]:
    """The secret-looking part of a step's env: what a backend hands the task itself (the spec in the
    datastore holds ``<redacted>`` for these)."""
    return {str(k): str(v) for k, v in (env or {}).items() if looks_secret(k, v)}


def redact_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A settings dict (StepSettings.to_dict()) fit for a record someone will read."""
    if settings.get("env"):
        return {**settings, "env": redact_env(settings["env"])}
    return settings


def secret_env_warnings(settings_by_step: Mapping[str, Any]) -> list[str]:
    """One warning per step whose env holds secret-looking values, naming the variables (never the values)."""
    out = []
    for step, s in settings_by_step.items():
        env = getattr(s, "env", None) or {}
        names = sorted(k for k, v in env.items() if looks_secret(k, v))
        if names:
            out.append(
                f"step {step}: env {', '.join(names)} look(s) like secrets; pass secrets with @secrets "
                f"instead (records, job definitions and the code package show {REDACTED} for them)"
            )
    return out


_INLINE_PAIR = re.compile(r'(\b[A-Za-z0-9_-]+|"[^"]+")(\s*=\s*)("(?:[^"\\]|\\.)*"|\'[^\']*\')')


def redact_toml(text: str) -> str:
    """workbench.toml with secret-looking string values replaced (line by line, formatting kept)."""
    out = []
    for line in text.splitlines(keepends=True):

        def swap(m: "re.Match[str]") -> str:
            name, value = m.group(1).strip('"'), m.group(3)[1:-1]
            return f'{m.group(1)}{m.group(2)}"{REDACTED}"' if looks_secret(name, value) else m.group(0)

        out.append(_INLINE_PAIR.sub(swap, line))
    return "".join(out)
