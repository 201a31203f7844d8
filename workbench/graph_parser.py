"""Reading a flow file's AST into a :class:`~workbench.graph.FlowGraph`: the flow class and its bases,
steps and their ``self.next()`` transitions (including switches), decorators and Parameters.

Split from ``graph.py`` (the graph's data model and entry points), which calls :class:`FlowParser` from
``build_graph``; ``graph_validation.py`` then checks the shape. No user code is imported or run.
"""

from __future__ import annotations

import ast
from typing import Any, Optional

from .errors import FlowError
from .graph import ConfigSpec, DecoratorSpec, FlowGraph, ParameterSpec, StepNode, Unresolved

FLOWSPEC_BASES = {"FlowSpec"}
PARAMETER_CALLS = {"Parameter": "parameter", "IncludeFile": "include_file", "Config": "config"}
UNPACKED_PREFIX = "**"  # a decorator's ``**mapping`` argument is kept as kwargs["**<source>"] = Unresolved


class FlowParser:
    """Reads one flow class from a parsed flow file into a :class:`FlowGraph`: its steps, transitions,
    decorators and parameters. Literal arguments are evaluated with ``ast.literal_eval``; anything else
    is kept as :class:`Unresolved` source text. Problems are appended to ``graph.errors``."""

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
        if self.graph.configs:
            self._mark_config_dependent()

    def _mark_config_dependent(self) -> None:
        """Flag the arguments and defaults that name a Config (``cfg.a``, ``**cfg``, ``config_expr(...)``)."""
        names = {c.attr for c in self.graph.configs} | {c.name for c in self.graph.configs} | {"config_expr"}

        def mark(value: Any) -> Any:
            if isinstance(value, Unresolved) and mentions_names(value.source, names):
                return Unresolved(value.source, from_config=True)
            return value

        decorators = list(self.graph.flow_decorators)
        for step in self.graph.steps.values():
            decorators.extend(step.decorators)
        for deco in decorators:
            deco.kwargs = {k: mark(v) for k, v in deco.kwargs.items()}
            deco.args = tuple(mark(a) for a in deco.args)
        for param in self.graph.parameters:
            param.default = mark(param.default)

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
            kwargs: dict[str, Any] = {}
            for kw in node.keywords:
                value = self._literal(kw.value)
                if kw.arg:
                    kwargs[kw.arg] = value
                elif isinstance(value, dict) and all(isinstance(k, str) for k in value):
                    kwargs.update(value)  # **{"a": 1}: the literal's items
                else:  # **cfg: kept whole, expanded once configs are resolved (workbench.config_values)
                    source = value.source if isinstance(value, Unresolved) else repr(value)
                    kwargs[UNPACKED_PREFIX + source] = value if isinstance(value, Unresolved) else Unresolved(source)
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
        if kind == "config":
            given = [k for k in ("default", "default_value") if k in kwargs and self._literal(kwargs[k]) is not None]
            if len(given) == 2:
                self.error(f"config {name}: give default= (a file) or default_value= (a value), not both", call.lineno)
                return
            help_text = self._literal(kwargs["help"]) if "help" in kwargs else ""
            config = ConfigSpec(attr=attr, name=name, lineno=call.lineno, help=str(help_text or ""))
            self.graph.configs = [c for c in self.graph.configs if c.attr != attr] + [config]
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
        if "separator" in kwargs:
            separator = self._literal(kwargs["separator"])
            if separator is not None and (not isinstance(separator, str) or not separator):
                self.error(f"parameter {name}: separator= must be a non-empty string, not {separator!r}", call.lineno)
                return
            default_is_text = not spec.has_default or isinstance(spec.default, (str, Unresolved, type(None)))
            if separator and (spec.type_name not in (None, "str") or not default_is_text):
                self.error(f"parameter {name}: separator= works with string parameters only", call.lineno)
                return
            spec.separator = separator
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


def mentions_names(source: str, names: set[str]) -> bool:
    """Does the expression ``source`` use any of ``names`` as a variable?"""
    try:
        tree = ast.parse(source, mode="eval")
        return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(tree))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


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
