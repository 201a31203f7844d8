"""The static graph: node kinds, transitions, decorators and every validation error, with lines."""

import textwrap

import pytest

from workbench.errors import FlowError
from workbench.graph import build_graph, load_graph, split_flow_ref


def graph_of(tmp_path, source, name="f.py", cls=None):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source).lstrip())
    return build_graph(path, cls)


def only_error(tmp_path, source):
    g = graph_of(tmp_path, source)
    assert g.errors, "expected a validation error"
    return g.errors[0]


HEADER = "from workbench import FlowSpec, step, resources, retry, Parameter\n"


def test_every_node_kind_and_transition(tmp_path):
    g = graph_of(
        tmp_path,
        HEADER
        + """
class K(FlowSpec):
    '''doc line'''
    alpha = Parameter("alpha", default=0.5, type=float, help="rate")

    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.next(self.j)

    @step
    def b(self):
        self.next(self.j)

    @step
    def j(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
    )
    assert g.ok, g.errors
    kinds = {s.name: s.kind for s in g}
    assert kinds == {
        "start": "split",
        "a": "foreach",
        "each": "linear",
        "inner_join": "join",
        "b": "linear",
        "j": "join",
        "end": "end",
    }
    assert g["a"].foreach_var == "items"
    assert g["inner_join"].closes == "a" and g["a"].joined_by == "inner_join"
    assert g["j"].closes == "start" and sorted(g["j"].in_steps) == ["b", "inner_join"]
    assert g["each"].split_stack == ("start", "a")
    assert g.topological()[0] == "start" and g.topological()[-1] == "end"
    assert g["start"].lineno == 8  # the def line, not the decorator
    assert g.parameters[0].name == "alpha" and g.parameters[0].default == 0.5
    assert g.parameters[0].type_name == "float" and g.parameters[0].help == "rate"
    assert g.doc == "doc line"


def test_linear_start_and_decorators_with_literal_and_constant_args(tmp_path):
    g = graph_of(
        tmp_path,
        HEADER
        + """
MEM = "16G"

class K(FlowSpec):
    @resources(memory=MEM, gpu=1)
    @retry(times=2)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
    )
    assert g.ok
    assert g["start"].kind == "start"
    deco = g["start"].decorator("resources")
    assert deco.kwargs == {"memory": "16G", "gpu": 1} and deco.lineno == 6
    assert g["start"].decorator("retry").kwargs == {"times": 2}


def test_nested_foreach_and_branch_inside_foreach(tmp_path):
    g = graph_of(
        tmp_path,
        HEADER
        + """
class K(FlowSpec):
    @step
    def start(self):
        self.xs = [1, 2]
        self.next(self.outer, foreach="xs")

    @step
    def outer(self):
        self.ys = [1, 2, 3]
        self.next(self.inner, foreach="ys")

    @step
    def inner(self):
        self.next(self.left, self.right)

    @step
    def left(self):
        self.next(self.both)

    @step
    def right(self):
        self.next(self.both)

    @step
    def both(self, inputs):
        self.next(self.join_inner)

    @step
    def join_inner(self, inputs):
        self.next(self.join_outer)

    @step
    def join_outer(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
    )
    assert g.ok, g.errors
    assert g["both"].closes == "inner"
    assert g["join_inner"].closes == "outer"
    assert g["join_outer"].closes == "start"
    assert g["left"].split_stack == ("start", "outer", "inner")


@pytest.mark.parametrize(
    "body,message,line",
    [
        (
            """
class K(FlowSpec):
    @step
    def end(self):
        pass
""",
            "has no start step",
            3,
        ),
        (
            """
class K(FlowSpec):
    @step
    def start(self):
        self.next(self.nowhere)

    @step
    def end(self):
        pass
""",
            "transitions to unknown step nowhere",
            6,
        ),
        (
            """
class K(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def orphan(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
            "step orphan is not reachable from start",
            9,
        ),
        (
            """
class K(FlowSpec):
    @step
    def start(self):
        x = 1

    @step
    def end(self):
        pass
""",
            "step start has no self.next() transition",
            5,
        ),
        (
            """
class K(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        self.next(self.start)
""",
            "step end must not call self.next()",
            10,
        ),
        (
            """
class K(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.end)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
            "step end has 2 inputs (b, join) but is not a join",
            21,
        ),
        (
            """
class K(FlowSpec):
    @step
    def start(self):
        self.items = [1]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
            "goes to end inside the foreach at step start",
            11,
        ),
        (
            """
class K(FlowSpec):
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):
        self.next(self.b)

    @step
    def b(self):
        self.next(self.a)

    @step
    def end(self):
        pass
""",
            "step b transitions back to step a, which makes a cycle",
            14,
        ),
        (
            """
class K(FlowSpec):
    @step
    def start(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
            "is a join (it takes inputs) but no split or foreach comes before it",
            9,
        ),
        (
            """
class K(FlowSpec):
    @step
    def start(self):
        if True:
            self.next(self.end)
        x = 1

    @step
    def end(self):
        pass
""",
            "self.next() must be the last line of the step",
            7,
        ),
        (
            """
class K(FlowSpec):
    @step
    def start(self)
        self.next(self.end)
""",
            "syntax error",
            5,
        ),
    ],
)
def test_validation_errors_name_file_line_and_step(tmp_path, body, message, line):
    err = only_error(tmp_path, HEADER + body)
    assert message in str(err)
    assert err.line == line, str(err)
    assert str(err).startswith(f"{tmp_path / 'f.py'}:{line}: ")


def test_join_not_joining_every_branch_is_an_error(tmp_path):
    err = only_error(
        tmp_path,
        HEADER
        + """
class K(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.j)

    @step
    def b(self):
        self.next(self.c)

    @step
    def c(self):
        self.next(self.c2)

    @step
    def c2(self):
        self.next(self.end)

    @step
    def j(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
    )
    assert "is reached both inside and outside" in str(err) or "not a join" in str(err)


def test_two_flow_classes_need_a_name(tmp_path):
    source = (
        HEADER
        + """
class A(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class B(A):
    @step
    def end(self):
        print("B")
"""
    )
    # B derives from A, so B is the flow; A is a base
    g = graph_of(tmp_path, source)
    assert g.ok and g.name == "B"
    source2 = source.replace(
        "class B(A):", "class B(FlowSpec):\n    @step\n    def start(self):\n        self.next(self.end)\n"
    )
    g2 = graph_of(tmp_path, source2, name="g.py")
    assert not g2.ok
    assert "2 FlowSpec classes: A (line 3), B (line 13)" in str(g2.errors[0])
    assert "g.py:A" in str(g2.errors[0])
    picked = build_graph(str(tmp_path / "g.py") + ":B")
    assert picked.ok and picked.name == "B"


def test_no_user_code_runs(tmp_path):
    marker = tmp_path / "ran"
    g = graph_of(
        tmp_path,
        HEADER
        + f"""
open({str(marker)!r}, "w").write("x")

class K(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
    )
    assert g.ok and not marker.exists()


def test_load_graph_raises_first_error_and_split_ref(tmp_path):
    (tmp_path / "x.py").write_text("x = (")
    with pytest.raises(FlowError, match="syntax error"):
        load_graph(tmp_path / "x.py")
    assert split_flow_ref("flows/a.py:Flow") == ("flows/a.py", "Flow")
    assert split_flow_ref("flows/a.py") == ("flows/a.py", None)
