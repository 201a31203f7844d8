"""Flow parameters: ``alpha = Parameter("alpha", default=0.5, type=float)``.

Values come from the command line as strings and are converted in the runtime (before any task
starts, so a bad value is a usage error with exit code 2) using the static :class:`ParameterSpec`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from .errors import UsageError

if TYPE_CHECKING:
    from .graph import ParameterSpec


class JSONType:
    """``type=JSONType``: the value is parsed as JSON."""


class Parameter:
    """A run parameter. Read it in any step as ``self.<attribute>``; it cannot be assigned."""

    kind = "parameter"

    def __init__(
        self,
        name: str,
        default: Any = None,
        type: Any = None,
        help: str = "",
        required: bool = False,
        show_default: bool = True,
        **kwargs: Any,
    ):
        self.name = name
        self.default = default
        self.type = type
        self.help = help
        self.required = required
        self.kwargs = kwargs
        self._attr: Optional[str] = None

    def __set_name__(self, owner: type, attr: str) -> None:
        self._attr = attr

    def __get__(self, obj: Any, objtype: Optional[type] = None) -> Any:
        if obj is None:
            return self
        return obj._wb_artifact(self._attr or self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"parameter {self.name} cannot be assigned in a step")

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, default={self.default!r})"


class IncludeFile(Parameter):
    """A parameter whose command-line value is a path; the step sees the file's contents."""

    kind = "include_file"

    def __init__(
        self,
        name: str,
        required: bool = False,
        help: str = "",
        is_text: bool = True,
        encoding: str = "utf-8",
        default: Any = None,
        **kwargs: Any,
    ):
        super().__init__(name, default=default, help=help, required=required, **kwargs)
        self.is_text = is_text
        self.encoding = encoding


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "JSONType": json.loads,
    "json": json.loads,
}


def _to_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "y", "on"):
        return True
    if low in ("0", "false", "no", "n", "off"):
        return False
    raise ValueError(raw)


def convert_parameter(spec: ParameterSpec, raw: Any) -> Any:
    """Convert a command-line string for the parameter described by ``spec`` (a ParameterSpec)."""
    if spec.kind == "include_file":
        path = Path(str(raw))
        try:
            return path.read_text(encoding="utf-8") if spec.is_text else path.read_bytes()
        except OSError as exc:
            raise UsageError(f"--{spec.name}: cannot read {raw}: {exc.strerror}") from None
    if not isinstance(raw, str):
        return raw
    type_name = spec.type_name
    if type_name is None and spec.has_default and spec.default is not None:
        type_name = type(spec.default).__name__
    try:
        if type_name == "bool":
            return _to_bool(raw)
        conv = _CONVERTERS.get(type_name or "str")
        if conv is None:
            raise UsageError(f"--{spec.name}: parameters of type {type_name} cannot be set from the command line")
        return conv(raw)
    except (ValueError, json.JSONDecodeError):
        want = {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "JSONType": "JSON",
            "json": "JSON",
        }.get(type_name or "str", type_name)
        raise UsageError(f"--{spec.name}: {raw!r} is not {want}") from None


# Metaflow's reserved parameter names (its `run` options), dashed and underscored
RESERVED_NAMES = frozenset(
    n
    for name in (
        "params",
        "with",
        "tag",
        "namespace",
        "obj",
        "tags",
        "decospecs",
        "run-id-file",
        "max-num-splits",
        "max-workers",
        "max-log-size",
        "user-namespace",
        "run-id",
        "task-id",
        "runner-attribute-file",
    )
    for n in (name, name.replace("-", "_"))
)


def check_parameter_name(name: str) -> None:
    """Metaflow's command line refuses parameter names its own options use, with this message. Checked
    when a flow runs through that command line (``python flow.py run``), where the names would clash;
    ``workbench run`` has none of those options."""
    if name in RESERVED_NAMES:
        from .exception import MetaflowException

        raise MetaflowException(
            f"Parameter name '{name}' is a reserved word. Please use a different name for your parameter."
        )


def value_from_environment(name: str) -> Optional[str]:
    """A parameter's value from METAFLOW_RUN_<NAME> or WORKBENCH_RUN_<NAME> (as Metaflow reads them)."""
    import os

    key = name.upper().replace("-", "_")
    for prefix in ("WORKBENCH_RUN_", "METAFLOW_RUN_"):
        if f"{prefix}{key}" in os.environ:
            return os.environ[f"{prefix}{key}"]
    return None


class ParameterContext:
    """What a callable default receives (Metaflow's ParameterContext)."""

    def __init__(self, flow_name: str, user_name: Optional[str], parameter_name: str):
        self.flow_name = flow_name
        self.user_name = user_name
        self.parameter_name = parameter_name
        self.logger = print
        self.ds_type = "local"
        self.configs: Any = None  # the run's configs (a ConfigValue of name -> value) when the flow has any


def resolve_default(flow_cls: type, attr: str) -> Any:
    """A default that is not a literal, computed in the start task where the flow is imported: a callable
    is called with a :class:`ParameterContext`; an IncludeFile's default is a path, read; a JSONType
    default given as text is parsed."""
    param = getattr(flow_cls, attr)
    default = param.default
    if callable(default):
        from .client import username

        context = ParameterContext(flow_cls.__name__, username(), param.name)
        from .user_config import active_configs

        context.configs = active_configs()  # the run's configs, active in this task (workbench.user_config)
        default = default(context)
    if isinstance(param, IncludeFile):
        if default is None:
            return None
        path = Path(str(default))
        return path.read_text(encoding=param.encoding) if param.is_text else path.read_bytes()
    if param.type is JSONType and isinstance(default, str):
        return json.loads(default)
    if param.type is bool and isinstance(default, str):
        return _to_bool(default)
    return split_value(param.kwargs.get("separator"), default)


def split_value(separator: Optional[str], value: Any) -> Any:
    """``Parameter(separator=",")``: a non-empty string value becomes the list of its parts (as Metaflow)."""
    if separator and isinstance(value, str) and value:
        return value.split(separator)
    return value


def resolve_parameters(specs: Sequence[ParameterSpec], given: dict[str, Any]) -> dict[str, Any]:
    """Map each parameter's attribute to its value: the given value converted, else its default."""
    known = {p.name: p for p in specs}
    for name in given:
        if name not in known and name.replace("_", "-") not in known:
            names = ", ".join(f"--{p.name}" for p in specs) or "none"
            raise UsageError(f"unknown parameter --{name} (this flow takes: {names})")
    values = {}
    for p in specs:
        raw = given.get(p.name, given.get(p.name.replace("-", "_")))
        if raw is None:
            raw = value_from_environment(p.name)
        if raw is not None:
            values[p.attr] = split_value(p.separator, convert_parameter(p, raw))
        elif p.required:
            raise UsageError(f"parameter --{p.name} is required")
        elif p.has_default:
            from .graph import Unresolved

            if isinstance(p.default, Unresolved):
                values[p.attr] = p.default  # resolved inside the start task, where the flow is imported
            elif p.kind == "include_file" and p.default is not None:
                values[p.attr] = convert_parameter(p, p.default)
            elif p.type_name in ("JSONType", "json") and isinstance(p.default, str):
                values[p.attr] = convert_parameter(p, p.default)  # Metaflow parses a JSON default written as text
            else:
                values[p.attr] = split_value(p.separator, p.default)
        else:
            values[p.attr] = None
    return values
