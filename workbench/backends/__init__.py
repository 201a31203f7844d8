"""Backends, by name. Adding one is a module in this package and a line here."""

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


def backend_class(name: str) -> type[Backend]:
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


__all__ = ["Backend", "RunContext", "TaskExit", "TaskHandle", "TaskSpec", "REGISTRY", "backend_class",
           "create_backend"]
