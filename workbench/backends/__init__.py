"""Backends, by name. Adding one is a module in this package and a line here.

:data:`REGISTRY` is the only list of backends: the CLI's ``--backend`` / ``promote --to`` choices, the
config schema's backend names (``[project] backend``, a step's ``backend``), the decorators that pick a
backend and every "is it remote" question derive from it. Backend modules are imported only when a backend
is used (they may pull in docker, boto3 or kubernetes).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import UsageError
from .base import Backend, RunContext, TaskExit, TaskHandle, TaskSpec

if TYPE_CHECKING:
    from ..config import ProjectConfig

REGISTRY = {
    "local": "workbench.backends.local:LocalBackend",
    "docker": "workbench.backends.docker:DockerBackend",
    "batch": "workbench.backends.batch:BatchBackend",
    "kubernetes": "workbench.backends.kubernetes:KubernetesBackend",
}


#: the registered backend names, in the order the CLI offers them
BACKEND_NAMES: tuple[str, ...] = tuple(REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name`` (its module imported now); UsageError for an unknown name."""
    try:
        module, _, cls = REGISTRY[name].partition(":")
    except KeyError:
        raise UsageError(f"unknown backend {name!r} (choose from {', '.join(REGISTRY)})") from None
    try:
        return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as exc:
        raise UsageError(f"backend {name} is not available: {exc}") from None


def create_backend(name: str, config: "ProjectConfig") -> Backend:
    return backend_class(name)(config)


def is_remote(name: str) -> bool:
    """Whether the backend runs tasks elsewhere (on a cloud), as its class says; False when unknown or not
    importable here."""
    try:
        return bool(backend_class(name).remote)
    except Exception:  # noqa: BLE001 - an unknown or unavailable backend is not a remote one to show prices for
        return False


__all__ = [
    "Backend",
    "RunContext",
    "TaskExit",
    "TaskHandle",
    "TaskSpec",
    "REGISTRY",
    "BACKEND_NAMES",
    "backend_class",
    "create_backend",
    "is_remote",
]
