"""The authoring API: ``FlowSpec``, ``@step``, ``self.next()``, ``current``.

A flow's steps run one task at a time inside :mod:`workbench.task`, which binds a task context to the
flow instance: artifacts of the inputs are loaded lazily on first access, and everything a step
assigns to ``self`` is saved when it returns.
"""

from __future__ import annotations

import sys
import types
from collections import namedtuple
from typing import Any, Callable, Iterator, Optional, TypeVar

from .decorators import DECORATOR_ATTR

# `current` and its helpers live in flow_current; re-exported here, where the runtime and tests import them
from .flow_current import Current as Current
from .flow_current import Parallel as Parallel
from .flow_current import current as current
from .flow_current import project_of as project_of
from .flow_current import vars_of_class as vars_of_class

StepFunction = TypeVar("StepFunction", bound=Callable[..., Any])


def step(func: StepFunction) -> StepFunction:
    """Mark a method of a FlowSpec as a step."""
    setattr(func, "is_step", True)  # noqa: B010  (a function's attributes are not declared on Callable)
    setattr(func, "name", getattr(func, "__name__", ""))  # noqa: B010
    if not hasattr(func, DECORATOR_ATTR):
        setattr(func, DECORATOR_ATTR, [])
    return func


# artifacts of these types that a step reads are kept on the instance, so in-place changes are saved
_MUTABLE_CONTAINERS = (list, dict, set, bytearray)


class CaughtException(Exception):
    """What @catch(var=...) stores, as Metaflow's MetaflowExceptionWrapper: ``type`` is the exception's
    ``module.ClassName`` (``builtins.KeyError``), ``exception`` its message, ``stacktrace`` the
    traceback. ``message`` and ``traceback`` are workbench's older names for the last two."""

    def __init__(self, type: str = "", message: str = "", traceback: Optional[str] = None):
        super().__init__()
        self.type = type
        self.exception = message
        self.stacktrace = traceback

    @classmethod
    def of(cls, exc: BaseException, traceback: Optional[str]) -> "CaughtException":
        from .exception import metaflow_type_name

        return cls(metaflow_type_name(type(exc)), str(exc), traceback)

    @property
    def message(self) -> str:
        return self.exception

    @property
    def traceback(self) -> Optional[str]:
        return self.stacktrace

    def __reduce__(self) -> tuple[type[CaughtException], tuple[()], dict[str, Any]]:
        return CaughtException, (), self.__dict__

    def __setstate__(self, state: Optional[dict[str, Any]]) -> None:
        self.__dict__.update(state or {})

    def __repr__(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return self.stacktrace or f"[no stacktrace]\n{self.type}: {self.exception}"


# FlowSpec's own names that are never a flow's constants (Metaflow's _NON_PARAMETERS)
_NOT_CONSTANTS = frozenset({"cmd", "foreach_stack", "index", "input", "script_name", "name"})


def flow_constants(flow_cls: type) -> dict[str, Any]:
    """The flow's class-level constants, its own and inherited: Metaflow saves them as artifacts of every
    task. Left out, as Metaflow leaves them out: names starting with ``_``, steps and other functions,
    properties and classes; and parameters, configs and whatever else workbench itself put on the class
    (their values reach the tasks their own way)."""
    found: dict[str, Any] = {}
    for name in dir(flow_cls):
        if name.startswith("_") or name in _NOT_CONSTANTS:
            continue
        value = getattr(flow_cls, name)
        if isinstance(value, (types.FunctionType, types.MethodType, property, type)):
            continue
        if type(value).__module__.split(".")[0] == "workbench" or getattr(value, "is_step", False):
            continue
        found[name] = value
    return found


ForeachFrame = namedtuple("ForeachFrame", ["step", "var", "num_splits", "index", "value"])


class GraphNodeView:
    """One step of the static graph, with Metaflow's field names."""

    def __init__(self, node: Any):
        self.name = node.name
        self.type = node.kind
        self.in_funcs = list(node.in_steps)
        self.out_funcs = list(node.out)
        self.foreach_param = node.foreach_var
        self.parallel_step = node.is_parallel  # a @parallel step (a gang's tasks)
        self.parallel_foreach = node.num_parallel is not None  # the step that starts a gang
        self.func_lineno = node.lineno


class GraphView:
    """``flow._graph``: steps by name, iterable in file order."""

    def __init__(self, graph: Any):
        self._nodes = {n.name: GraphNodeView(n) for n in graph}

    def __getitem__(self, name: str) -> GraphNodeView:
        return self._nodes[name]

    def __iter__(self) -> Iterator[GraphNodeView]:
        return iter(self._nodes.values())

    def __contains__(self, name: str) -> bool:
        return name in self._nodes


def _merge_error(kind: str, message: str, names: list[str]) -> Exception:
    """merge_artifacts' errors are Metaflow's exception types (so ``except`` clauses written for it work)."""
    from . import exception

    cls = (
        exception.UnhandledInMergeArtifactsException
        if kind == "unhandled"
        else exception.MissingInMergeArtifactsException
    )
    return cls(message, names)


class FlowSpec:
    """Base class of every flow. Subclass it and mark methods with ``@step``."""

    # names that live on the instance but are not artifacts
    _WB_INTERNAL = frozenset({"_wb_ctx"})

    def __init__(self, use_cli: bool = True):
        if use_cli:
            # `python flows/my_flow.py run --alpha 1`: Metaflow's command line (see workbench.cli.flow)
            from .flow_entry import run_flow_command_line

            module = sys.modules[type(self).__module__]
            path = getattr(module, "__file__", None) or sys.argv[0]
            sys.exit(run_flow_command_line(path, type(self), sys.argv[1:]))

    @property
    def name(self) -> str:
        """The flow's name (its class name), as Metaflow's ``flow.name``."""
        return type(self).__name__

    def __iter__(self) -> Iterator[Callable[..., Any]]:
        """The flow's steps, in the order they appear in the file (``step.name`` is each one's name)."""
        cls = type(self)
        steps = [getattr(cls, n) for n in dir(cls) if getattr(getattr(cls, n, None), "is_step", False)]
        return iter(sorted(steps, key=lambda f: getattr(getattr(f, "__code__", None), "co_firstlineno", 0)))

    @property
    def _current_step(self) -> Optional[str]:
        """The running step's name (Metaflow's ``self._current_step``)."""
        return current.step_name

    @property
    def _graph(self) -> "GraphView":
        """The flow's static graph, node fields named as Metaflow's: ``type``, ``in_funcs``, ``out_funcs``."""
        import inspect

        from .graph import build_graph

        graph = build_graph(inspect.getsourcefile(type(self)) or inspect.getfile(type(self)), type(self).__name__)
        return GraphView(graph)

    def __setattr__(self, name: str, value: Any) -> None:
        """A class-level value that is not a step or parameter is a constant of the flow (as in Metaflow)."""
        declared = getattr(type(self), name, None) if not name.startswith("_") else None
        if (
            declared is not None
            and name not in self.__dict__
            and not callable(declared)
            and not hasattr(declared, "__set__")
            and not isinstance(declared, property)
        ):
            raise AttributeError(f"{name} is a constant of {type(self).__name__} and cannot be assigned")
        super().__setattr__(name, value)

    # ---------------------------------------------------------------- artifacts
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_wb_ctx":
            raise AttributeError(name)
        ctx = self.__dict__.get("_wb_ctx")
        if ctx is not None and ctx.has_input_artifact(name):
            # other values are cached in the context, not on the instance: only read, they are passed on
            # by reference, not saved again
            value = ctx.load_input_artifact(name)
            if isinstance(value, _MUTABLE_CONTAINERS):
                # as in Metaflow, an artifact a step reads and changes in place is saved changed
                self.__dict__[name] = value
            return value
        raise AttributeError(f"{type(self).__name__} has no attribute or artifact {name!r}")

    def _wb_artifact(self, name: str) -> Any:
        if name in self.__dict__:
            return self.__dict__[name]
        return self.__getattr__(name)

    # ---------------------------------------------------------------- foreach
    @property
    def index(self) -> Optional[int]:
        ctx = self.__dict__.get("_wb_ctx")
        frames = ctx.foreach_stack if ctx else []
        return frames[-1]["index"] if frames else None

    @property
    def input(self) -> Any:
        ctx = self.__dict__.get("_wb_ctx")
        if ctx is None or not ctx.foreach_stack:
            return None
        return ctx.foreach_value(self, ctx.foreach_stack[-1])

    @property
    def _foreach_stack(self) -> list["ForeachFrame"]:
        """Metaflow's ``self._foreach_stack``: the enclosing foreach frames, outermost first."""
        ctx = self.__dict__.get("_wb_ctx")
        if ctx is None:
            return []
        return [
            ForeachFrame(f.get("step"), f.get("var"), f.get("num_splits"), f.get("index"), ctx.foreach_value(self, f))
            for f in ctx.foreach_stack
        ]

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        ctx = self.__dict__.get("_wb_ctx")
        if ctx is None:
            return []
        return [(f["index"], f["num_splits"], ctx.foreach_value(self, f)) for f in ctx.foreach_stack]

    # ---------------------------------------------------------------- transitions
    def next(
        self,
        *steps: Any,
        foreach: Optional[str] = None,
        num_parallel: Optional[int] = None,
        condition: Optional[str] = None,
    ) -> None:
        if condition is not None or (len(steps) == 1 and isinstance(steps[0], dict)):
            self._next_switch(steps, condition)
            return
        names = []
        for s in steps:
            name = getattr(s, "__name__", None)
            if name is None or not getattr(s, "is_step", False):
                raise TypeError(f"self.next() takes steps (self.<step>), got {s!r}")
            names.append(name)
        ctx = self.__dict__.get("_wb_ctx")
        if ctx is not None:
            ctx.record_transition(names, foreach)
            if num_parallel is not None:
                if not isinstance(num_parallel, int) or isinstance(num_parallel, bool) or num_parallel < 1:
                    raise ValueError(f"num_parallel must be a whole number of at least 1, not {num_parallel!r}")
                ctx.num_parallel = num_parallel

    def _next_switch(self, steps: tuple[Any, ...], condition: Optional[str]) -> None:
        """A switch: the value of ``self.<condition>`` picks one case; only that step runs next."""
        if len(steps) != 1 or not isinstance(steps[0], dict) or not steps[0]:
            raise TypeError("self.next() with condition= takes one non-empty dict of cases")
        if not isinstance(condition, str):
            raise TypeError('self.next() with a dict of cases needs condition="<artifact name>"')
        cases = steps[0]
        try:
            value = self._wb_artifact(condition)
        except AttributeError:
            raise AttributeError(f"switch condition self.{condition} is not set") from None
        try:
            chosen = cases[value]
        except (KeyError, TypeError):
            raise ValueError(
                f"switch condition self.{condition} has value {value!r}, which is none of the cases {list(cases)}"
            ) from None
        name = getattr(chosen, "__name__", None)
        if name is None or not getattr(chosen, "is_step", False):
            raise TypeError(f"switch case {value!r} must go to a step (self.<step>), got {chosen!r}")
        ctx = self.__dict__.get("_wb_ctx")
        if ctx is not None:
            ctx.record_transition([name], None, switch=True)

    # ---------------------------------------------------------------- joins
    def merge_artifacts(
        self, inputs: "Inputs", exclude: Optional[list[str]] = None, include: Optional[list[str]] = None
    ) -> None:
        """Copy artifacts that every input agrees on; conflicting ones must be set or excluded first."""
        if not isinstance(inputs, Inputs):
            from .exception import MetaflowException

            raise MetaflowException("merge_artifacts can only be called in a join step, with its inputs")
        excluded = set(exclude or [])
        included = set(include or [])
        if included and excluded:
            from .exception import MetaflowException

            raise MetaflowException("merge_artifacts takes include or exclude, not both")
        hashes: dict[str, set[str]] = {}
        owners: dict[str, Any] = {}
        for inp in inputs:
            for name, digest in inp._wb_refs.items():
                if name.startswith("_") or name in excluded or (included and name not in included):
                    continue
                hashes.setdefault(name, set()).add(digest)
                owners[name] = inp
        missing = included - set(hashes)
        if missing:
            raise _merge_error(
                "missing", f"merge_artifacts: no input has artifact(s) {', '.join(sorted(missing))}", sorted(missing)
            )
        conflicts = sorted(n for n, hs in hashes.items() if len(hs) > 1 and n not in self.__dict__)
        if conflicts:
            raise _merge_error(
                "unhandled",
                "merge_artifacts: inputs disagree on "
                + ", ".join(conflicts)
                + "; set them in the join step or pass exclude=[...]",
                conflicts,
            )
        ctx = self.__dict__["_wb_ctx"]
        for name, hs in hashes.items():
            if name in self.__dict__ or len(hs) > 1:
                continue
            ctx.adopt_artifact(name, next(iter(hs)))


class InputView:
    """One input of a join step: its artifacts, read lazily."""

    def __init__(
        self, step: str, refs: dict[str, str], loader: Callable[[str], Any], foreach_stack: list[dict[str, Any]]
    ):
        self._wb_step = step
        self._wb_refs = refs
        self._wb_loader = loader
        self._wb_foreach = foreach_stack
        self._wb_cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_wb"):
            raise AttributeError(name)
        if name in self._wb_cache:
            return self._wb_cache[name]
        if name not in self._wb_refs:
            raise AttributeError(f"input from step {self._wb_step} has no artifact {name!r}")
        value = self._wb_loader(self._wb_refs[name])
        self._wb_cache[name] = value
        return value

    @property
    def index(self) -> Optional[int]:
        return self._wb_foreach[-1]["index"] if self._wb_foreach else None

    @property
    def input(self) -> Any:
        if not self._wb_foreach:
            return None
        frame = self._wb_foreach[-1]
        seq = getattr(self, frame["var"])
        return seq[frame["index"]] if hasattr(seq, "__getitem__") else list(seq)[frame["index"]]

    def __repr__(self) -> str:
        return f"<input from {self._wb_step}>"


class Inputs:
    """The ``inputs`` of a join: iterate over them, index them, or name a branch: ``inputs.train``."""

    def __init__(self, views: list[InputView]):
        self._views = views

    def __iter__(self) -> Iterator[InputView]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)

    def __getitem__(self, i: int) -> InputView:
        return self._views[i]

    def __getattr__(self, name: str) -> InputView:
        if name.startswith("_"):
            raise AttributeError(name)
        for view in self._views:
            if view._wb_step == name:
                return view
        raise AttributeError(f"no input from step {name!r}")
