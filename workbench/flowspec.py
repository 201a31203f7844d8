"""The authoring API: ``FlowSpec``, ``@step``, ``self.next()``, ``current``.

A flow's steps run one task at a time inside :mod:`workbench.task`, which binds a task context to the
flow instance: artifacts of the inputs are loaded lazily on first access, and everything a step
assigns to ``self`` is saved when it returns.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterator, Optional

from .decorators import DECORATOR_ATTR


def step(func: Callable) -> Callable:
    """Mark a method of a FlowSpec as a step."""
    func.is_step = True
    if not hasattr(func, DECORATOR_ATTR):
        setattr(func, DECORATOR_ATTR, [])
    return func


class Current:
    """What the running task is: ``from workbench import current; current.run_id``."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.flow_name: Optional[str] = None
        self.run_id: Optional[str] = None
        self.step_name: Optional[str] = None
        self.task_id: Optional[str] = None
        self.retry_count: int = 0
        self.origin_run_id: Optional[str] = None
        self.namespace: Optional[str] = None
        self.username: Optional[str] = None
        self.is_running_flow: bool = False

    @property
    def pathspec(self) -> Optional[str]:
        if not self.is_running_flow:
            return None
        return f"{self.flow_name}/{self.run_id}/{self.step_name}/{self.task_id}"

    def _bind(self, **values: Any) -> None:
        for k, v in values.items():
            setattr(self, k, v)
        self.is_running_flow = True


current = Current()


class CaughtException:
    """What @catch(var=...) stores: the exception's type, message and traceback (always picklable)."""

    def __init__(self, type: str, message: str, traceback: str):
        self.type = type
        self.message = message
        self.traceback = traceback

    def __repr__(self) -> str:
        return f"{self.type}({self.message!r})"

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


class MergeArtifactsError(Exception):
    """merge_artifacts found an artifact with different values in different inputs."""


class FlowSpec:
    """Base class of every flow. Subclass it and mark methods with ``@step``."""

    # names that live on the instance but are not artifacts
    _WB_INTERNAL = frozenset({"_wb_ctx"})

    def __init__(self, use_cli: bool = True):
        if use_cli:
            # `python flows/my_flow.py run --alpha 1`: Metaflow's command line (see workbench.flow_cli)
            from .flow_cli import main
            module = sys.modules[type(self).__module__]
            path = getattr(module, "__file__", None) or sys.argv[0]
            sys.exit(main(path, type(self), sys.argv[1:]))

    # ---------------------------------------------------------------- artifacts
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_wb_ctx":
            raise AttributeError(name)
        ctx = self.__dict__.get("_wb_ctx")
        if ctx is not None and ctx.has_input_artifact(name):
            # cached in the context, not on the instance: an artifact that is only read is passed on by
            # reference, not saved again (as in Metaflow, mutate-in-place without assigning is not saved)
            return ctx.load_input_artifact(name)
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
        frames = ctx.foreach_stack if ctx else []
        if not frames:
            return None
        return ctx.foreach_value(self, frames[-1])

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        ctx = self.__dict__.get("_wb_ctx")
        frames = ctx.foreach_stack if ctx else []
        return [(f["index"], f["num_splits"], ctx.foreach_value(self, f)) for f in frames]

    # ---------------------------------------------------------------- transitions
    def next(self, *steps: Callable, foreach: Optional[str] = None, num_parallel: Optional[int] = None) -> None:
        names = []
        for s in steps:
            name = getattr(s, "__name__", None)
            if name is None or not getattr(s, "is_step", False):
                raise TypeError(f"self.next() takes steps (self.<step>), got {s!r}")
            names.append(name)
        ctx = self.__dict__.get("_wb_ctx")
        if ctx is not None:
            ctx.record_transition(names, foreach)

    # ---------------------------------------------------------------- joins
    def merge_artifacts(self, inputs: "Inputs", exclude: Optional[list[str]] = None,
                        include: Optional[list[str]] = None) -> None:
        """Copy artifacts that every input agrees on; conflicting ones must be set or excluded first."""
        exclude = set(exclude or [])
        include = set(include or [])
        if include and exclude:
            raise ValueError("merge_artifacts takes include or exclude, not both")
        hashes: dict[str, set[str]] = {}
        owners: dict[str, Any] = {}
        for inp in inputs:
            for name, digest in inp._wb_refs.items():
                if name.startswith("_") or name in exclude or (include and name not in include):
                    continue
                hashes.setdefault(name, set()).add(digest)
                owners[name] = inp
        missing = include - set(hashes)
        if missing:
            raise MergeArtifactsError(f"merge_artifacts: no input has artifact(s) {', '.join(sorted(missing))}")
        conflicts = sorted(n for n, hs in hashes.items() if len(hs) > 1 and n not in self.__dict__)
        if conflicts:
            raise MergeArtifactsError(
                "merge_artifacts: inputs disagree on " + ", ".join(conflicts)
                + "; set them in the join step or pass exclude=[...]")
        ctx = self.__dict__["_wb_ctx"]
        for name, hs in hashes.items():
            if name in self.__dict__ or len(hs) > 1:
                continue
            ctx.adopt_artifact(name, next(iter(hs)))


class InputView:
    """One input of a join step: its artifacts, read lazily."""

    def __init__(self, step: str, refs: dict[str, str], loader: Callable[[str], Any], foreach_stack: list):
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
