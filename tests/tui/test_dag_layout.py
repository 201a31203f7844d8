from pathlib import Path

from workbench.graph import build_graph
from workbench.tui.dag_layout import layers_of, layout, step_at

REPO = Path(__file__).resolve().parents[2]


def plain(lines):
    import re

    return [re.sub(r"\[/?[^\]]*\]", "", line) for line in lines]


def test_branches_side_by_side_with_connectors():
    graph = build_graph(REPO / "flows" / "train.py")
    assert layers_of(graph) == [["start"], ["train_small", "train_big"], ["choose"], ["end"]]
    pic = layout(graph, {"start": "succeeded", "train_big": "failed"}, selected="choose")
    small, big = pic.boxes["train_small"], pic.boxes["train_big"]
    assert small[1] == big[1] and small[0] < big[0]  # same row, left to right
    text = "\n".join(plain(pic.lines))
    assert "┴" in text and "┬" in text and "▼" in text
    assert "✔ start" in text and "✘ train_big" in text
    assert "$error" in "\n".join(pic.lines)  # colours are theme variables
    x, y, w, h = pic.boxes["end"]
    assert step_at(pic, x + 1, y + 1) == "end"
    assert step_at(pic, 0, 0) is None or step_at(pic, 0, 0) in graph.steps


def test_long_edges_pass_through_layers(tmp_path):
    flow = tmp_path / "skip.py"
    flow.write_text("""
from workbench import FlowSpec, step
class SkipFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)
    @step
    def a(self):
        self.next(self.a2)
    @step
    def a2(self):
        self.next(self.join)
    @step
    def b(self):
        self.next(self.join)
    @step
    def join(self, inputs):
        self.next(self.end)
    @step
    def end(self):
        pass
""")
    graph = build_graph(flow)
    assert graph.ok, graph.errors
    pic = layout(graph)
    assert set(pic.boxes) == set(graph.steps)
    join_y = pic.boxes["join"][1]
    assert join_y > pic.boxes["a2"][1] > pic.boxes["a"][1]
