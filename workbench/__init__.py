"""workbench: Metaflow-style flows that run on a laptop, in Docker, on AWS Batch or on Kubernetes.

Write a flow with the public API below; run it with ``workbench run flows/my_flow.py``.
"""

from typing import Any

from .decorators import (
    batch,
    card,
    catch,
    conda,
    conda_base,
    docker,
    environment,
    kubernetes,
    parallel,
    project,
    pypi,
    pypi_base,
    resources,
    retry,
    schedule,
    secrets,
    timeout,
    trigger,
    trigger_on_finish,
)
from .flowspec import FlowSpec, current, step
from .parameters import IncludeFile, JSONType, Parameter
from .user_config import Config, ConfigValue, config_expr

__version__ = "0.1.0"


_CLIENT_NAMES = (
    "Flow",
    "Run",
    "Step",
    "Task",
    "DataArtifact",
    "Metaflow",
    "namespace",
    "get_namespace",
    "default_namespace",
    "metadata",
    "get_metadata",
)


def __getattr__(name: str) -> Any:  # the client API, loaded lazily
    # the client API pulls in the datastore; load it only when asked for
    if name in _CLIENT_NAMES:
        from . import client

        return getattr(client, name)
    if name == "Runner":
        from .runner import Runner

        return Runner
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = [
    "FlowSpec",
    "step",
    "current",
    "Parameter",
    "IncludeFile",
    "JSONType",
    "Config",
    "ConfigValue",
    "config_expr",
    "resources",
    "retry",
    "catch",
    "timeout",
    "environment",
    "batch",
    "kubernetes",
    "docker",
    "card",
    "conda",
    "conda_base",
    "pypi",
    "pypi_base",
    "secrets",
    "parallel",
    "project",
    "schedule",
    "trigger",
    "trigger_on_finish",
    "Flow",
    "Run",
    "Step",
    "Task",
    "DataArtifact",
    "Metaflow",
    "namespace",
    "get_namespace",
    "default_namespace",
    "metadata",
    "get_metadata",
    "Runner",
]
