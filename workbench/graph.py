"""The static DAG of a flow, read from the flow file's AST. No user code is imported or run.

``build_graph(path)`` always returns a :class:`FlowGraph`; its ``errors`` list holds every problem
found (each a :class:`~workbench.errors.FlowError` naming file, line and step). ``load_graph(path)``
raises the first one. The TUI redraws from ``build_graph`` on every save; the runtime uses
``load_graph``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from .errors import FlowError


@dataclass(frozen=True)
class Unresolved:
    """A decorator or Parameter argument that is not a literal; its source text is kept for messages.

    ``from_config``: it names a Config (or calls config_expr), so its value is known when a run starts;
    :func:`workbench.config_values.bind_configs` replaces it then, and static checks take it as unknown."""

    source: str
    from_config: bool = False

    def __repr__(self) -> str:
        return self.source


@dataclass
class DecoratorSpec:
    name: str
    kwargs: dict[str, Any]
    lineno: int
    args: tuple[Any, ...] = ()


@dataclass
class ParameterSpec:
    attr: str
    name: str
    kind: str  # parameter | include_file
    default: Any = None
    type_name: Optional[str] = None
    help: str = ""
    required: bool = False
    lineno: int = 0
    has_default: bool = False
    is_text: bool = True
    separator: Optional[str] = None  # Parameter(separator=","): the value is split into a list of strings


@dataclass
class ConfigSpec:
    """``cfg = Config("cfg", ...)``: a configuration whose value is resolved before the run starts
    (:mod:`workbench.config_values`); its parser and defaults are read from the flow class itself."""

    attr: str
    name: str
    lineno: int = 0
    help: str = ""


@dataclass
class StepNode:
    name: str
    lineno: int
    num_args: int = 1
    out: list[str] = field(default_factory=list)
    foreach_var: Optional[str] = None
    next_lineno: Optional[int] = None
    decorators: list[DecoratorSpec] = field(default_factory=list)
    doc: str = ""
    kind: str = "linear"  # start | linear | split | foreach | join | end
    in_steps: list[str] = field(default_factory=list)
    split_stack: Optional[tuple[str, ...]] = None  # enclosing splits/foreaches, innermost last
    closes: Optional[str] = None  # for joins: the split or foreach this join closes
    joined_by: Optional[str] = None  # for splits/foreaches: the join that closes them
    switch_cases: dict[str, str] = field(default_factory=dict)  # switch: condition value -> step
    condition: Optional[str] = None  # switch: the artifact whose value picks the case
    num_parallel: Any = None  # self.next(self.x, num_parallel=N): a gang of N tasks of step x
    split_branch: Optional[str] = None  # the branch of the innermost enclosing split this step is on

    @property
    def is_join(self) -> bool:
        return self.kind == "join"

    @property
    def is_switch(self) -> bool:
        return self.kind == "switch"

    @property
    def is_recursive(self) -> bool:
        """A switch that can go back to itself (a loop; Metaflow allows no other kind)."""
        return self.name in self.switch_cases.values()

    @property
    def is_parallel(self) -> bool:
        """A step marked @parallel: it runs as a gang of num_parallel tasks started together."""
        return self.decorator("parallel") is not None

    def decorator(self, name: str) -> Optional[DecoratorSpec]:
        for deco in self.decorators:
            if deco.name == name:
                return deco
        return None


@dataclass
class FlowGraph:
    path: str
    name: Optional[str] = None
    lineno: int = 0
    steps: dict[str, StepNode] = field(default_factory=dict)
    parameters: list[ParameterSpec] = field(default_factory=list)
    configs: list[ConfigSpec] = field(default_factory=list)
    flow_decorators: list[DecoratorSpec] = field(default_factory=list)
    errors: list[FlowError] = field(default_factory=list)
    doc: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors

    def __getitem__(self, name: str) -> StepNode:
        return self.steps[name]

    def __iter__(self) -> Iterator[StepNode]:
        return iter(self.steps.values())

    def topological(self) -> list[str]:
        """Steps in an order where every step comes after all of its inputs (start first)."""
        order: list[str] = []
        seen: set[str] = set()
        for root in self.steps:
            # iterative depth-first walk over inputs (a 1,000-step chain must not exhaust the stack)
            stack: list[tuple[str, Iterator[str]]] = []
            on_path: set[str] = set()
            if root not in seen:
                stack.append((root, iter(self.steps[root].in_steps)))
                on_path.add(root)
            while stack:
                name, parents = stack[-1]
                parent = next(parents, None)
                if parent is None:
                    stack.pop()
                    on_path.discard(name)
                    seen.add(name)
                    order.append(name)
                elif parent in self.steps and parent not in seen and parent not in on_path:
                    stack.append((parent, iter(self.steps[parent].in_steps)))
                    on_path.add(parent)
        return order

    def descendants(self, name: str) -> set[str]:
        return _descendants(self.steps, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.name,
            "path": self.path,
            "line": self.lineno,
            "doc": self.doc,
            "parameters": [
                {
                    "name": p.name,
                    "attr": p.attr,
                    "kind": p.kind,
                    "type": p.type_name,
                    "default": _jsonable(p.default),
                    "required": p.required,
                    "help": p.help,
                    "line": p.lineno,
                }
                for p in self.parameters
            ],
            "steps": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "line": s.lineno,
                    "next": s.out,
                    "foreach": s.foreach_var,
                    "inputs": s.in_steps,
                    "closes": s.closes,
                    "joined_by": s.joined_by,
                    "doc": s.doc,
                    "switch": dict(s.switch_cases) or None,
                    "condition": s.condition,
                    "num_parallel": _jsonable(s.num_parallel),
                    "decorators": [
                        {"name": d.name, "args": _jsonable(d.kwargs), "line": d.lineno} for d in s.decorators
                    ],
                }
                for s in self.steps.values()
            ],
            "errors": [str(e) for e in self.errors],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Unresolved):
        return value.source
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


# --------------------------------------------------------------------------------------------- parsing


def split_flow_ref(ref: str) -> tuple[str, Optional[str]]:
    """``flows/x.py:MyFlow`` -> (``flows/x.py``, ``MyFlow``)."""
    path, sep, cls = str(ref).rpartition(":")
    if sep and cls.isidentifier() and path.endswith(".py"):
        return path, cls
    return str(ref), None


def build_graph(path: str | Path, class_name: Optional[str] = None, source: Optional[str | bytes] = None) -> FlowGraph:
    """Parse and validate a flow file. Never raises for a bad flow: problems land in ``errors``."""
    path = str(path)
    if class_name is None:
        path, class_name = split_flow_ref(path)
    graph = FlowGraph(path=path)
    if source is None:
        try:
            source = Path(path).read_bytes()  # bytes: Python's own rules for a BOM and coding cookies apply
        except FileNotFoundError:
            graph.errors.append(FlowError("no such flow file", path=path))
            return graph
        except OSError as exc:
            graph.errors.append(FlowError(f"cannot read flow file: {exc.strerror or exc}", path=path))
            return graph
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        message = f"syntax error: {_one_line(exc.msg)}"
        if "codec can't decode" in message:  # Python's own wording is about positions in a buffer
            message = (
                "not UTF-8: a byte cannot be decoded (save the file as UTF-8, or declare its encoding "
                "with a '# -*- coding: ... -*-' line)"
            )
        graph.errors.append(FlowError(message, path=path, line=exc.lineno))
        return graph
    except ValueError as exc:  # null bytes (Python 3.11 raises ValueError, later versions SyntaxError)
        graph.errors.append(FlowError(f"syntax error: {_one_line(str(exc))}", path=path))
        return graph
    except (RecursionError, MemoryError):
        graph.errors.append(FlowError("an expression is nested too deeply for Python to parse", path=path))
        return graph
    try:
        from .graph_parser import FlowParser  # it imports this module's data model

        FlowParser(graph, tree).parse(class_name)
        if not graph.errors:
            from .graph_validation import validate

            validate(graph)
    except RecursionError:  # a last resort: the walks above are iterative, the stdlib's ast helpers are not
        graph.errors.append(FlowError("the flow file nests too deeply to read", path=path, line=graph.lineno or None))
    return graph


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def load_graph(path: str | Path, class_name: Optional[str] = None) -> FlowGraph:
    """Parse and validate a flow file, raising the first :class:`FlowError`."""
    graph = build_graph(path, class_name)
    if graph.errors:
        raise graph.errors[0]
    return graph


def is_flow_file(path: str | Path) -> bool:
    """Cheap test used when scanning a directory: does the file mention a FlowSpec subclass?

    Bytes, not text: a file that is not UTF-8 still shows up, so `check` reports it instead of
    silently skipping it."""
    try:
        return b"FlowSpec" in Path(path).read_bytes()
    except OSError:
        return False


def find_flow_files(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.rglob("*.py")
        if not any(part.startswith((".", "__")) for part in p.relative_to(directory).parts) and is_flow_file(p)
    )


def _descendants(steps: dict[str, StepNode], name: str) -> set[str]:
    out, todo = set(), [name]
    while todo:
        for nxt in steps[todo.pop()].out:
            if nxt in steps and nxt not in out:
                out.add(nxt)
                todo.append(nxt)
    return out
