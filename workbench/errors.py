"""Errors a user can cause, and how they are reported.

Every error a user can fix (a bad flow file, a malformed workbench.toml, an impossible resource
request, a missing credential, an unreachable engine) is a :class:`WorkbenchError`. Front ends print
``str(error)`` as one line and exit with ``error.exit_code``; no traceback.

::

    WorkbenchError                 one clear line; file and line where there is one
    ├── FlowError                  the flow file: syntax, graph shape, decorators
    ├── ConfigError                workbench.toml: unknown keys, wrong types, bad units
    ├── ResourceError              an impossible or malformed resource request
    ├── UsageError                 bad command-line input (unknown step, bad parameter value)
    ├── DatastoreError             a run, task or artifact that is not where it should be
    └── BackendError               a backend that cannot do what was asked
        ├── EngineUnreachable      no Docker engine / Kubernetes API / AWS endpoint answers
        └── CredentialsError       credentials missing or refused
"""

from __future__ import annotations

from .exitcodes import CLI_USAGE


class WorkbenchError(Exception):
    """Base of all user-facing errors. ``str()`` is the one-line message."""

    exit_code = CLI_USAGE

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, hint: str | None = None):
        self.message = message
        self.path = path
        self.line = line
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class FlowError(WorkbenchError):
    """The flow file is not a valid flow."""


class ConfigError(WorkbenchError):
    """workbench.toml is malformed or holds a value that cannot be used."""


class ResourceError(WorkbenchError):
    """A resource request is malformed or cannot be scheduled anywhere."""


class UsageError(WorkbenchError):
    """Bad command-line input."""


class DatastoreError(WorkbenchError):
    """Something asked of the datastore is not there."""


class BackendError(WorkbenchError):
    """A backend cannot do what was asked."""


class EngineUnreachable(BackendError):
    """The engine or API server behind a backend does not answer."""


class CredentialsError(BackendError):
    """Credentials are missing or were refused."""
