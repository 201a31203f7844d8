"""Resolving a flow's configs (:mod:`workbench.user_config`) before its run starts, and putting their
values where the static graph needs them.

1. :func:`config_options_from_environment` and the command line give ``--config NAME FILE`` and
   ``--config-value NAME VALUE`` pairs (:class:`ConfigOptions`).
2. :func:`resolve_config_values` turns them, and each Config's default, into values (name -> a JSON
   value), parsed with the Config's parser or as JSON. The flow class is needed for parsers and default
   functions: the flow's own command line has it; ``workbench run`` imports the flow file (only when the
   flow declares a Config).
3. :func:`bind_configs` evaluates the decorator arguments and Parameter defaults of the static graph
   that mention a config (``@environment(vars={"A": cfg.a})``, ``**cfg``, ``config_expr("cfg.n")``), so
   the settings and parameter values the runtime computes see plain values.

Every user error is one line naming the config, the file or the expression (UsageError / FlowError).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import FlowError, UsageError
from .graph import DecoratorSpec, FlowGraph, Unresolved
from .graph_parser import UNPACKED_PREFIX
from .user_config import ConfigExpr, ConfigExprError, ConfigValue, configs_of, declaration_of, plain, resolve_delayed

ENV_FILES = ("WORKBENCH_FLOW_CONFIG", "METAFLOW_FLOW_CONFIG")
ENV_VALUES = ("WORKBENCH_FLOW_CONFIG_VALUE", "METAFLOW_FLOW_CONFIG_VALUE")


@dataclass
class ConfigOptions:
    """``--config NAME FILE`` (files) and ``--config-value NAME VALUE`` (values), in the order given."""

    files: list[tuple[str, str]] = field(default_factory=list)
    values: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.files or self.values)


def _from_env(names: tuple[str, ...]) -> Optional[tuple[str, list[tuple[str, str]]]]:
    for var in names:
        raw = os.environ.get(var)
        if not raw:
            continue
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{var}: not JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"{var}: must be a JSON object of config names, not {type(loaded).__name__}")
        return var, [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in loaded.items()]
    return None


def config_options_from_environment(given: ConfigOptions) -> ConfigOptions:
    """The command line's options; for each of --config and --config-value not given there, the
    environment's (METAFLOW_FLOW_CONFIG / METAFLOW_FLOW_CONFIG_VALUE, or the WORKBENCH_ names: a JSON
    object of config name -> file, or -> value)."""
    files, values = list(given.files), list(given.values)
    if not files:
        found = _from_env(ENV_FILES)
        files = found[1] if found else []
    if not values:
        found = _from_env(ENV_VALUES)
        values = found[1] if found else []
    return ConfigOptions(files, values)


# ------------------------------------------------------------------------------------------- values
def _context(flow_cls: type, name: str) -> Any:
    from .client import username
    from .parameters import ParameterContext

    return ParameterContext(flow_cls.__name__, username(), name)  # configs=None: no config sees another


def _call_user(what: str, func: Any, *args: Any) -> Any:
    try:
        return func(*args)
    except Exception as exc:  # noqa: BLE001 - the flow's own function failed: one line, no traceback
        raise UsageError(f"{what} raised {type(exc).__name__}: {exc}") from None


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what}: {path} is not UTF-8 text") from None


def _parser_function(parser: Any, name: str) -> Any:
    if callable(parser):
        return parser
    text = str(parser)
    module_name, _, func_name = (("workbench" + text) if text.startswith(".") else text).rpartition(".")
    if not module_name:
        raise UsageError(f"config {name}: parser={text!r} must be a function or 'module.function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"config {name}: parser {text!r}: cannot import {module_name}: {exc}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise UsageError(f"config {name}: parser {text!r}: {module_name} has no function {func_name}")
    return func


def _parse(config: Any, name: str, text: str, origin: str) -> Any:
    decl = declaration_of(config)
    if decl.parser is not None:
        value = _call_user(f"config {name}: parser", _parser_function(decl.parser, name), text)
        if not decl.plain and not isinstance(value, Mapping):
            raise UsageError(f"config {name}: the parser returned {type(value).__name__}, not a dict ({origin})")
        return plain(value)
    if decl.plain:
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"config {name}: {origin} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(value, dict):
        raise UsageError(f"config {name}: {origin} must hold a JSON object, not {type(value).__name__}")
    return value


def _default_text(flow_cls: type, config: Any, name: str) -> Optional[tuple[str, str]]:
    """The default's text and where it came from, or None when the config has no default."""
    decl = declaration_of(config)
    if decl.default is not None and decl.default_value is not None:
        raise UsageError(f"config {name}: give default= (a file) or default_value= (a value), not both")
    if decl.default is not None:
        path = decl.default
        if callable(path):
            path = _call_user(f"config {name}: default function", path, _context(flow_cls, name))
        if path is None:
            return None
        return _read(str(path), f"config {name}: default file"), f"default file {path}"
    value = decl.default_value
    if callable(value):
        value = _call_user(f"config {name}: default_value function", value, _context(flow_cls, name))
    if value is None:
        return None
    if isinstance(value, str):
        return value, "default_value"
    try:
        return json.dumps(plain(value)), "default_value"
    except (TypeError, ValueError) as exc:
        raise UsageError(f"config {name}: default_value cannot be read as JSON: {exc}") from None


def resolve_config_values(graph: FlowGraph, flow_cls: type, options: ConfigOptions) -> dict[str, Any]:
    """Each config's value (config name -> value): ``--config-value`` or ``--config`` if given, else its
    default; parsed; a required config without any is an error. Values must be JSON (they are recorded
    with the run)."""
    configs = {c.name: c for c in configs_of(flow_cls).values()}
    names = ", ".join(configs) or "none"
    given: dict[str, tuple[str, str]] = {}  # name -> (text, where it came from)
    for option, pairs in (("--config", options.files), ("--config-value", options.values)):
        for name, raw in pairs:
            if name not in configs:
                raise UsageError(f"{option} {name}: flow {graph.name} has no config {name} (its configs: {names})")
            if name in given:
                raise UsageError(f"config {name} is given twice (--config and --config-value take one each)")
            if option == "--config":
                given[name] = (_read(raw, f"--config {name}"), f"file {raw}")
            else:
                given[name] = (raw, f"--config-value {name}")
    values: dict[str, Any] = {}
    for name, config in configs.items():
        found = given.get(name) or _default_text(flow_cls, config, name)
        if found is None:
            if declaration_of(config).required:
                raise UsageError(f"config {name} is required: give --config {name} FILE or --config-value {name} VALUE")
            values[name] = None
            continue
        value = _parse(config, name, found[0], found[1])
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"config {name}: its value cannot be recorded with the run as JSON: {exc}") from None
        values[name] = value
    return values


# ------------------------------------------------------------------------------------------ binding
class _Binder:
    """Evaluates the graph's config-dependent arguments in the flow module's namespace."""

    def __init__(self, graph: FlowGraph, flow_cls: type, values: dict[str, Any]):
        self.graph = graph
        self.namespace = dict(vars(sys.modules[flow_cls.__module__])) if flow_cls.__module__ in sys.modules else {}
        self.values = dict(values)
        for config in graph.configs:  # `cfg.a` in a class body names the attribute
            if config.attr not in self.values and config.name in values:
                self.values[config.attr] = values[config.name]

    def value(self, raw: Any, line: int, what: str) -> Any:
        if not isinstance(raw, Unresolved) or not raw.from_config:
            return raw
        scope = {k: ConfigValue(v) if isinstance(v, Mapping) else v for k, v in self.values.items()}
        try:
            result = eval(raw.source, self.namespace, scope)  # noqa: S307 - the flow's own code, as Python would
            return plain(resolve_delayed(result, self.values))
        except ConfigExprError as exc:
            raise FlowError(f"{what}: {exc}", path=self.graph.path, line=line) from None
        except Exception as exc:  # noqa: BLE001 - any failure of the expression is reported as one line
            raise FlowError(
                f"{what}: {raw.source} could not be evaluated with the run's configs: {type(exc).__name__}: {exc}",
                path=self.graph.path,
                line=line,
            ) from None

    def decorator(self, deco: DecoratorSpec, owner: str) -> None:
        kwargs: dict[str, Any] = {}
        for key, raw in deco.kwargs.items():
            where = f"{owner}: @{deco.name}({key}=...)"
            if key.startswith(UNPACKED_PREFIX):
                expanded = self.value(raw, deco.lineno, f"{owner}: @{deco.name}({key})")
                if isinstance(expanded, Unresolved):
                    raise FlowError(
                        f"{owner}: @{deco.name}({key}): ** works on a Config (or a literal dict) only, "
                        f"so that workbench can read the arguments without running the flow",
                        path=self.graph.path,
                        line=deco.lineno,
                    )
                if not isinstance(expanded, Mapping):
                    raise FlowError(
                        f"{owner}: @{deco.name}({key}): the config is {type(expanded).__name__}, not a mapping",
                        path=self.graph.path,
                        line=deco.lineno,
                    )
                kwargs.update(expanded)
            else:
                kwargs[key] = self.value(raw, deco.lineno, where)
        deco.kwargs = kwargs
        deco.args = tuple(self.value(a, deco.lineno, f"{owner}: @{deco.name}(...)") for a in deco.args)


def bind_configs(graph: FlowGraph, flow_cls: type, values: dict[str, Any]) -> None:
    """Replace, in place, the graph's decorator arguments and Parameter defaults that mention a config
    with their values under ``values`` (config name -> value)."""
    binder = _Binder(graph, flow_cls, values)
    for deco in graph.flow_decorators:
        binder.decorator(deco, f"flow {graph.name}")
    for step in graph.steps.values():
        for deco in step.decorators:
            binder.decorator(deco, f"step {step.name}")
    for param in graph.parameters:
        if param.has_default:
            param.default = binder.value(param.default, param.lineno, f"parameter {param.name}: default")


def load_flow_class(graph: FlowGraph) -> type:
    """Import the flow file (for its configs' parsers and default functions) and return the flow class."""
    path = Path(graph.path).resolve()
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    module_name = f"_workbench_configs_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{graph.path}: cannot be imported to resolve its configs")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the flow's own code failed on import: one line
        raise UsageError(
            f"{graph.path}: importing it to resolve its configs raised {type(exc).__name__}: {exc}"
        ) from None
    flow_cls = getattr(module, graph.name or "", None)
    if not isinstance(flow_cls, type):
        raise UsageError(f"{graph.path}: no class {graph.name} after importing it")
    return flow_cls


def prepare_configs(
    graph: FlowGraph,
    flow_cls: Optional[type],
    options: Optional[ConfigOptions] = None,
    recorded: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Everything a run needs for its configs: resolve them (or take the ``recorded`` values of the run a
    resume or single-step run starts from), make them active in this process, and bind the graph.
    Returns config name -> value. A flow without configs costs nothing (and is not imported)."""
    from .user_config import activate

    if not graph.configs:
        if options:
            raise UsageError(f"--config/--config-value: flow {graph.name} has no configs")
        return {}
    if flow_cls is None:
        flow_cls = load_flow_class(graph)
    if recorded is not None and options:
        raise UsageError("--config/--config-value cannot be given here: the run keeps its origin run's configs")
    if recorded is not None and all(c.name in recorded for c in graph.configs):
        values = dict(recorded)
    else:  # a new run (or an origin run recorded before it had these configs: theirs now, the rest kept)
        values = resolve_config_values(graph, flow_cls, config_options_from_environment(options or ConfigOptions()))
        values.update(recorded or {})
    activate(flow_cls, values)
    bind_configs(graph, flow_cls, values)
    return values


__all__ = [
    "ConfigExpr",
    "ConfigOptions",
    "bind_configs",
    "config_options_from_environment",
    "load_flow_class",
    "prepare_configs",
    "resolve_config_values",
]
