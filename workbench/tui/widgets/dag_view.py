"""The DAG of the selected flow, drawn from the static graph; click a step to select it."""

from __future__ import annotations

from typing import Optional

from textual import events
from textual.message import Message
from textual.widgets import Static

from ...graph import FlowGraph
from ..dag_layout import DagPicture, layout, step_at
from . import set_text


class DagView(Static):
    DEFAULT_CSS = "DagView { width: auto; height: auto; padding: 0 1; }"

    class StepClicked(Message):
        def __init__(self, step: str) -> None:
            super().__init__()
            self.step = step

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.picture = DagPicture([])
        self.graph: Optional[FlowGraph] = None

    def show(
        self,
        graph: Optional[FlowGraph],
        statuses: dict,
        settings: dict,
        selected: Optional[str],
        counts: Optional[dict] = None,
    ) -> None:
        self.graph = graph
        if graph is None or not graph.steps:
            self.picture = DagPicture([])
            set_text(self, "")
            return
        self.picture = layout(graph, statuses, settings, selected, counts)
        set_text(self, "\n".join(self.picture.lines))  # a live run's poll redraws it twice a second

    def on_click(self, event: events.Click) -> None:
        name = step_at(self.picture, event.x - 1, event.y)  # 1 column of padding
        if name:
            self.post_message(self.StepClicked(name))
