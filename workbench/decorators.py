"""Step and flow decorators. They only attach metadata; the runtime reads it (through the static
graph for settings, and from the function for in-task behaviour such as @catch).

Arguments follow Metaflow's namesakes so that a Metaflow flow runs after changing its import line.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

# name -> accepted arguments and their defaults
STEP_DECORATORS: dict[str, dict[str, Any]] = {
    "resources": {"cpu": 1, "gpu": None, "disk": None, "memory": 4096, "shared_memory": None},
    "retry": {"times": 3, "minutes_between_retries": 2},
    "catch": {"var": None, "print_exception": True},
    "timeout": {"seconds": 0, "minutes": 0, "hours": 0},
    "environment": {"vars": {}},
    "batch": {
        "cpu": None,
        "gpu": None,
        "memory": None,
        "image": None,
        "queue": None,
        "iam_role": None,
        "execution_role": None,
        "shared_memory": None,
        "max_swap": None,
        "swappiness": None,
        "inferentia": None,
        "trainium": None,
        "efa": None,
        "host_volumes": None,
        "efs_volumes": None,
        "use_tmpfs": None,
        "tmpfs_tempdir": None,
        "tmpfs_size": None,
        "tmpfs_path": None,
        "ephemeral_storage": None,
        "log_driver": None,
        "log_options": None,
        "aws_batch_tags": None,
        "privileged": None,
        "disk": None,
    },
    "kubernetes": {
        "cpu": None,
        "memory": None,
        "disk": None,
        "gpu": None,
        "gpu_vendor": None,
        "image": None,
        "image_pull_policy": None,
        "image_pull_secrets": None,
        "service_account": None,
        "secrets": None,
        "node_selector": None,
        "namespace": None,
        "tolerations": None,
        "use_tmpfs": None,
        "tmpfs_tempdir": None,
        "tmpfs_size": None,
        "tmpfs_path": None,
        "persistent_volume_claims": None,
        "shared_memory": None,
        "port": None,
        "compute_pool": None,
        "labels": None,
        "annotations": None,
        "qos": None,
        "hostname_resolution_timeout": None,
        "security_context": None,
    },
    "docker": {"image": None, "cpu": None, "memory": None, "gpu": None, "shared_memory": None},
    # the step's Python packages (workbench.environment_spec declares them, workbench.environment_uv resolves them with uv)
    "pypi": {"packages": {}, "python": None, "disabled": None, "extra_indices": None},
    "parallel": {},
    "secrets": {"sources": [], "role": None, "allow_override": False},
    "conda": {"packages": {}, "libraries": {}, "python": None, "disabled": None, "channels": None, "pip": None},
}
# accepted so that Metaflow flows load, but they do nothing yet
IGNORED_STEP_DECORATORS = {"card", "checkpoint", "model"}
FLOW_DECORATORS = {"project", "schedule", "trigger", "trigger_on_finish", "pypi_base", "conda_base"}
HONOURED_FLOW_DECORATORS = {"pypi_base", "conda_base"}  # the flow's packages, read by workbench.environment

DECORATOR_ATTR = "_workbench_decorators"

# a step function, a flow class or whatever else a decorator is put on
Decorated = Callable[..., Any]


def _attach(func: Decorated, name: str, kwargs: dict[str, Any]) -> Decorated:
    spec = STEP_DECORATORS.get(name)
    if spec is not None:
        # `**cfg` (a Config) hands over one key that stands for the whole value, known when the run starts
        unknown = sorted(k for k in set(kwargs) - set(spec) if not k.startswith("_unpacked_delayed_"))
        if unknown:
            raise TypeError(f"@{name} has no argument {unknown[0]!r} (it takes {', '.join(spec)})")
    decos = list(getattr(func, DECORATOR_ATTR, []))
    decos.append((name, dict(kwargs)))
    try:
        setattr(func, DECORATOR_ATTR, decos)
    except AttributeError:  # e.g. a bound method; wrap it

        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            return func(*a, **kw)

        setattr(wrapper, DECORATOR_ATTR, decos)
        return wrapper
    return func


def _make(name: str) -> Callable[..., Any]:
    def decorator(func: Decorated | None = None, **kwargs: Any) -> Decorated:
        if name in IGNORED_STEP_DECORATORS or (name in FLOW_DECORATORS and name not in HONOURED_FLOW_DECORATORS):
            warnings.warn(f"@{name} is accepted but ignored by workbench for now", stacklevel=2)
        if func is not None and callable(func) and not kwargs:
            return _attach(func, name, {})

        def apply(f: Decorated) -> Decorated:
            return _attach(f, name, kwargs)

        return apply

    decorator.__name__ = name
    decorator.__qualname__ = name
    decorator.__doc__ = f"@{name}: step metadata read by the workbench runtime."
    return decorator


resources = _make("resources")
retry = _make("retry")
catch = _make("catch")
timeout = _make("timeout")
environment = _make("environment")
batch = _make("batch")
kubernetes = _make("kubernetes")
docker = _make("docker")
card = _make("card")
pypi = _make("pypi")
conda = _make("conda")
secrets = _make("secrets")
parallel = _make("parallel")
project = _make("project")
schedule = _make("schedule")
trigger = _make("trigger")
trigger_on_finish = _make("trigger_on_finish")
pypi_base = _make("pypi_base")
conda_base = _make("conda_base")


def decorators_of(func: Decorated) -> dict[str, dict[str, Any]]:
    return {name: kwargs for name, kwargs in getattr(func, DECORATOR_ATTR, [])}
