"""Metaflow's ``Config``: a flow's configuration, fixed before the run starts and the same in every task.

    class TrainFlow(FlowSpec):
        cfg = Config("cfg", default="train.json")            # a file, read when the run starts
        tiny = Config("tiny", default_value={"lr": 0.1})     # or a value (a dict, JSON text, a function)

        @environment(vars={"MODEL": cfg.model.name})         # usable in decorators ...
        @step
        def start(self):
            print(self.cfg.model.name, self.cfg["lr"])       # ... and read in steps, read-only

The value is given with ``--config NAME FILE`` or ``--config-value NAME VALUE`` (or METAFLOW_FLOW_CONFIG /
METAFLOW_FLOW_CONFIG_VALUE, JSON objects of name to file / value), else it comes from the default. It is
resolved once by :mod:`workbench.config_values`, recorded with the run (a resume keeps it) and saved as
an artifact of every task, where ``self.cfg`` reads it as a :class:`ConfigValue`.

This module is the authoring side: :class:`Config`, :class:`ConfigValue`, :func:`config_expr` and
:class:`ConfigExpr` (an expression on configs, evaluated once their values are known), and the values
of the configs in this process (:func:`activate`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable, Iterator, NoReturn, Optional, Union

from .parameters import Parameter

# `**cfg` in a call: the key the mapping protocol hands back, so the callee can find the expression again
UNPACK_KEY = "_unpacked_delayed_"


class ConfigValue(dict):  # type: ignore[type-arg]  # a dict, so isinstance(v, dict) and json.dumps work
    """A configuration's value: a read-only dict whose keys are also attributes (``cfg.model.name`` or
    ``cfg["model"]["name"]``). Nested mappings are ConfigValues too; changing any of them raises
    TypeError."""

    def __init__(self, data: Mapping[Any, Any]):
        super().__init__({k: _frozen(v) for k, v in data.items()})

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r} (keys: {', '.join(map(str, self)) or 'none'})") from None

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("a config value cannot be changed (configs are fixed when the run starts)")

    __setattr__ = __delattr__ = __setitem__ = __delitem__ = _immutable
    clear = pop = popitem = setdefault = update = __ior__ = _immutable

    def to_dict(self) -> dict[Any, Any]:
        """The value as plain dicts and lists (what is saved and recorded with the run)."""
        result: dict[Any, Any] = plain(self)
        return result

    def copy(self) -> dict[Any, Any]:
        return self.to_dict()

    def __reduce__(self) -> tuple[type[ConfigValue], tuple[dict[Any, Any]]]:
        return ConfigValue, (self.to_dict(),)

    def __repr__(self) -> str:
        return repr(self.to_dict())


def _frozen(value: Any) -> Any:
    if isinstance(value, ConfigValue):
        return value
    if isinstance(value, Mapping):
        return ConfigValue(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_frozen(v) for v in value)
    return value


def plain(value: Any) -> Any:
    """``value`` with every ConfigValue inside it turned back into a dict."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


class ConfigExpr(Mapping[str, Any]):
    """An expression on configs whose value is known only once the configs are resolved (Metaflow's
    DelayEvaluator): ``config_expr("cfg.a")``, or ``cfg.a`` in a class body. Attribute and item access
    extend it (``config_expr("cfg").a["b"]``); ``**expr`` unpacks it into a decorator's arguments."""

    _expr: str
    _namespace: Optional[dict[str, Any]]  # the globals of the module that wrote it
    _path: tuple[tuple[str, Any], ...]  # ("attr", name) / ("item", key) steps after the expression

    def __init__(self, expr: str, namespace: Optional[dict[str, Any]] = None, path: tuple[tuple[str, Any], ...] = ()):
        self._expr = expr
        self._namespace = namespace
        self._path = path

    def __getattr__(self, name: str) -> ConfigExpr:
        if name.startswith("__"):
            raise AttributeError(name)
        return ConfigExpr(self._expr, self._namespace, self._path + (("attr", name),))

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str) and key == self._unpack_key:
            return self
        return ConfigExpr(self._expr, self._namespace, self._path + (("item", key),))

    # the mapping protocol, for `**expr`: one key that hands back the expression itself
    @property
    def _unpack_key(self) -> str:
        return f"{UNPACK_KEY}{id(self)}"

    def keys(self) -> Any:
        return [self._unpack_key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return 1

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The value, with the configs active in this process (Metaflow calls its evaluators this way)."""
        return self.evaluate()

    def evaluate(self, values: Optional[dict[str, Any]] = None) -> Any:
        """The value of the expression with ``values`` (config name -> value; default: the active ones)."""
        scope = _scope(values)
        try:
            result = eval(self._expr, dict(self._namespace or {}), scope)  # noqa: S307 - the flow's own code
            for kind, key in self._path:
                result = getattr(result, key) if kind == "attr" else result[key]
        except Exception as exc:  # noqa: BLE001 - any failure is the expression's, reported as one line
            raise ConfigExprError(f"config expression {self.source!r}: {type(exc).__name__}: {exc}") from None
        return resolve_delayed(result, values)

    @property
    def source(self) -> str:
        """The expression as written (``config_expr('cfg').a['b']``)."""
        text = self._expr
        for kind, key in self._path:
            text += f".{key}" if kind == "attr" else f"[{key!r}]"
        return text

    def __repr__(self) -> str:
        return f"config_expr({self.source!r})"


class ConfigExprError(Exception):
    """A config expression could not be evaluated (the message is one line, naming the expression)."""


def config_expr(expr: str) -> ConfigExpr:
    """An expression on the flow's configs, for places that run before configs are known:
    ``@project(name=config_expr("cfg").project)``, ``Parameter("n", default=config_expr("cfg.n + 1"))``.
    Names in the expression are config names, then the globals of the module that calls config_expr."""
    caller = inspect.currentframe()
    namespace = caller.f_back.f_globals if caller is not None and caller.f_back is not None else {}
    return ConfigExpr(expr, namespace)


ConfigDefault = Union[str, Callable[..., Any], None]
# attributes that code walking a flow class asks every member for (`getattr(member, "is_step", False)`):
# a Config has none of them, rather than a config expression (write cfg["is_step"] for such a key)
_PROBED_NAMES = frozenset({"is_step"})


class Config(Parameter):
    """A configuration of the flow (Metaflow's ``Config``): ``Config(name, default=FILE)`` or
    ``Config(name, default_value=VALUE)``, with ``parser=`` (a function or ``"module.function"`` that
    turns the text into a dict; JSON without one), ``required=`` and ``plain=True`` (keep the parsed value
    as it is rather than a ConfigValue). In the class body, ``cfg.a.b`` is a :class:`ConfigExpr`; in a
    step, ``self.cfg`` is the value.

    The constructor never raises: a bad combination is reported, with its line, when the run starts."""

    kind = "config"
    _wb_config: _ConfigDeclaration

    def __init__(
        self,
        name: str,
        default: ConfigDefault = None,
        default_value: Any = None,
        help: str = "",
        required: Optional[bool] = None,
        parser: Union[str, Callable[[str], Any], None] = None,
        plain: bool = False,
        **kwargs: Any,
    ):
        # few attributes of its own: any other name is a key of the value (`cfg.help` is the config's "help")
        self.name = name
        self._attr: Optional[str] = None
        self._wb_config = _ConfigDeclaration(default, default_value, help, required, parser, plain)

    def __getattr__(self, name: str) -> ConfigExpr:
        if name.startswith("_") or name in _PROBED_NAMES:
            raise AttributeError(name)
        return getattr(ConfigExpr(self.name), name)  # type: ignore[no-any-return]

    def __getitem__(self, key: Any) -> Any:
        expr = ConfigExpr(self.name)
        if isinstance(key, str) and key.startswith(UNPACK_KEY):
            return expr
        return expr[key]

    def keys(self) -> list[str]:
        """``**cfg`` in a decorator's arguments: the whole value, unpacked once it is known."""
        return [f"{UNPACK_KEY}{id(self)}"]

    def __get__(self, obj: Any, objtype: Optional[type] = None) -> Any:
        if obj is None:
            return self
        value = obj._wb_artifact(self._attr or self.name)
        return value if self._wb_config.plain or not isinstance(value, Mapping) else ConfigValue(value)

    def __repr__(self) -> str:
        return f"Config({self.name!r})"


class _ConfigDeclaration:
    """What ``Config(...)`` was given, kept apart from the Config's attribute namespace."""

    def __init__(
        self,
        default: ConfigDefault,
        default_value: Any,
        help: str,
        required: Optional[bool],
        parser: Union[str, Callable[[str], Any], None],
        plain: bool,
    ):
        self.default = default
        self.default_value = default_value
        self.help = help
        self.required = bool(required)
        self.parser = parser
        self.plain = plain


def declaration_of(config: Config) -> _ConfigDeclaration:
    return config._wb_config


def configs_of(flow_cls: type) -> dict[str, Config]:
    """The flow class's configs by attribute name, base classes first."""
    found: dict[str, Config] = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Config):
                found[attr] = value
    return found


# ------------------------------------------------------------------------ the configs of this process
_ACTIVE: dict[str, tuple[Any, bool]] = {}  # config name -> (value, plain)


def activate(flow_cls: type, values: dict[str, Any]) -> None:
    """Make ``values`` (config name -> value) the configs that expressions in this process see: the
    command line's once they are resolved, a task's once its artifacts are known."""
    _ACTIVE.clear()
    by_name = {c.name: (attr, c) for attr, c in configs_of(flow_cls).items()}
    for name, value in values.items():
        config = by_name.get(name)
        is_plain = bool(config and declaration_of(config[1]).plain)
        _ACTIVE[name] = (value, is_plain)
        if config is not None and config[0] != name and config[0] not in values:
            _ACTIVE.setdefault(config[0], (value, is_plain))  # `cfg.a` in a class body names the attribute


def activate_task_configs(flow_cls: type, has: Callable[[str], bool], load: Callable[[str], Any]) -> None:
    """In a task: the configs are artifacts (``has``/``load`` by attribute name); make them active."""
    values = {c.name: load(attr) for attr, c in configs_of(flow_cls).items() if has(attr)}
    activate(flow_cls, values)


def active_configs() -> Optional[ConfigValue]:
    """The active configs as one ConfigValue (``ctx.configs`` of a default function), or None."""
    if not _ACTIVE:
        return None
    return ConfigValue({name: value for name, (value, _plain) in _ACTIVE.items()})


def _scope(values: Optional[dict[str, Any]]) -> dict[str, Any]:
    pairs = _ACTIVE if values is None else {n: (v, False) for n, v in values.items()}
    return {
        name: value if is_plain or not isinstance(value, Mapping) else ConfigValue(value)
        for name, (value, is_plain) in pairs.items()
    }


def resolve_delayed(value: Any, values: Optional[dict[str, Any]] = None) -> Any:
    """``value`` with every ConfigExpr inside it evaluated (and ``**expr`` keys of a dict expanded)."""
    if isinstance(value, ConfigExpr):
        return value.evaluate(values)
    if isinstance(value, dict) and not isinstance(value, ConfigValue):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and k.startswith(UNPACK_KEY):
                expanded = resolve_delayed(v, values)
                if not isinstance(expanded, Mapping):
                    raise ConfigExprError(f"**{v.source if isinstance(v, ConfigExpr) else v!r} is not a mapping")
                out.update(expanded)
            else:
                out[resolve_delayed(k, values)] = resolve_delayed(v, values)
        return out
    if isinstance(value, (list, tuple, set)):
        return type(value)(resolve_delayed(v, values) for v in value)
    return value
