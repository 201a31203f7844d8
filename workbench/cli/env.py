"""`workbench env show FLOW [STEP]` and `workbench env build FLOW`: plain lines, no escape codes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..environment_plan import distinct, plan_environments, prepare_environments
from ..environment_spec import project_package_set
from ..environment_uv import directory_size
from ..errors import UsageError
from ..units import format_memory


def _size(nbytes: int) -> str:
    return format_memory(max(1, round(nbytes / (1 << 20)))) if nbytes >= 1 << 20 else f"{nbytes // 1024} KiB"


def _home(path: Path) -> str:
    home = os.path.expanduser("~")
    text = str(path)
    return "~" + text[len(home) :] if text.startswith(home + os.sep) else text


def _plan(args, config):
    from ..project_files import resolve_flow
    from ..settings import all_settings

    graph = resolve_flow(args.flow, config)
    step = getattr(args, "step", None)
    if step and step not in graph.steps:
        raise UsageError(f"flow {graph.name} has no step {step!r} (steps: {', '.join(graph.steps)})")
    settings = all_settings(graph, config, only={step} if step else None)
    project = project_package_set(Path(config.root))
    return graph, project, plan_environments(graph, config, settings, project=project)


def cmd_env_show(args, config) -> int:
    graph, project, plan = _plan(args, config)
    print(f"{graph.name}  ({graph.path})")
    print(
        f"  project: {project.source or 'no requirements'}"
        + (f" ({len(project.requirements)} requirement(s))" if project.requirements else "")
    )
    bare = [item.step for item in plan if item.environment is None]
    for key, (env, steps) in distinct(plan).items():
        print(
            f"  environment {key}: python {env.target.python}, {env.target.platform}; "
            f"step{'s' if len(steps) > 1 else ''} {', '.join(steps)}"
        )
        print(
            f"    requested: {', '.join(env.spec.requirements) or '(none)'}"
            f"  [from {', '.join(env.spec.sources) or 'python version only'}]"
        )
        if not env.locked:
            print(f"    not resolved yet: workbench env build {args.flow}")
            continue
        packages = env.packages()
        listed = ", ".join(f"{p['name']} {p['version']}" for p in packages)
        print(f"    resolved: {len(packages)} package(s): {listed or '(none)'}")
        wheels = sum(int(p.get("size") or 0) for p in packages)
        print(f"    cache: {_home(env.path)}")
        venv = (
            f"venv {_size(directory_size(env.venv))}"
            if env.installed
            else f"venv not installed (workbench env build {args.flow})"
        )
        house = f"wheelhouse {_size(directory_size(env.wheels))}" if env.has_wheelhouse else "no wheelhouse yet"
        print(f"    {venv}; {house} (wheels {_size(wheels)} to download)")
    if bare:
        print(f"  no declared environment: {', '.join(bare)} (workbench's own Python)")
    return 0


def cmd_env_build(args, config) -> int:
    graph, _project, plan = _plan(args, config)
    envs = distinct(plan)
    if not envs:
        print(f"{graph.name}: no step declares an environment (no @pypi/@conda, no project requirements)")
        return 0
    started = time.time()
    prepare_environments(
        plan,
        install=True,
        wheelhouse=not getattr(args, "no_wheelhouse", False),
        on_progress=lambda line: print(f"  {line}", flush=True),
    )
    for key, (env, steps) in envs.items():
        print(
            f"{key}: {len(env.packages())} package(s), python {env.target.python}, "
            f"steps {', '.join(steps)} -> {_home(env.path)}"
        )
    print(f"{len(envs)} environment(s) ready in {time.time() - started:.1f}s")
    return 0
