"""Past runs from the datastore: the runs table with per-step status, and the artifacts pane."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any, Optional

from rich.markup import escape
from textual import on, work
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from .. import events as ev
from ..datastore import FlowDatastore
from ..datastore.records import RunRecord, TaskRecord
from ..past_runs import PastRuns  # not workbench.client: its object API is not on the first screen's path
from ..preview import summary_text
from ..progress import events_from_tasks, reduce_events
from .offload import OFFLOAD_TASKS, artifact_rows, in_child, offloaded
from .widgets import PaneMounted

MAX_RUNS = 50
SYNC_TASKS = 2000  # a run with more tasks has its statuses read in a worker, never on the UI thread
# step statuses of runs that have finished: they never change, so each is read once per session
_settled: dict[tuple, dict] = {}
_reading = threading.Lock()
COMPACT_BELOW = 70  # columns of the Runs pane under which the table drops step names and seconds
COLLAPSED_LINES = 12
SYNC_ARTIFACT_TASKS = 50  # a run with more tasks has its artifacts read in a worker, not on the UI thread
ARTIFACT_PAGE = 500  # artifact rows drawn at a time (more as the cursor reaches the last)
CRASHED = "crashed"  # a run (or a step it left running) whose runtime is gone: workbench.liveness
GLYPH = {
    "succeeded": "✔",
    "failed": "✘",
    "running": "▶",
    "cancelled": "■",
    "oom": "✘",
    "timeout": "✘",
    CRASHED: "†",
}


class RunStore(PastRuns):
    """The TUI's view of one flow's past runs: the client's read side (failure-tolerant, never unpickles),
    the newest :data:`MAX_RUNS` of them."""

    def __init__(self, config, flow: str):
        super().__init__(FlowDatastore(config.datastore_url, flow))

    def runs(self) -> list[str]:
        return super().runs()[-MAX_RUNS:]

    def run_doc(self, run_id: str) -> Optional[RunRecord]:
        return self.run_record(run_id)

    def tasks(self, run_id: str, step: Optional[str] = None) -> list[TaskRecord]:
        """The client's reading, letting the UI thread breathe while a worker reads thousands of records."""
        out = []
        for name in [step] if step else self.steps(run_id):
            for n, task_id in enumerate(self.task_ids(run_id, name)):
                try:
                    doc = self.ds.read_task(run_id, name, task_id)
                except Exception:  # noqa: BLE001
                    doc = None
                if doc:
                    out.append(doc)
                if n % BREATHE_EVERY == BREATHE_EVERY - 1:
                    breathe()
        return out

    def _key(self, run_id: str) -> tuple[str, str, str]:
        return (self.ds.url, self.ds.flow, run_id)

    def quick(self, run_id: Optional[str]) -> bool:
        """Whether the run's statuses may be read on the UI thread: known already, or few tasks."""
        return not run_id or self._key(run_id) in _settled or self.small(run_id) or self.summarised(run_id)

    def small(self, run_id: Optional[str]) -> bool:
        """Whether every record of the run may be read on the UI thread (few tasks)."""
        return not run_id or sum(self.task_counts(run_id).values()) <= SYNC_TASKS

    def step_statuses(self, run_id: Optional[str]) -> dict[str, str]:
        """Step -> status by the one rule of :mod:`workbench.progress` (as the live DAG shows it)."""
        if not run_id:
            return {}
        if self._key(run_id) in _settled:
            return dict(_settled[self._key(run_id)])
        if self.quick(run_id):
            return self._read_statuses(run_id)
        with _reading:  # two workers asking for the same big run: the second gets the first's answer
            if self._key(run_id) in _settled:
                return dict(_settled[self._key(run_id)])
            return self._read_statuses(run_id)

    def _read_statuses(self, run_id: str) -> dict[str, str]:
        """Each step's status from the summary the runtime wrote (one small read a step); the steps of
        a run written before summaries existed from their task records. The steps a crashed run left
        running read as crashed."""
        run = self.run_doc(run_id)
        run_status = run.status if run is not None else None
        out: dict[str, str] = {}
        unsummarised = []
        for step in self.steps(run_id):
            summary = self.step_summary(run_id, step, fold=False)
            if summary is None:
                unsummarised.append(step)
            elif summary.status != "pending":
                out[step] = summary.status
        if unsummarised:
            progress = reduce_events(events_from_tasks(t for step in unsummarised for t in self.tasks(run_id, step)))
            if run_status == "running":
                # a task of a live run has a directory (its spec) before it has a record: it is running
                counts = self.task_counts(run_id)
                for step in unsummarised:
                    for n in range(counts.get(step, 0) - progress.step(step).total):
                        progress.apply(ev.TaskStarted(f"{self.ds.flow}/{run_id}/{step}/unrecorded-{n}", step, 0, ""))
            out.update(progress.statuses())
        if run_status not in (None, "running"):  # what a run that ended left running ended with it
            left = CRASHED if run_status == CRASHED else "cancelled"
            out = {step: left if status == "running" else status for step, status in out.items()}
        if run_status not in (None, "running", CRASHED):  # a crashed run may still be cancelled
            _settled[self._key(run_id)] = dict(out)
        return out

    def summarised(self, run_id: Optional[str]) -> bool:
        """Whether every step of the run has a summary: its statuses cost a read a step, whatever its size."""
        if not run_id:
            return True
        steps = self.steps(run_id)
        return all(self.ds.storage.exists(f"{self.ds.flow}/runs/{run_id}/{step}/summary.json") for step in steps)

    def task_counts(self, run_id: Optional[str]) -> dict[str, int]:
        if not run_id:
            return {}
        key = ("counts",) + self._key(run_id)
        if key in _settled:
            return dict(_settled[key])
        try:
            counts = {step: self._count(run_id, step) for step in self.ds.list_steps(run_id)}
        except Exception:  # noqa: BLE001
            return {}
        if self._key(run_id) in _settled:  # finished: its tasks are all there
            _settled[key] = counts
        return counts

    def _count(self, run_id: str, step: str) -> int:
        """The step's tasks: its summary's total when it has one (one small read; the poller asks every half
        second, and listing a 10,000-task step is 10 LIST calls on S3), else its task directories."""
        summary = self.step_summary(run_id, step, fold=False)
        if summary is not None and summary.total:
            return summary.total
        return sum(1 for name in self.ds.storage.list(f"{self.ds.flow}/runs/{run_id}/{step}") if name.isdigit())

    def live_runs(self) -> list[str]:
        """Runs whose record says running, wherever they were started (CLI, TUI, detached), newest first."""
        return [
            run_id for run_id in reversed(self.runs()) if getattr(self.run_doc(run_id), "status", None) == "running"
        ]

    def snapshot(self) -> tuple:
        """What the screen shows of this flow's runs, cheaply compared: the poller redraws when it changes."""
        runs = self.runs()
        latest = runs[-1] if runs else None
        live = tuple(
            (run_id, tuple(sorted(self.step_statuses(run_id).items())), tuple(sorted(self.task_counts(run_id).items())))
            for run_id in self.live_runs()
        )
        latest_status = getattr(self.run_doc(latest), "status", None) if latest else None
        return (tuple(runs), latest_status, live)

    def latest_usage(self, step: str) -> Optional[dict]:
        """The step's measured usage by the one rule of :mod:`workbench.usage` (as promote shows it)."""
        return self.usage(step)


BREATHE_EVERY = 10


def breathe() -> None:
    """In a worker reading thousands of records, let the UI thread have the interpreter for a moment:
    without it the UI waits for the GIL at every step of its event loop and a key takes seconds."""
    if threading.current_thread() is not threading.main_thread():
        time.sleep(0.002)


def aggregate_statuses(store: Optional[RunStore], run_id: Optional[str]) -> dict[str, str]:
    return store.step_statuses(run_id) if store is not None else {}


def _when(ts: Any, short: bool = False) -> str:
    try:
        return dt.datetime.fromtimestamp(float(ts), dt.timezone.utc).strftime(
            "%m-%d %H:%M" if short else "%m-%d %H:%M:%S"
        )
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
        self.store: Optional[RunStore] = None
        self.graph = None
        self._was_compact = False

    def compose(self):
        yield Static("r/a run · R resume · o step · c cancel · enter: logs", classes="hint")
        table: DataTable[str] = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("run", "status", "started (UTC)", "steps")
        yield table

    @property
    def compact(self) -> bool:
        """Narrow (an 80-column terminal): steps as glyphs only and a short start time, so that all fits."""
        return 0 < self.size.width < COMPACT_BELOW

    def show(self, store: Optional[RunStore], graph) -> None:
        self.store, self.graph = store, graph
        table = self.query_one("#runs-table", DataTable)
        keep = table.cursor_row if table.row_count else 0  # a live refresh keeps the row the user is on
        table.clear(columns=True)
        compact = self.compact
        self.columns = table.add_columns("run", "status", "started (UTC)", "steps")
        self.selected_run = None
        if store is None:
            return
        order = graph.topological() if graph is not None and graph.steps else []
        slow = []
        for run_id in reversed(store.runs()):  # newest first
            doc = store.run_doc(run_id)
            if store.quick(run_id):
                steps = self.steps_cell(store.step_statuses(run_id), order)
            else:
                steps = "…"  # a big run: read in a worker, filled in when known
                slow.append(run_id)
            status = str(doc.status) if doc is not None else "?"
            if status == CRASHED:
                status = f"{GLYPH[CRASHED]} {status}"
            if doc is not None and doc.only_step:
                status = (
                    f"{GLYPH.get(status, '')} {doc.only_step} only" if compact else f"{status} ({doc.only_step} only)"
                )
            elif doc is not None and doc.origin_run_id:
                status = f"{GLYPH.get(status, '')} resume" if compact else f"{status} (resume)"
            table.add_row(
                run_id, status, _when(doc.started_at if doc is not None else None, short=compact), steps, key=run_id
            )
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1), animate=False)
        if slow:
            self._fill_slow(store, order, slow)

    def steps_cell(self, statuses: dict[str, str], order: list[str]) -> str:
        glyphs = [(s, GLYPH.get(statuses[s], "↺" if statuses[s] == "cloned" else "?")) for s in order if s in statuses]
        return "".join(g for _, g in glyphs) if self.compact else " ".join(f"{s}{g}" for s, g in glyphs)

    @work(thread=True, exclusive=True, group="runs-steps")
    def _fill_slow(self, store: RunStore, order: list[str], run_ids: list[str]) -> None:
        for run_id in run_ids:
            cell = self.steps_cell(store.step_statuses(run_id), order)
            self.app.call_from_thread(self._set_steps, store, run_id, cell)

    def _set_steps(self, store: RunStore, run_id: str, cell: str) -> None:
        if store is not self.store or not self.is_mounted:
            return
        try:
            self.query_one("#runs-table", DataTable).update_cell(run_id, self.columns[3], cell)
        except Exception:  # noqa: BLE001 - the table was refilled meanwhile
            pass

    def on_resize(self, event) -> None:
        if self.store is not None and self.compact != self._was_compact:
            self.show(self.store, self.graph)
        self._was_compact = self.compact

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
        self.pending: list[str] = []  # rows read but not drawn yet (JSON lines, workbench.tui.offload)
        self.wanted: Optional[tuple] = None  # (datastore, flow, run, step) being shown
        self.title_text = ""
        self.expanded = False  # long strings, dicts and lists are collapsed to a few lines until e
        self.current: Optional[dict] = None

    def compose(self):
        yield Static("", id="artifacts-title")
        table: DataTable[str] = DataTable(id="artifacts-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("task", "name", "type", "size")
        yield table
        with VerticalScroll(id="preview-scroll"):
            yield Static("", id="preview")

    def show(self, store: Optional[RunStore], run_id: Optional[str], step: Optional[str]) -> None:
        """The artifacts of the step's tasks (every step's when None): a small run's read here, a bigger
        one's in a worker (by a child process past OFFLOAD_TASKS tasks), its rows drawn a page at a time."""
        self.store = store
        table = self.query_one("#artifacts-table", DataTable)
        table.clear()
        self.rows, self.pending, self.wanted = {}, [], None
        self.query_one("#preview", Static).update("")
        title = self.query_one("#artifacts-title", Static)
        if store is None:
            title.update("")
            return
        run_id = run_id or store.latest_run()
        if run_id is None:
            title.update("no runs yet (r runs the flow)")
            return
        self.title_text = f"run {run_id} · step {step or 'all'} · arrows preview · ↑ inherited"
        self.wanted = (store.ds.url, store.ds.flow, run_id, step)
        if sum(store.task_counts(run_id).values()) <= SYNC_ARTIFACT_TASKS:
            self._rows_read(self.wanted, artifact_rows(store.ds, run_id, step))
            return
        title.update(f"{self.title_text} · reading the tasks' records…")
        self._read_rows(store, run_id, step, self.wanted)

    @work(thread=True, exclusive=True, group="artifacts")
    def _read_rows(self, store: RunStore, run_id: str, step: Optional[str], wanted: tuple) -> None:
        def progress(done: int, total: int) -> bool:
            return self.wanted == wanted

        if sum(store.task_counts(run_id).values()) > OFFLOAD_TASKS and in_child(store):
            got = offloaded("artifacts", store, run_id, step, progress)
            if got is None:
                return  # stopped: another run or step was chosen
            if isinstance(got, str):
                try:
                    self.app.call_from_thread(self._unreadable, wanted, got)
                except RuntimeError:  # the app closed meanwhile
                    pass
                return
            rows = got
        else:
            rows = artifact_rows(store.ds, run_id, step, progress)
        try:
            self.app.call_from_thread(self._rows_read, wanted, rows)
        except RuntimeError:  # the app closed meanwhile
            pass

    def _unreadable(self, wanted: tuple, why: str) -> None:
        if wanted == self.wanted and self.is_mounted:
            self.query_one("#artifacts-title", Static).update(escape(f"{self.title_text} · not read: {why}"))

    def _rows_read(self, wanted: tuple, rows: list[str]) -> None:
        if wanted != self.wanted or not self.is_mounted:
            return
        self.pending = rows
        self.query_one("#artifacts-title", Static).update(
            self.title_text + (f" · {len(rows):,} artifacts" if len(rows) > ARTIFACT_PAGE else "")
        )
        self._more_rows()

    def _more_rows(self) -> None:
        """The next page of rows (JSON decoded only as they are drawn)."""
        table = self.query_one("#artifacts-table", DataTable)
        page, self.pending = self.pending[:ARTIFACT_PAGE], self.pending[ARTIFACT_PAGE:]
        for line in page:
            row = json.loads(line)
            info = row["info"]
            typ = info.get("type") or "?"
            if info.get("shape") is not None:
                typ += f" {tuple(info['shape'])}"
            self.rows[row["key"]] = info
            name = row["name"] + (" ↑" if row["inherited"] else "")
            table.add_row(row["task"], name, typ, _size(info.get("size")), key=row["key"])

    @on(DataTable.RowHighlighted, "#artifacts-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.current = self.rows.get(str(event.row_key.value)) if event.row_key else None
        self.show_preview()
        if self.pending and event.cursor_row >= event.data_table.row_count - 1:
            self._more_rows()

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
