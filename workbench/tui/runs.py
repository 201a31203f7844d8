"""Past runs from the datastore: the runs table with per-step status, and the artifacts pane."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from rich.markup import escape
from textual import on
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from ..client import PastRuns
from ..datastore import FlowDatastore
from ..datastore.records import RunRecord
from ..preview import summary_text
from .widgets import PaneMounted

MAX_RUNS = 50
COLLAPSED_LINES = 12
GLYPH = {"succeeded": "✔", "failed": "✘", "running": "▶", "cancelled": "■", "oom": "✘", "timeout": "✘"}


class RunStore(PastRuns):
    """The TUI's view of one flow's past runs: the client's read side (failure-tolerant, never unpickles),
    the newest :data:`MAX_RUNS` of them."""

    def __init__(self, config, flow: str):
        super().__init__(FlowDatastore(config.datastore_url, flow))

    def runs(self) -> list[str]:
        return super().runs()[-MAX_RUNS:]

    def run_doc(self, run_id: str) -> Optional[RunRecord]:
        return self.run_record(run_id)

    def step_statuses(self, run_id: Optional[str]) -> dict[str, str]:
        """Step -> status by the one rule of :mod:`workbench.progress` (as the live DAG shows it)."""
        return self.progress(run_id).statuses()

    def latest_usage(self, step: str) -> Optional[dict]:
        """The step's measured usage by the one rule of :mod:`workbench.usage` (as promote shows it)."""
        return self.usage(step)


def aggregate_statuses(store: Optional[RunStore], run_id: Optional[str]) -> dict[str, str]:
    return store.step_statuses(run_id) if store is not None else {}


def _when(ts: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(float(ts), dt.timezone.utc).strftime("%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError):
        return "-"


def _size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024:
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}T"


class RunsPane(Vertical):
    DEFAULT_CSS = "RunsPane { height: 1fr; } RunsPane DataTable { height: 1fr; }"

    class RunChosen(Message):
        def __init__(self, run_id: str) -> None:
            super().__init__()
            self.run_id = run_id

    def on_mount(self) -> None:
        self.post_message(PaneMounted())

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.selected_run: Optional[str] = None

    def compose(self):
        yield Static("r run · R resume · o re-run step · c cancel · enter: logs",
                     classes="hint")
        table = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("run", "status", "started (UTC)", "steps")
        yield table

    def show(self, store: Optional[RunStore], graph) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.clear()
        self.selected_run = None
        if store is None:
            return
        order = graph.topological() if graph is not None and graph.steps else []
        for run_id in reversed(store.runs()):
            doc = store.run_doc(run_id)
            statuses = store.step_statuses(run_id)
            steps = " ".join(f"{s}{GLYPH.get(statuses[s], '↺' if statuses[s] == 'cloned' else '?')}"
                             for s in order if s in statuses)
            status = str(doc.status) if doc is not None else "?"
            if doc is not None and doc.only_step:
                status += f" ({doc.only_step} only)"
            elif doc is not None and doc.origin_run_id:
                status += " (resume)"
            table.add_row(run_id, status, _when(doc.started_at if doc is not None else None), steps, key=run_id)

    @on(DataTable.RowSelected, "#runs-table")
    def _chosen(self, event: DataTable.RowSelected) -> None:
        self.selected_run = str(event.row_key.value)
        self.post_message(self.RunChosen(self.selected_run))


class ArtifactsPane(Vertical):
    BINDINGS = [Binding("e", "expand", "Expand preview")]
    DEFAULT_CSS = """
    ArtifactsPane { height: 1fr; }
    ArtifactsPane #artifacts-title { height: 1; color: $text-muted; }
    ArtifactsPane DataTable { height: 1fr; max-height: 50%; }
    ArtifactsPane #preview-scroll { height: 1fr; border-top: solid $primary; }
    """

    def on_mount(self) -> None:
        self.post_message(PaneMounted())

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.store: Optional[RunStore] = None
        self.rows: dict[str, dict] = {}
        self.expanded = False  # long strings, dicts and lists are collapsed to a few lines until e
        self.current: Optional[dict] = None

    def compose(self):
        yield Static("", id="artifacts-title")
        table = DataTable(id="artifacts-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("task", "name", "type", "size")
        yield table
        with VerticalScroll(id="preview-scroll"):
            yield Static("", id="preview")

    def show(self, store: Optional[RunStore], run_id: Optional[str], step: Optional[str]) -> None:
        self.store = store
        table = self.query_one("#artifacts-table", DataTable)
        table.clear()
        self.rows = {}
        self.query_one("#preview", Static).update("")
        title = self.query_one("#artifacts-title", Static)
        if store is None:
            title.update("")
            return
        run_id = run_id or store.latest_run()
        if run_id is None:
            title.update("no runs yet (r runs the flow)")
            return
        title.update(f"run {run_id} · step {step or 'all'} · arrows preview · ↑ inherited")
        all_tasks = store.tasks(run_id)
        known = {info["sha"]: info for doc in all_tasks for info in doc.artifacts.values()
                 if info.get("sha") and info.get("type")}  # inherited artifacts carry only their sha
        for doc in (all_tasks if step is None else [d for d in all_tasks if d.step == step]):
            task = f"{doc.step}/{doc.task_id}"
            for name, info in sorted(doc.artifacts.items()):
                if name.startswith("_"):
                    continue
                key = f"{task}:{name}"
                inherited = bool(info.get("inherited"))
                info = {**known.get(info.get("sha"), {}), **info}
                typ = info.get("type") or "?"
                shape = info.get("shape")
                if shape is not None:
                    typ += f" {tuple(shape)}"
                self.rows[key] = info
                table.add_row(task, name + (" ↑" if inherited else ""), typ, _size(info.get("size")), key=key)

    @on(DataTable.RowHighlighted, "#artifacts-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.current = self.rows.get(str(event.row_key.value)) if event.row_key else None
        self.show_preview()

    def show_preview(self) -> None:
        info = self.current
        target = self.query_one("#preview", Static)
        if not info or self.store is None:
            target.update("")
            return
        # the summary the saving task stored: viewing never unpickles a blob (a step may have written it)
        text = summary_text(info, max_lines=2000 if self.expanded else COLLAPSED_LINES)
        if not self.expanded and "more lines)" in text:
            text += "\n(e expands)"
        target.update(escape(text))

    def action_expand(self) -> None:
        self.expanded = not self.expanded
        self.show_preview()
