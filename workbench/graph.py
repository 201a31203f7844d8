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

FLOWSPEC_BASES = {"FlowSpec"}
PARAMETER_CALLS = {"Parameter": "parameter", "IncludeFile": "include_file"}


@dataclass(frozen=True)
class Unresolved:
    """A decorator or Parameter argument that is not a literal; its source text is kept for messages."""

    source: str

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
        _Parser(graph, tree).parse(class_name)
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


class _Parser:
    def __init__(self, graph: FlowGraph, tree: ast.Module):
        self.graph = graph
        self.tree = tree
        self.constants: dict[str, Any] = {}

    def error(self, message: str, line: Optional[int]) -> None:
        self.graph.errors.append(FlowError(message, path=self.graph.path, line=line))

    def parse(self, class_name: Optional[str]) -> None:
        classes = {}
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                try:
                    self.constants[node.targets[0].id] = ast.literal_eval(node.value)
                except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
                    pass
            elif isinstance(node, ast.ClassDef):
                classes[node.name] = node
        cycle = _base_cycle(classes)
        if cycle:
            chain = " -> ".join(c.name for c in cycle)
            self.error(f"class {cycle[0].name} derives from itself ({chain}); Python cannot define it", cycle[0].lineno)
            return
        flows = [c for c in classes.values() if self._is_flow(c, classes, set())]
        if class_name:
            chosen = [c for c in flows if c.name == class_name]
            if not chosen:
                names = ", ".join(c.name for c in flows) or "none"
                self.error(f"no FlowSpec class named {class_name} (flows in this file: {names})", None)
                return
            cls = chosen[0]
        else:
            # A class that other flow classes in the file derive from is a base, not the flow.
            bases = {b for c in flows for b in _base_names(c)}
            leaves = [c for c in flows if c.name not in bases]
            if not flows:
                self.error("no class deriving from FlowSpec in this file", None)
                return
            if len(leaves) > 1:
                listed = ", ".join(f"{c.name} (line {c.lineno})" for c in leaves)
                self.error(
                    f"{len(leaves)} FlowSpec classes: {listed}; pick one with {self.graph.path}:{leaves[0].name}",
                    leaves[1].lineno,
                )
                return
            cls = leaves[0]
        self.graph.name = cls.name
        self.graph.lineno = cls.lineno
        self.graph.doc = ast.get_docstring(cls) or ""
        self.graph.flow_decorators = [d for d in (self._decorator(x) for x in cls.decorator_list) if d]
        for klass in self._mro(cls, classes):
            self._read_class_body(klass)

    def _is_flow(self, cls: ast.ClassDef, classes: dict[str, ast.ClassDef], seen: set[str]) -> bool:
        """Does ``cls`` derive from FlowSpec, directly or through classes in this file?"""
        todo = [cls]
        while todo:
            for base in _base_names(todo.pop()):
                if base in FLOWSPEC_BASES:
                    return True
                if base in classes and base not in seen:
                    seen.add(base)
                    todo.append(classes[base])
        return False

    def _mro(self, cls: ast.ClassDef, classes: dict[str, ast.ClassDef]) -> list[ast.ClassDef]:
        """Base classes defined in this file first, so a subclass's steps override its bases'.

        A post-order walk without recursion; the bases are acyclic (checked by ``_base_cycle``)."""
        out: list[ast.ClassDef] = []
        stack = [(cls, iter(_base_names(cls)))]
        while stack:
            klass, bases = stack[-1]
            base = next(bases, None)
            if base is None:
                stack.pop()
                if klass not in out:
                    out.append(klass)
            elif base in classes and classes[base] not in out and all(classes[base] is not k for k, _ in stack):
                stack.append((classes[base], iter(_base_names(classes[base]))))
        return out

    def _read_class_body(self, cls: ast.ClassDef) -> None:
        for node in cls.body:
            if isinstance(node, ast.FunctionDef):
                decos = [self._decorator(d) for d in node.decorator_list]
                if not any(d and d.name == "step" for d in decos):
                    continue
                step = StepNode(
                    name=node.name,
                    lineno=node.lineno,
                    num_args=len(node.args.args) + len(node.args.posonlyargs),
                    decorators=[d for d in decos if d and d.name != "step"],
                    doc=ast.get_docstring(node) or "",
                )
                self._read_transition(step, node)
                self.graph.steps.pop(node.name, None)
                self.graph.steps[node.name] = step
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                kind = PARAMETER_CALLS.get(_call_name(node.value.func) or "")
                if kind and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    self._read_parameter(node.targets[0].id, kind, node.value)

    def _literal(self, node: ast.AST) -> Any:
        try:
            return ast.literal_eval(node)
        except (ValueError, SyntaxError, TypeError):
            pass
        except (RecursionError, MemoryError):
            return Unresolved(f"<expression nested too deeply, line {getattr(node, 'lineno', '?')}>")
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.constants[node.id]
        try:
            return Unresolved(ast.unparse(node))
        except (RecursionError, MemoryError):
            return Unresolved(f"<expression nested too deeply, line {getattr(node, 'lineno', '?')}>")

    def _decorator(self, node: ast.expr) -> Optional[DecoratorSpec]:
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            if not name:
                return None
            kwargs = {kw.arg: self._literal(kw.value) for kw in node.keywords if kw.arg}
            args = tuple(self._literal(a) for a in node.args)
            return DecoratorSpec(name=name, kwargs=kwargs, lineno=node.lineno, args=args)
        name = _call_name(node)
        return DecoratorSpec(name=name, kwargs={}, lineno=node.lineno) if name else None

    def _read_parameter(self, attr: str, kind: str, call: ast.Call) -> None:
        kwargs = {kw.arg: kw.value for kw in call.keywords if kw.arg}
        name_node = call.args[0] if call.args else kwargs.get("name")
        name = self._literal(name_node) if name_node is not None else attr
        if not isinstance(name, str):
            self.error(f"parameter {attr}: its name must be a string literal", call.lineno)
            return
        spec = ParameterSpec(attr=attr, name=name, kind=kind, lineno=call.lineno)
        if "default" in kwargs:
            spec.default = self._literal(kwargs["default"])
            spec.has_default = True
        if "type" in kwargs:
            t = kwargs["type"]
            spec.type_name = _call_name(t) or ast.unparse(t)
        if "help" in kwargs:
            spec.help = str(self._literal(kwargs["help"]))
        if "required" in kwargs:
            spec.required = bool(self._literal(kwargs["required"]))
        if "is_text" in kwargs:
            spec.is_text = bool(self._literal(kwargs["is_text"]))
        self.graph.parameters = [p for p in self.graph.parameters if p.attr != attr] + [spec]

    def _read_transition(self, step: StepNode, func: ast.FunctionDef) -> None:
        calls = [n for n in ast.walk(func) if isinstance(n, ast.Call) and _is_self_next(n)]
        tail = func.body[-1] if func.body else None
        if not (isinstance(tail, ast.Expr) and isinstance(tail.value, ast.Call) and _is_self_next(tail.value)):
            if calls:
                self.error(f"step {step.name}: self.next() must be the last line of the step", calls[0].lineno)
                step.next_lineno = -1  # mark: has a transition, but in the wrong place
            return
        call = tail.value
        step.next_lineno = call.lineno
        if call.args and isinstance(call.args[0], ast.Dict):
            self._read_switch(step, call)
            return
        for arg in call.args:
            if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "self":
                step.out.append(arg.attr)
            else:
                self.error(
                    f"step {step.name}: self.next() takes steps as self.<step>, not {ast.unparse(arg)}", call.lineno
                )
        for kw in call.keywords:
            if kw.arg == "foreach":
                value = self._literal(kw.value)
                if not isinstance(value, str):
                    self.error(
                        f'step {step.name}: foreach= must name an artifact as a string, e.g. foreach="items"',
                        call.lineno,
                    )
                else:
                    step.foreach_var = value
            elif kw.arg == "num_parallel":
                step.num_parallel = self._literal(kw.value)
            else:
                self.error(f"step {step.name}: self.next() has no argument {kw.arg}=", call.lineno)
        if step.foreach_var is not None and step.num_parallel is not None:
            self.error(f"step {step.name}: self.next() takes foreach= or num_parallel=, not both", call.lineno)

    def _read_switch(self, step: StepNode, call: ast.Call) -> None:
        """``self.next({"a": self.a, "b": self.b}, condition="attr")``: only the case named by the value
        of ``self.attr`` runs (Metaflow's split-switch). Keys must be literals, values self.<step>."""
        where = f"step {step.name}: a switch"
        if len(call.args) != 1:
            self.error(f"{where} takes one dict of cases, then condition=", call.lineno)
            return
        cases: dict[str, str] = {}
        table = call.args[0]
        assert isinstance(table, ast.Dict)  # the caller checked: a switch's cases are a dict literal
        for key, value in zip(table.keys, table.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, (str, int, float, bool)):
                case = str(key.value)
            else:
                shown = "**" if key is None else ast.unparse(key)
                self.error(f"{where}'s keys must be string or number literals, not {shown}", call.lineno)
                return
            if not (
                isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id == "self"
            ):
                self.error(f"{where} goes to steps as self.<step>, not {ast.unparse(value)}", call.lineno)
                return
            if case in cases:
                self.error(f"{where} lists case {case!r} twice", call.lineno)
                return
            cases[case] = value.attr
        condition = None
        for kw in call.keywords:
            if kw.arg == "condition":
                condition = self._literal(kw.value)
            else:
                self.error(f"{where} takes condition= only, not {kw.arg}=", call.lineno)
                return
        if not isinstance(condition, str) or not condition.isidentifier():
            self.error(
                f'{where} needs condition="<artifact name>" naming the artifact that picks the case', call.lineno
            )
            return
        step.switch_cases, step.condition = cases, condition
        step.out = list(dict.fromkeys(cases.values()))


def _call_name(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _base_names(cls: ast.ClassDef) -> list[str]:
    return [n for n in (_call_name(b) for b in cls.bases) if n]


def _base_cycle(classes: dict[str, ast.ClassDef]) -> Optional[list[ast.ClassDef]]:
    """A chain of classes in the file whose bases lead back to its first one (``class A(B)``, ``class
    B(A)``), or None. Python cannot define such classes; walking their bases would never end."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in classes:
        if root in state:
            continue
        path = [root]
        stack = [iter(_base_names(classes[root]))]
        state[root] = 1
        while stack:
            base = next(stack[-1], None)
            if base is None:
                state[path.pop()] = 2
                stack.pop()
            elif base in classes and state.get(base) == 1:
                cycle = path[path.index(base) :]
                return [classes[n] for n in cycle + [base]]
            elif base in classes and base not in state:
                state[base] = 1
                path.append(base)
                stack.append(iter(_base_names(classes[base])))
    return None


def _is_self_next(call: ast.Call) -> bool:
    f = call.func
    return isinstance(f, ast.Attribute) and f.attr == "next" and isinstance(f.value, ast.Name) and f.value.id == "self"


def _descendants(steps: dict[str, StepNode], name: str) -> set[str]:
    out, todo = set(), [name]
    while todo:
        for nxt in steps[todo.pop()].out:
            if nxt in steps and nxt not in out:
                out.add(nxt)
                todo.append(nxt)
    return out
