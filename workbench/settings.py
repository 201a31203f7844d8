"""A step's effective settings: one function, one order of precedence.

    built-in default < [project] backend < decorators in the flow file < [flows.F.steps.S] in
    workbench.toml < command-line flags

``workbench show`` and the TUI inspector print exactly what :func:`effective_settings` returns, and
the runtime hands the same object to the backend.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from .config import BACKENDS, ProjectConfig
from .environment_spec import step_packages
from .errors import FlowError, ResourceError, UsageError
from .graph import DecoratorSpec, FlowGraph, StepNode, Unresolved
from .units import format_duration, format_memory, parse_cpu, parse_duration, parse_gpu, parse_memory

DEFAULT_CPU = 1.0
DEFAULT_MEMORY = 4096  # MiB, as Metaflow's @resources
MAX_RETRIES = 100  # as workbench.toml's `retries` (Metaflow's @retry caps lower still)


@dataclass
class StepSettings:
    backend: str = "local"
    image: Optional[str] = None
    cpu: float = DEFAULT_CPU
    memory: int = DEFAULT_MEMORY  # MiB
    gpu: int = 0
    disk: Optional[int] = None  # MiB
    shared_memory: Optional[int] = None  # MiB
    timeout: Optional[int] = None  # seconds
    retries: int = 0
    retry_delay: float = 0.0  # seconds
    catch: bool = False
    catch_var: Optional[str] = None
    catch_print: bool = True
    secrets: Optional[dict[str, Any]] = None  # @secrets: {sources, role, allow_override}; ids, never values
    env: dict[str, str] = field(default_factory=dict)
    queue: Optional[str] = None
    namespace: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific decorator arguments
    packages: list[str] = field(default_factory=list)  # @pypi_base/@pypi requirements (PEP 508 lines)
    python: Optional[str] = None  # the Python version @pypi(python=...) asks for
    profile: bool = False  # run the step under pyinstrument (workbench run --step S --profile; workbench.profiling)
    sources: dict[str, str] = field(default_factory=dict)  # setting -> where its value came from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StepSettings":
        return cls(**data)

    def summary(self) -> str:
        parts = [self.backend, f"cpu={self.cpu:g}", f"memory={format_memory(self.memory)}"]
        if self.gpu:
            parts.append(f"gpu={self.gpu}")
        if self.shared_memory:
            parts.append(f"shm={format_memory(self.shared_memory)}")
        if self.timeout:
            parts.append(f"timeout={format_duration(self.timeout)}")
        if self.retries:
            parts.append(f"retries={self.retries}")
        if self.packages or self.python:
            parts.append(f"packages={len(self.packages)}" + (f" python={self.python}" if self.python else ""))
        if self.image and self.backend != "local":
            parts.append(f"image={self.image}")
        return " ".join(parts)


def _literal(step: StepNode, deco: DecoratorSpec, key: str, graph: FlowGraph) -> Any:
    value = deco.kwargs.get(key)
    if isinstance(value, Unresolved) and value.from_config:
        return None  # names a Config: bound to its value when a run starts (workbench.config_values)
    if isinstance(value, Unresolved):
        source = value.source if len(value.source) <= 60 else value.source[:57] + "..."
        raise FlowError(
            f"step {step.name}: @{deco.name}({key}={source}) must be a literal value "
            f"to be read without running the flow (or set it in workbench.toml)",
            path=graph.path,
            line=deco.lineno,
        )
    return value


def _bad_argument(
    graph: FlowGraph, step: StepNode, deco: DecoratorSpec, key: str, value: object, wants: str
) -> FlowError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return FlowError(f"step {step.name}: @{deco.name}({key}={shown}) {wants}", path=graph.path, line=deco.lineno)


def _number(step: StepNode, deco: DecoratorSpec, key: str, graph: FlowGraph, *, whole: bool = False) -> Optional[float]:
    """A decorator argument that must be a finite number, 0 or more (a whole one with ``whole``)."""
    value = _literal(step, deco, key, graph)
    if value is None:
        return None
    wants = "must be a whole number, 0 or more" if whole else "must be a number, 0 or more"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad_argument(graph, step, deco, key, value, wants)
    try:
        number = float(value)
    except OverflowError:
        raise _bad_argument(graph, step, deco, key, value, "is too large") from None
    if not math.isfinite(number) or number < 0 or (whole and number != int(number)):
        raise _bad_argument(graph, step, deco, key, value, wants)
    return number


def _text(step: StepNode, deco: DecoratorSpec, key: str, graph: FlowGraph) -> Optional[str]:
    value = _literal(step, deco, key, graph)
    if value is not None and not isinstance(value, str):
        raise _bad_argument(graph, step, deco, key, value, "must be a string")
    return value


def _resource_error(graph: FlowGraph, step: StepNode, deco: DecoratorSpec, exc: ResourceError) -> FlowError:
    return FlowError(f"step {step.name}: @{deco.name}: {exc.message}", path=graph.path, line=deco.lineno)


def effective_settings(
    graph: FlowGraph, step_name: str, config: ProjectConfig, cli: Optional[dict[str, Any]] = None
) -> StepSettings:
    """Compute what a step runs with. ``cli`` holds flag values (backend, cpu, memory, gpu, image, timeout)."""
    step = graph.steps[step_name]
    config.check_step_tables(graph.name or "", list(graph.steps))
    s = StepSettings(backend=config.model.project.backend)
    s.sources = {
        "backend": "[project] backend" if config.path else "default",
        "cpu": "default",
        "memory": "default",
        "gpu": "default",
    }

    def setv(key: str, value: Any, source: str) -> None:
        setattr(s, key, value)
        s.sources[key] = source

    # decorators in the flow file; @batch/@kubernetes resources combine with @resources by max, as Metaflow does
    for deco in step.decorators:
        src = f"@{deco.name}"
        try:
            if deco.name == "resources" or deco.name in BACKENDS:  # @batch, @kubernetes, @docker: a backend
                if deco.name != "resources":
                    setv("backend", deco.name, src)
                    image = _text(step, deco, "image", graph)
                    if image:
                        setv("image", image, src)
                    for key in ("queue", "namespace"):
                        if _text(step, deco, key, graph):
                            setv(key, deco.kwargs[key], src)
                    for key, value in deco.kwargs.items():
                        if (
                            key not in ("cpu", "memory", "gpu", "disk", "shared_memory", "image", "queue", "namespace")
                            and value is not None
                        ):
                            s.extra[key] = _literal(step, deco, key, graph)
                for key, parse in (
                    ("cpu", parse_cpu),
                    ("memory", parse_memory),
                    ("gpu", parse_gpu),
                    ("disk", parse_memory),
                    ("shared_memory", parse_memory),
                ):
                    raw = _literal(step, deco, key, graph)
                    if raw is None:
                        continue
                    value = parse(raw, key) if key != "disk" else parse_memory(raw, "disk")
                    current = getattr(s, key)
                    if s.sources.get(key, "default") == "default" or current is None or value > current:
                        setv(key, value, src)
            elif deco.name == "timeout":
                secs = sum(
                    (_number(step, deco, k, graph) or 0) * m
                    for k, m in (("seconds", 1), ("minutes", 60), ("hours", 3600))
                )
                if not math.isfinite(secs):
                    raise _bad_argument(graph, step, deco, "hours", deco.kwargs.get("hours"), "is too long")
                if secs > 0:
                    setv("timeout", int(math.ceil(secs)), src)
            elif deco.name == "retry":
                times = _number(step, deco, "times", graph, whole=True)
                minutes = _number(step, deco, "minutes_between_retries", graph)
                if times is not None and times > MAX_RETRIES:
                    raise _bad_argument(
                        graph, step, deco, "times", deco.kwargs["times"], f"is more than {MAX_RETRIES} retries"
                    )
                setv("retries", 3 if times is None else int(times), src)
                # as Metaflow's local runtime: again at once, unless minutes_between_retries is given
                setv("retry_delay", 0.0 if minutes is None else minutes * 60, src)
            elif deco.name == "catch":
                setv("catch", True, src)
                s.catch_var = _text(step, deco, "var", graph)
                if s.catch_var is not None and not s.catch_var.isidentifier():
                    raise _bad_argument(graph, step, deco, "var", s.catch_var, "must be an artifact name")
                pe = _literal(step, deco, "print_exception", graph)
                s.catch_print = True if pe is None else bool(pe)
            elif deco.name == "secrets":
                sources = _literal(step, deco, "sources", graph) or []
                if not isinstance(sources, list) or not all(
                    isinstance(x, str) or (isinstance(x, dict) and isinstance(x.get("id"), str)) for x in sources
                ):
                    raise _bad_argument(
                        graph,
                        step,
                        deco,
                        "sources",
                        sources,
                        'must be a list of "type.id" strings or {"type": ..., "id": ...} dicts',
                    )
                s.secrets = {
                    "sources": sources,
                    "role": _text(step, deco, "role", graph),
                    "allow_override": bool(_literal(step, deco, "allow_override", graph)),
                }
                s.sources["secrets"] = src
            elif deco.name == "environment":
                env = _literal(step, deco, "vars", graph) or {}
                if not isinstance(env, dict):
                    raise _bad_argument(graph, step, deco, "vars", env, "must be a dict of names to values")
                s.env.update({str(k): str(v) for k, v in env.items()})
                s.sources["env"] = src
        except ResourceError as exc:
            raise _resource_error(graph, step, deco, exc) from None

    # @pypi_base/@conda_base < @pypi/@conda (the project's own requirements join in workbench.environment_spec)
    declared = step_packages(graph, step_name)
    if declared.declared:
        s.packages, s.python = list(declared.requirements), declared.python
        s.sources["packages"] = ", ".join(declared.sources)

    # backend-wide defaults from workbench.toml
    m = config.model
    if s.backend == "docker" and m.docker.env:
        s.env = {**m.docker.env, **s.env}

    # [flows.<flow>.steps.<step>] in workbench.toml
    section = config.step_section(graph.name or "", step_name)
    if section is not None:
        src = f"workbench.toml [flows.{graph.name}.steps.{step_name}]"
        for key in (
            "backend",
            "cpu",
            "memory",
            "gpu",
            "disk",
            "shared_memory",
            "image",
            "timeout",
            "queue",
            "namespace",
        ):
            value = getattr(section, key)
            if value is not None:
                setv(key, value, src)
        if section.retries is not None:
            setv("retries", section.retries, src)
        if section.env:
            s.env.update(section.env)
            s.sources["env"] = src

    # command-line flags
    for key, value in (cli or {}).items():
        if value is None:
            continue
        flag_parsers: dict[str, Callable[[object, str], Any]] = {
            "cpu": parse_cpu,
            "memory": parse_memory,
            "gpu": parse_gpu,
            "timeout": parse_duration,
            "shared_memory": parse_memory,
        }
        flag_parser = flag_parsers.get(key)
        try:
            setv(key, flag_parser(value, key) if flag_parser else value, f"--{key.replace('_', '-')}")
        except ResourceError as exc:
            raise UsageError(f"--{key.replace('_', '-')}: {exc.message}") from None
    # the backend's default image, once the backend is final (a flag or toml may have changed it)
    if s.image is None:
        image = default_image(s.backend, config)
        if image:
            setv("image", image, f"[{s.backend}] image")
    if s.backend not in BACKENDS:
        raise UsageError(f"unknown backend {s.backend!r} (choose from {', '.join(BACKENDS)})")
    return s


def default_image(backend: str, config: ProjectConfig) -> Optional[str]:
    """The image a step on ``backend`` runs when it names none: the backend's own ``[<backend>] image``, else
    ``[docker] image`` (one image can serve every container backend); None for a backend whose section has no
    image (local). The one place this is decided: `workbench show`, the runtime and each backend's
    ``image_for`` all ask here."""
    if backend not in BACKENDS:
        return None
    section = getattr(config.model, backend, None)
    if section is None or not hasattr(section, "image"):
        return None
    return section.image or config.model.docker.image


def all_settings(
    graph: FlowGraph, config: ProjectConfig, cli: Optional[dict[str, Any]] = None, only: Optional[set[str]] = None
) -> dict[str, StepSettings]:
    return {name: effective_settings(graph, name, config, cli) for name in graph.steps if only is None or name in only}
