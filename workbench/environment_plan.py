"""Which environment each step of a flow runs in, and preparing them before a run starts.

This is the hook the runtime calls (wave 2): ``plan_environments(graph, config, settings)`` once per
run, then ``prepare_environments(plan)`` before the first task is submitted, so a package that does
not exist is one line before anything runs and every task after that finds its environment ready
(a warm task pays a directory check, no uv). Steps whose spec is empty have ``environment=None``:
they run in workbench's own interpreter, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .environment_spec import EnvironmentSpec, PackageSet, project_package_set, step_environment
from .environment_uv import (
    Environment,
    EnvironmentBuildError,
    Target,
    ensure_installed,
    ensure_locked,
    ensure_wheelhouse,
    environment_for,
)
from .errors import FlowError


@dataclass
class StepEnvironment:
    """One step's environment: the spec it declares and, when it declares one, the cached env."""

    step: str
    spec: EnvironmentSpec
    environment: Optional[Environment]
    where: str  # "flows/x.py:12" (the decorator) or the project file, for one-line messages


def _where(graph, step_name: str, project: PackageSet, root: Path) -> str:
    step = graph.steps[step_name]
    for deco in step.decorators:
        if deco.name in ("pypi", "conda"):
            return f"{graph.path}:{deco.lineno}: step {step_name}"
    for deco in graph.flow_decorators:
        if deco.name in ("pypi_base", "conda_base"):
            return f"{graph.path}:{deco.lineno}: step {step_name}"
    return f"{root / project.source.split(' ')[0]}: step {step_name}" if project.source else f"step {step_name}"


def plan_environments(
    graph, config, settings: dict, *, target: Optional[Target] = None, project: Optional[PackageSet] = None
) -> list[StepEnvironment]:
    """Each step's environment spec (project < @pypi_base < @pypi) and its cache entry, in graph order.

    ``settings`` maps step name -> StepSettings (from :func:`workbench.settings.all_settings`);
    ``target`` is where the steps will run (default: this machine, at the step's Python version).
    """
    root = Path(config.root)
    project = project if project is not None else project_package_set(root)
    out = []
    for name in graph.topological():
        s = settings.get(name)
        if s is None:
            continue
        spec = step_environment(
            project, list(getattr(s, "packages", []) or []), getattr(s, "python", None), s.sources.get("packages", "")
        )
        env = None
        if spec.declared:
            step_target = target if target is not None else None
            if step_target is not None and spec.python and spec.python != step_target.python:
                step_target = Target(spec.python, step_target.platform)
            env = environment_for(spec, step_target)
        out.append(StepEnvironment(name, spec, env, _where(graph, name, project, root)))
    return out


def distinct(plan: list[StepEnvironment]) -> dict[str, tuple[Environment, list[str]]]:
    """Environments by cache key, each with the steps that share it."""
    envs: dict[str, tuple[Environment, list[str]]] = {}
    for item in plan:
        if item.environment is not None:
            envs.setdefault(item.environment.key, (item.environment, []))[1].append(item.step)
    return envs


def prepare_environments(
    plan: list[StepEnvironment],
    *,
    install: bool = True,
    wheelhouse: bool = False,
    on_progress: Optional[Callable[[str], None]] = None,
) -> None:
    """Resolve (and install, and fetch the wheelhouse of) every environment the plan needs, once each.

    A resolution failure raises FlowError naming the flow file and line of the decorator at fault.
    """
    say = on_progress or (lambda _line: None)
    first_where: dict[str, str] = {}
    for item in plan:
        if item.environment is not None:
            first_where.setdefault(item.environment.key, item.where)
    for key, (env, steps) in distinct(plan).items():
        what = first_where[key]
        try:
            if not env.locked:
                say(f"resolving {len(env.spec.requirements)} requirement(s) for {', '.join(steps)}")
            ensure_locked(env, what=what)
            if wheelhouse and not env.has_wheelhouse:
                say(f"fetching {len(env.packages())} wheel(s) into {env.wheels}")
                ensure_wheelhouse(env, what=what)
            if install and not env.installed:
                say(f"installing {len(env.packages())} package(s) into {env.venv}")
                ensure_installed(env, what=what)
        except EnvironmentBuildError as exc:
            path, _, rest = exc.message.partition(": ")
            if path.endswith(".py") or ".py:" in path:
                file, _, line = path.rpartition(":")
                raise FlowError(rest, path=file, line=int(line) if line.isdigit() else None) from None
            raise
