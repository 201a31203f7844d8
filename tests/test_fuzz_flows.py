"""Property-based fuzzing of flow files: `workbench check` and `show` and the graph loader never show a
traceback, whatever the file holds.

Inputs are mutations of the example and test flows (odd decorator arguments, swapped tokens, deleted
lines, a BOM, bytes that are not UTF-8) and generated flows (random DAG shapes, 1,000-step chains,
deeply nested expressions, cyclic class bases). Hypothesis runs derandomized, so CI sees the same
cases every time; ``WORKBENCH_FUZZ_EXAMPLES`` raises the count for a longer local hunt.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.decorators import STEP_DECORATORS
from workbench.graph import build_graph

from .support.fuzz_cli import assert_user_facing, project, run_cli

REPO = Path(__file__).resolve().parents[1]
SEEDS = [p.read_text(encoding="utf-8") for p in sorted((REPO / "flows").glob("*.py"))] + [
    p.read_text(encoding="utf-8") for p in sorted((REPO / "tests" / "flows").glob("*.py"))
]
EXAMPLES = int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)

DECORATORS = [
    "resources",
    "batch",
    "kubernetes",
    "docker",
    "timeout",
    "retry",
    "catch",
    "environment",
    "card",
    "project",
    "step",
    "nosuch",
]
ARG_NAMES = [
    "cpu",
    "memory",
    "gpu",
    "disk",
    "shared_memory",
    "image",
    "queue",
    "namespace",
    "seconds",
    "minutes",
    "hours",
    "times",
    "minutes_between_retries",
    "var",
    "print_exception",
    "vars",
    "tolerations",
    "node_selector",
    "bogus",
]
ODD_VALUES = [
    "1e999",
    "-1e999",
    "float('nan')",
    "1e308*10",
    "10**400",
    "-1",
    "0",
    "0.5",
    "True",
    "None",
    "'x'",
    "''",
    "'16Q'",
    "'-5G'",
    "'1e999G'",
    "'nanG'",
    "'infm'",
    "'12'",
    "[]",
    "{}",
    "[1, 2]",
    "{'A': 1}",
    "{1: None}",
    "(1,)",
    "1j",
    "b'x'",
    "...",
    "lambda: 1",
    "os.environ",
    "x.y.z",
    "f'{x}'",
    "1",
    "16000",
    "'16G'",
    "'2h'",
    "{'A': {'B': 1}}",
    "'\\x00'",
    "3",
    "-0.0",
]
TOKENS = [
    "self",
    "(",
    ")",
    ":",
    ",",
    ".",
    "def",
    "class",
    "FlowSpec",
    "@step",
    "inputs",
    "next",
    "self.next(self.end)",
    "foreach=",
    "'items'",
    "\n",
    "    ",
    "\t",
    "pass",
    "return",
    "=",
    "*",
    "lambda",
    "start",
    "end",
    "import",
    "\\",
    "#",
    "'''",
    "@",
    "yield",
    "async",
    "(FlowSpec)",
]


@st.composite
def odd_decorator(draw) -> str:
    """A step decorator with odd arguments, mostly ones it takes (so the value, not the name, is odd)."""
    name = draw(st.sampled_from(DECORATORS))
    if draw(st.integers(0, 5)) == 0:
        return f"@{name}"
    own = sorted(STEP_DECORATORS.get(name, {})) or ARG_NAMES
    names = st.one_of(st.sampled_from(own), st.sampled_from(own), st.sampled_from(ARG_NAMES))
    kwargs = draw(st.lists(st.tuples(names, st.sampled_from(ODD_VALUES)), max_size=3, unique_by=lambda kv: kv[0]))
    positional = draw(st.lists(st.sampled_from(ODD_VALUES), max_size=1)) if draw(st.integers(0, 4)) == 0 else []
    return f"@{name}({', '.join(positional + [f'{k}={v}' for k, v in kwargs])})"


@st.composite
def mutated_seed(draw) -> bytes:
    """An example or test flow with a few mutations applied."""
    lines = draw(st.sampled_from(SEEDS)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["decorate", "decorate", "token", "delete", "duplicate", "indent"]))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if not lines:
            break
        if kind == "decorate":
            steps = [n for n, ln in enumerate(lines) if ln.strip() == "@step"]
            at = draw(st.sampled_from(steps)) if steps else i
            indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
            lines.insert(at, indent + draw(odd_decorator()))
        elif kind == "token":
            words = lines[i].split(" ")
            j = draw(st.integers(0, len(words) - 1))
            words[j] = draw(st.sampled_from(TOKENS))
            lines[i] = " ".join(words)
        elif kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        else:
            lines[i] = draw(st.sampled_from(["", " ", "    ", "\t"])) + lines[i]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    return draw(_byte_damage(data))


def _byte_damage(data: bytes) -> st.SearchStrategy[bytes]:
    """Mostly the bytes as they are; sometimes a BOM in front or bytes that are not UTF-8 inside."""

    def damage(kind: str, at: int, junk: bytes) -> bytes:
        at = at % (len(data) + 1)
        if kind == "bom":
            return b"\xef\xbb\xbf" + data
        if kind == "junk":
            return data[:at] + junk + data[at:]
        if kind == "nul":
            return data[:at] + b"\x00" + data[at:]
        return data

    return st.builds(
        damage,
        st.sampled_from(["none"] * 9 + ["bom", "junk", "nul"]),
        st.integers(0, 10**6),
        st.sampled_from([b"\xff", b"\xc3\x28", b"\x80abc", b"\xed\xa0\x80"]),
    )


PARAMETERS = [
    "Parameter(1)",
    'Parameter("x", type=1)',
    "Parameter()",
    "Parameter(name=None)",
    'Parameter("x", default=1e999, type=float)',
    'Parameter("x", required=[], help={})',
    'IncludeFile("f", default=b"x", is_text=lambda: 1)',
    'Parameter("a b")',
    'Parameter("start")',
    'Parameter("x", default=float("nan"))',
    "Parameter(*a)",
    "Parameter(**k)",
    'Parameter("")',
    'Parameter("x", default={1: {2: set()}})',
    'Parameter("x", default=b"\\xff")',
    'Parameter("--x")',
]


def _step(name: str, body: str, decorators: tuple = (), args: str = "self") -> str:
    decos = "".join(f"    {d}\n" for d in decorators)
    return f"{decos}    @step\n    def {name}({args}):\n        {body}\n\n"


@st.composite
def random_dag(draw) -> bytes:
    """A flow with random transitions: splits, foreaches, joins, cycles and dangling targets."""
    n = draw(st.integers(2, 8))
    names = ["start"] + [f"s{i}" for i in range(1, n - 1)] + ["end"]
    pool = names + ["missing"]
    out = "from workbench import *\n\nclass RandomFlow(FlowSpec):\n"
    for i, param in enumerate(draw(st.lists(st.sampled_from(PARAMETERS), max_size=2))):
        out += f"    p{i} = {param}\n"
    for name in names:
        join = draw(st.booleans()) and name != "start"
        targets = draw(st.lists(st.sampled_from(pool), min_size=0 if name == "end" else 1, max_size=3))
        foreach = ", foreach='items'" if targets and draw(st.integers(0, 4)) == 0 else ""
        body = f"self.next({', '.join('self.' + t for t in targets)}{foreach})" if targets else "pass"
        if name != "start" and foreach == "" and draw(st.integers(0, 5)) == 0:
            body = "self.items = [1]\n        " + body
        decos = tuple(draw(st.lists(odd_decorator(), max_size=2)))
        out += _step(name, body, decos, "self, inputs" if join else "self")
    return out.encode()


def chain(length: int) -> bytes:
    """start -> s1 -> ... -> end, ``length`` steps in all."""
    names = ["start"] + [f"s{i}" for i in range(1, length - 1)] + ["end"]
    out = "from workbench import FlowSpec, step\n\nclass ChainFlow(FlowSpec):\n"
    for a, b in zip(names, names[1:], strict=False):  # consecutive pairs
        out += _step(a, f"self.next(self.{b})")
    return (out + _step("end", "pass")).encode()


def deep_expression(kind: str, depth: int) -> bytes:
    expr = {
        "parens": "(" * depth + "1" + ")" * depth,
        "lists": "[" * depth + "]" * depth,
        "sum": "+".join(["1"] * depth),
        "unary": "-" * depth + "1",
        "not": "not " * depth + "x",
        "attr": "x" + ".a" * depth,
        "dict": "{'a': " * depth + "1" + "}" * depth,
    }[kind]
    return (
        f"from workbench import FlowSpec, step, resources\n\nX = {expr}\n\nclass DeepFlow(FlowSpec):\n"
        + _step("start", "self.next(self.end)", (f"@resources(memory={expr})",))
        + _step("end", "pass")
    ).encode()


def cyclic_bases(shape: str) -> bytes:
    classes = {
        "pair": "class A(B, FlowSpec):\n    pass\n\nclass B(A):\n    pass\n",
        "self": "class A(A, FlowSpec):\n    pass\n",
        "triangle": "class A(C):\n    pass\n\nclass B(A):\n    pass\n\nclass C(B, FlowSpec):\n    pass\n",
        "leaf": "class Base(Base2):\n    pass\n\nclass Base2(Base, FlowSpec):\n    pass\n\nclass Leaf(Base):\n"
        + _step("start", "self.next(self.end)")
        + _step("end", "pass"),
    }[shape]
    return f"from workbench import FlowSpec, step\n\n{classes}".encode()


generated = st.one_of(
    random_dag(),
    st.builds(chain, st.sampled_from([1, 2, 3, 1000, 1200])),
    st.builds(
        deep_expression,
        st.sampled_from(["parens", "lists", "sum", "unary", "not", "attr", "dict"]),
        st.sampled_from([5, 100, 300, 1000, 5000, 100000]),
    ),
    st.builds(cyclic_bases, st.sampled_from(["pair", "self", "triangle", "leaf"])),
    st.binary(max_size=200),
    st.lists(st.sampled_from(TOKENS), max_size=30).map(lambda t: " ".join(t).encode()),
)
flow_files = st.one_of(mutated_seed(), generated, generated.flatmap(_byte_damage))


def _check_flow(data: bytes) -> None:
    with project(flow=data) as root:
        path = root / "flows" / "fuzzed.py"
        graph = build_graph(path)  # the TUI's loader: never raises
        assert all(str(path) in str(e) for e in graph.errors), graph.errors
        whole = run_cli("check")  # the project's flows directory: the file is found by scanning
        assert_user_facing(whole, "fuzzed.py")
        checked = run_cli("check", "flows/fuzzed.py")
        assert_user_facing(checked, "fuzzed.py")
        assert all(ln.startswith(("error ", "ok ")) for ln in checked.out.splitlines()), checked.out
        assert checked.code == (1 if checked.error_lines else 0)
        assert whole.code == checked.code or b"FlowSpec" not in data, (whole, checked)
        shown = run_cli("show", "flows/fuzzed.py")
        assert_user_facing(shown, "fuzzed.py")
        if shown.code:
            assert len(shown.err.splitlines()) == 1, shown.err
        assert (shown.code == 0) == (checked.code == 0), (checked, shown)
        if graph.ok:
            assert run_cli("show", "--json", "flows/fuzzed.py").code in (0, 2)


@FUZZ
@given(flow_files)
def test_fuzzed_flow_files_never_show_a_traceback(data):
    _check_flow(data)


def test_known_crashers_are_one_line_errors():
    """The inputs of issue 15, each checked once whatever hypothesis draws."""
    cases = [
        chain(1000),
        chain(1200),
        deep_expression("parens", 100000),
        deep_expression("sum", 5000),
        deep_expression("not", 1000),
        cyclic_bases("pair"),
        cyclic_bases("self"),
        cyclic_bases("leaf"),
    ]
    for deco in [
        "@resources(memory=1e999)",
        "@timeout(seconds='x')",
        "@environment(vars=1)",
        "@resources(cpu=1e999)",
        "@retry(times='x')",
        "@timeout(hours=1e999)",
        "@retry(minutes_between_retries=float('nan'))",
        "@catch(var=1)",
        "@environment(vars={1: None})",
        "@batch(queue=1)",
        "@resources(gpu=1e999)",
        "@kubernetes(namespace=[])",
    ]:
        cases.append(
            (
                "from workbench import *\n\nclass F(FlowSpec):\n"
                + _step("start", "self.next(self.end)", (deco,))
                + _step("end", "pass")
            ).encode()
        )
    for data in cases:
        _check_flow(data)


def test_a_utf8_bom_flow_file_is_accepted():
    """Python runs a file that starts with a BOM, so workbench reads it too."""
    with project(flow=b"\xef\xbb\xbf" + (REPO / "flows" / "hello.py").read_bytes()):
        checked = run_cli("check", "flows/fuzzed.py")
        assert checked.code == 0, checked
        assert "HelloFlow (3 steps)" in checked.out


def test_cyclic_class_bases_are_named_on_the_class_line():
    with project(flow=cyclic_bases("pair")) as root:
        graph = build_graph(root / "flows" / "fuzzed.py")
        assert [str(e) for e in graph.errors] == [
            f"{root / 'flows' / 'fuzzed.py'}:3: class A derives from itself (A -> B -> A); Python cannot define it"
        ]


def test_a_join_that_also_splits_gets_metaflows_verdict_on_that_step():
    source = (
        "from workbench import FlowSpec, step\n\nclass J(FlowSpec):\n"
        + _step("start", "self.next(self.a, self.b)")
        + _step("a", "self.next(self.join)")
        + _step("b", "self.next(self.join)")
        + _step("join", "self.next(self.c, self.d)", args="self, inputs")
        + _step("c", "self.next(self.end)")
        + _step("d", "self.next(self.end)")
        + _step("end", "pass", args="self, inputs")
    )
    with project(flow=source.encode()) as root:
        errors = build_graph(root / "flows" / "fuzzed.py").errors
        assert len(errors) == 1 and errors[0].line == 17, errors  # the line of def join
        assert "step join is both a join (it takes inputs) and a split" in errors[0].message
        assert "add a step" in errors[0].message
    foreach = source.replace("self.next(self.c, self.d)", "self.next(self.c, foreach='xs')")
    with project(flow=foreach.encode()) as root:
        errors = build_graph(root / "flows" / "fuzzed.py").errors
        assert "step join is both a join (it takes inputs) and a foreach" in errors[0].message
