"""The Tasks tab: the selected step's tasks in the shown run. Counts by state, a duration histogram, the
failed and slowest tasks first (then more a page at a time), the merged log of all its tasks ordered by
time with a task filter, and after an out-of-memory kill or a timeout, why and the key that re-runs it.

The counts, histogram and first rows come from the step's summary record (one small read, written by the
runtime; folded from the task records in a worker for older runs); more rows are read a page at a time
as the table is scrolled past its end (and kept when a live step's rows are redrawn); the merged log is
read after the summary is on screen, by a child process for a big step (:mod:`workbench.tui.offload`:
10,000 logs parsed in a thread would hold the GIL against the UI thread), and written to the log widget
a slice at a time, its task filter applied in a worker. While the run is live the summary is read again
every second. The UI thread only draws, so a step with 10,000 tasks never freezes the screen."""

from __future__ import annotations

import functools
import time
from typing import Optional

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import DataTable, Input, Log, Static

from ..offload import OFFLOAD_TASKS, in_child, merged_log, offloaded
from ..step_tasks import (
    FIXABLE,
    MAX_LOG_LINES,
    PAGE_ROWS,
    RerunPlan,
    StepSummary,
    TaskRow,
    from_record,
    histogram,
    plan_rerun,
    row_of,
    seconds_text,
)
from . import PaneMounted, on_screen, set_text

GLYPH = {
    "succeeded": "✔",
    "failed": "✘",
    "oom": "✘",
    "timeout": "✘",
    "cancelled": "■",
    "running": "▶",
    "retrying": "↻",
    "cloned": "↺",
    "unfinished": "†",
}
LIVE_REFRESH_SECONDS = 1.0  # a live run's summary is read again this often (the runtime writes it as often)
LIVE_ROWS_SECONDS = 5.0  # a live step's rows are redrawn at most this often (its counts every second)
FILL_LINES = 5_000  # merged log lines written to the widget per turn of the UI thread


def _unless_closing(method):
    """A worker's result drawn on the UI thread: nothing to do when the pane's widgets are going away (the
    app is closing)."""

    @functools.wraps(method)
    def drawn(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except NoMatches:
            return None

    return drawn


class TasksPane(Vertical):
    DEFAULT_CSS = """
    TasksPane { height: 1fr; padding: 0 1; }
    TasksPane #tasks-title, TasksPane #tasks-counts { height: auto; }
    TasksPane #tasks-fix { height: auto; color: $warning; }
    TasksPane #tasks-hist { height: auto; color: $text-muted; }
    TasksPane #tasks-waiting { height: auto; max-height: 6; color: $warning; }
    TasksPane #tasks-usage { height: auto; color: $text-muted; }
    TasksPane #tasks-profile { height: auto; max-height: 14; color: $text-accent; }
    TasksPane DataTable { height: 1fr; min-height: 4; }
    TasksPane Horizontal { height: auto; }
    TasksPane #tasks-filter { width: 1fr; }
    TasksPane #tasks-log { height: 1fr; min-height: 4; }
    TasksPane #tasks-logstate { height: auto; color: $text-muted; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.summary: Optional[StepSummary] = None
        self.plan: Optional[RerunPlan] = None
        self.waiting: dict[str, str] = {}  # pathspec -> why the queued remote task is not running yet
        self.usage_lines: list[str] = []  # the usage timeline of the step's hungriest task (workbench.sampling)
        self.profile_lines: list[str] = []  # the hot path of a profiled run of this step (workbench.profiling)
        self.log_lines: list[str] = []  # "task label<TAB>shown line", ordered by time (workbench.tui.offload)
        self.log_read = False  # every task's log is in log_lines (else it is still being read)
        self.log_complete = False  # ... and the log widget shows them (filtered)
        self.fills = 0  # the log widget's fills asked for: a slice of an older one is dropped
        self.loads = 0  # finished loads, for tests
        self.shown: Optional[tuple] = None  # (store, run_id, step) on screen
        self.live = False  # the shown run is running: its summary is read again every second
        self.paged: list[str] = []  # task ids in order, once a page beyond the summary's rows was asked for
        self.page_at = 0  # the next task id in ``paged`` to read
        self.paging = False
        self.extra_rows: list[TaskRow] = []  # rows read by pages: drawn again with a live step's redrawn rows
        self.rows_drawn_at = 0.0  # when the table's rows were last drawn from a summary

    def on_mount(self) -> None:
        self.post_message(PaneMounted())
        self.set_interval(LIVE_REFRESH_SECONDS, self.tick)

    def compose(self) -> ComposeResult:
        yield Static("", id="tasks-title")
        yield Static("", id="tasks-counts")
        yield Static("", id="tasks-fix")
        yield Static("", id="tasks-hist")
        for name in ("tasks-waiting", "tasks-usage", "tasks-profile"):  # shown when there is something to say
            hidden = Static("", id=name)
            hidden.display = False
            yield hidden
        table: DataTable[str] = DataTable(id="tasks-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("task", "status", "time", "try", "why")
        yield table
        with Horizontal():
            yield Input(
                placeholder="filter the merged log by task (id, index or step/id)", id="tasks-filter", compact=True
            )
        state = Static("", id="tasks-logstate")  # how far the merged log is read; shown while it is
        state.display = False
        yield state
        yield Log(id="tasks-log", max_lines=MAX_LOG_LINES)

    # ------------------------------------------------------------------ loading (off the UI thread)
    def show(self, store, run_id: Optional[str], step: Optional[str]) -> None:
        if store is None or step is None:
            self.shown, self.live = None, False
            self._draw(None, None)
            return
        shown = (store, run_id or store.latest_run(), step)
        if self.live and self.shown is not None and _same(shown, self.shown):
            return  # a live step is read again every second already (the poller asks on every change)
        self.shown, self.summary = shown, None  # a new choice: its table is drawn afresh
        self.paged, self.page_at, self.paging, self.extra_rows = [], 0, False, []
        self.log_lines, self.log_read, self.log_complete = [], False, False
        self._load(*self.shown)

    def tick(self) -> None:
        """Timer: a live run's summary again (one small read), the merged log once the step has ended; only
        while the tab is on screen (drawing a hidden tab would cost the keys their time): showing the tab
        ticks at once."""
        if self.live and self.shown is not None and self.shown[1] is not None and on_screen(self):
            self._load(*self.shown, with_log=False)

    @work(thread=True, exclusive=True, group="tasks")
    def _load(self, store, run_id: Optional[str], step: str, with_log: bool = True) -> None:
        if run_id is None:
            self.app.call_from_thread(self._draw, None, None)
            return
        run = store.run_doc(run_id)
        run_status = str(run.status) if run is not None else None
        record = store.step_summary(run_id, step)  # one read; folded from the records for an older run
        summary = from_record(record, run_status) if record is not None else None
        plan = None
        failed = record.failed if record is not None else []
        fixable = next((b for b in failed if b.status in FIXABLE), None)
        if fixable is not None:  # one task record: the one the re-run plan is built from
            plan = next((plan_rerun(d, run_id) for d in store.task_records(run_id, step, [fixable.task_id])), None)
        hungriest = record.peak_memory_task if record is not None else None
        docs = store.task_records(run_id, step, [hungriest]) if hungriest else []
        usage = usage_lines(docs)
        profile = profile_lines(store, run, run_id, step)
        live = run_status == "running" and not (summary is not None and summary.final)
        try:
            self.app.call_from_thread(
                self._loaded, (store, run_id, step), summary, plan, usage, profile, live, with_log
            )
        except RuntimeError:  # the app closed meanwhile
            pass

    @_unless_closing
    def _loaded(self, shown, summary, plan, usage, profile, live, with_log) -> None:
        if self.shown is None or not _same(shown, self.shown):
            return  # another step or run was chosen meanwhile
        was_live, self.live = self.live, live
        self.usage_lines = usage
        self._draw(summary, plan, profile)
        if live and with_log:  # re-reading every task's log each second would starve the screen
            self._log_state("merged log: read when the step ends (a task id in the filter shows that task's log now)")
        elif with_log or (was_live and not live):  # the merged log once, and again when a live step has ended
            self._load_log(*shown)

    @work(thread=True, exclusive=True, group="tasks-log")
    def _load_log(self, store, run_id: str, step: str) -> None:
        """Every task's log, merged: read here for a small step, by a child process for a big one (its
        result cached once the run has ended: opening the step again reads one file)."""
        shown = (store, run_id, step)
        task_ids = store.task_ids(run_id, step)

        def progress(done: int, total: int) -> bool:
            """Say how far the reading is; False stops it (another step or run was chosen, or the app closed)."""
            try:
                self.app.call_from_thread(
                    self._say_log_state, shown, f"merged log: read {done:,} of {total:,} tasks' logs…"
                )
            except RuntimeError:
                return False
            return self.shown is not None and _same(shown, self.shown)

        if len(task_ids) > OFFLOAD_TASKS and in_child(store):
            run = store.run_doc(run_id)
            done_at = run.finished_at if run is not None and str(run.status) != "running" else None
            got = offloaded("log", store, run_id, step, progress, done_at)
            if got is None:
                return  # stopped: another step was chosen
            lines = got if isinstance(got, list) else [f"{step}\tthe merged log could not be read: {got}"]
        else:
            lines = merged_log(store.ds, run_id, step, task_ids, progress)
        try:
            self.app.call_from_thread(self._log_read, shown, lines)
        except RuntimeError:
            pass

    @_unless_closing
    def _say_log_state(self, shown, text: str) -> None:
        if self.is_mounted and self.shown is not None and _same(shown, self.shown):
            self._log_state(text)

    def _log_state(self, text: str) -> None:
        state = self.query_one("#tasks-logstate", Static)
        set_text(state, escape(text))
        state.display = bool(text)

    @_unless_closing
    def _log_read(self, shown, lines: list[str]) -> None:
        if not self.is_mounted or self.shown is None or not _same(shown, self.shown):
            return
        self.log_lines, self.log_read = lines, True
        self._log_state("")
        self._refill()

    @on(DataTable.RowHighlighted, "#tasks-table")
    def _near_end(self, event: DataTable.RowHighlighted) -> None:
        """The cursor reached the last row: read the next page of tasks (in id order) in a worker."""
        table = event.data_table
        if self.paging or self.shown is None or self.summary is None or event.cursor_row < table.row_count - 1:
            return
        if table.row_count >= self.summary.total:
            return
        if self.paged and self.page_at >= len(self.paged):
            return
        self.paging = True
        self._load_page(*self.shown)

    @work(thread=True, exclusive=True, group="tasks-page")
    def _load_page(self, store, run_id: str, step: str) -> None:
        ids = self.paged or store.task_ids(run_id, step)
        at = self.page_at
        page = ids[at : at + PAGE_ROWS]
        rows = [row_of(doc) for doc in store.task_records(run_id, step, page)]
        try:
            self.app.call_from_thread(self._page_read, (store, run_id, step), ids, at + len(page), rows)
        except RuntimeError:
            pass

    @_unless_closing
    def _page_read(self, shown, ids: list[str], page_at: int, rows: list[TaskRow]) -> None:
        self.paging = False
        if not self.is_mounted or self.shown is None or not _same(shown, self.shown):
            return
        self.paged, self.page_at = ids, page_at
        table = self.query_one("#tasks-table", DataTable)
        shown_ids = {str(key.value) for key in table.rows}
        rows = [r for r in rows if r.task_id not in shown_ids]
        self.extra_rows.extend(rows)
        self._add_rows(table, rows)
        self._say_rows(table)

    # ------------------------------------------------------------------ drawing
    def _draw(
        self, summary: Optional[StepSummary], plan: Optional[RerunPlan], profile: Optional[list[str]] = None
    ) -> None:
        if not self.is_mounted:
            return
        self.profile_lines = profile or []
        usage = self.query_one("#tasks-usage", Static)
        set_text(usage, escape("\n".join(self.usage_lines if summary is not None else [])))
        usage.display = bool(self.usage_lines) and summary is not None
        shown = self.query_one("#tasks-profile", Static)
        set_text(shown, escape("\n".join(self.profile_lines)))
        shown.display = bool(self.profile_lines)
        previous = self.summary
        self.summary, self.plan = summary, plan
        table = self.query_one("#tasks-table", DataTable)
        same_step = (
            previous is not None
            and summary is not None
            and (previous.run_id, previous.step)
            == (
                summary.run_id,
                summary.step,
            )
        )
        recent = time.monotonic() - self.rows_drawn_at < LIVE_ROWS_SECONDS
        # a live step keeps its rows (and pages) while its failed and slowest are unchanged, and for a few
        # seconds when they change: 200 rows redrawn every second would cost the keys their time
        same_rows = (
            same_step
            and previous is not None
            and summary is not None
            and (previous.rows == summary.rows or (recent and not summary.final))
        )
        cursor = table.cursor_row if table.row_count else 0  # a live refresh keeps the row the user is on
        if not same_rows:
            table.clear()
        title = self.query_one("#tasks-title", Static)
        if summary is None:
            set_text(title, "no run of this step yet")
            for name in ("#tasks-counts", "#tasks-fix", "#tasks-hist"):
                set_text(self.query_one(name, Static), "")
            self.query_one("#tasks-fix", Static).display = False
            self.log_lines, self.log_read, self.log_complete = [], False, False
            self._refill()
            self.loads += 1
            return
        counts = " · ".join(
            f"{GLYPH.get(s, '?')} {n} {s}" for s, n in sorted(summary.counts.items(), key=lambda kv: -kv[1])
        )
        set_text(self.query_one("#tasks-counts", Static), escape(counts))
        fix = ""
        if plan is not None:
            fix = (
                f"{escape(plan.headline())}\n{escape(plan.why)}\n"
                f"[b]x[/b] re-runs {escape(plan.step)} on its past inputs with this request (price shown first)"
            )
        set_text(self.query_one("#tasks-fix", Static), fix)
        self.query_one("#tasks-fix", Static).display = bool(fix)
        set_text(self.query_one("#tasks-hist", Static), escape("\n".join(histogram(summary.bins, lines=5))))
        if not same_rows:
            self._add_rows(table, summary.rows)
            if same_step:  # the pages read so far stay (the rows now in the summary's part once)
                listed = {row.task_id for row in summary.rows}
                self.extra_rows = [row for row in self.extra_rows if row.task_id not in listed]
                self._add_rows(table, self.extra_rows)
            self.rows_drawn_at = time.monotonic()
        self._say_rows(table)
        if table.row_count and cursor and not same_rows:
            table.move_cursor(row=min(cursor, table.row_count - 1), animate=False)
        if not same_step and not self.log_read:  # the merged log is read next, in its own worker
            self.query_one("#tasks-log", Log).clear()
            self._log_state("merged log: reading the tasks' logs…")
        self.loads += 1

    def _add_rows(self, table: DataTable, rows: list[TaskRow]) -> None:
        for row in rows:
            label = row.task_id + (f" [{row.index}]" if row.index else "")
            table.add_row(
                label,
                f"{GLYPH.get(row.status, '?')} {row.status}",
                seconds_text(row.seconds),
                str(row.attempt),
                row.reason[:80],
                key=row.task_id,
            )

    def _say_rows(self, table: DataTable) -> None:
        summary = self.summary
        if summary is None:
            return
        more = table.row_count < summary.total
        set_text(
            self.query_one("#tasks-title", Static),
            f"[b]{escape(summary.step)}[/b] in run {escape(summary.run_id)} · {summary.total:,} task(s)"
            + (f" · showing {table.row_count:,}: failed, slowest, then by id (↓ at the end reads more)" if more else "")
            + ("" if summary.final else " · live"),
        )

    def set_waiting(self, pathspec: Optional[str], reason: str, backend: str = "") -> None:
        """A live TaskWaiting: why a queued remote task is not running ("" once it runs or ends; a
        pathspec of None clears them all, at the end of a run)."""
        if pathspec is None:
            self.waiting.clear()
        elif reason:
            self.waiting[pathspec] = f"{backend}: {reason}" if backend else reason
        elif self.waiting.pop(pathspec, None) is None:
            return
        if not self.is_mounted:
            return
        shown = self.query_one("#tasks-waiting", Static)
        lines = [f"⏳ {p.split('/', 1)[-1]} waits: {why}" for p, why in list(self.waiting.items())[:5]]
        if len(self.waiting) > 5:
            lines.append(f"… and {len(self.waiting) - 5} more waiting")
        set_text(shown, escape("\n".join(lines)))
        shown.display = bool(lines)

    def _refill(self) -> None:
        """The merged log again, through the task filter: picked in a worker, written a slice at a time."""
        needle = self.query_one("#tasks-filter", Input).value.strip().lower()
        self.fills += 1
        self.query_one("#tasks-log", Log).clear()
        if needle.isdigit() and not self.log_read and self.shown is not None:
            self._read_one_log(*self.shown, needle)  # the whole merged log is still being read
            return
        self._pick_lines(self.fills, self.log_lines, needle)

    @work(thread=True, exclusive=True, group="tasks-fill")
    def _pick_lines(self, fill: int, lines: list[str], needle: str) -> None:
        shown = [line.partition("\t")[2] for line in lines if not needle or _matches(line.partition("\t")[0], needle)]
        for at in range(0, max(len(shown), 1), FILL_LINES):
            if fill != self.fills:
                return  # the filter changed meanwhile: a newer fill runs
            try:
                self.app.call_from_thread(
                    self._write_lines, fill, shown[at : at + FILL_LINES], at + FILL_LINES >= len(shown)
                )
            except RuntimeError:
                return

    @_unless_closing
    def _write_lines(self, fill: int, lines: list[str], last: bool) -> None:
        if fill == self.fills and self.is_mounted:
            self.query_one("#tasks-log", Log).write_lines(lines)
            self.log_complete = self.log_read and last

    @work(thread=True, exclusive=True, group="tasks-one-log")
    def _read_one_log(self, store, run_id: str, step: str, task_id: str) -> None:
        lines = merged_log(store.ds, run_id, step, [task_id])
        try:
            self.app.call_from_thread(self._one_log_read, task_id, lines)
        except RuntimeError:
            pass

    @_unless_closing
    def _one_log_read(self, task_id: str, lines: list[str]) -> None:
        if self.is_mounted and self.query_one("#tasks-filter", Input).value.strip() == task_id and not self.log_read:
            log = self.query_one("#tasks-log", Log)
            log.clear()
            log.write_lines([line.partition("\t")[2] for line in lines])

    @on(Input.Changed, "#tasks-filter")
    def _filter(self, event: Input.Changed) -> None:
        event.stop()
        self._refill()


def _same(a: tuple, b: tuple) -> bool:
    """The same (store, run, step) on screen: stores compare by flow and datastore."""
    return a[1:] == b[1:] and a[0].ds.url == b[0].ds.url and a[0].ds.flow == b[0].ds.flow


def _matches(task: str, needle: str) -> bool:
    """A filter of '12' picks task 12 (not 112); 'square/12' or '[3]' work too; other text is a substring."""
    if needle.isdigit():
        return task.split("/")[-1].split(" ")[0] == needle
    return needle in task.lower()


def usage_lines(docs) -> list[str]:
    """The memory and CPU sparklines of the task with the highest sampled memory (a foreach's worst case),
    or why none could be read on the step's backend."""
    from ...sampling import describe_timeline, timeline_peak_mib

    if not docs:
        return []
    doc = max(docs[:2000], key=lambda d: timeline_peak_mib(d.usage))
    lines = describe_timeline(doc.usage, str(doc.settings.get("backend") or ""), width=40)
    if not lines or not timeline_peak_mib(doc.usage):
        return lines
    return [f"usage of {doc.step}/{doc.task_id} over time:", *lines]


def profile_lines(store, run, run_id: str, step: str) -> list[str]:
    """The hot path of each profiled task: only a single-step run of this step can hold one, so other
    runs cost nothing here (a 10,000-task step is never read twice)."""
    if run is None or run.only_step != step:
        return []
    from ...profiling import describe_profile, step_profiles

    out: list[str] = []
    for task_id, entry in step_profiles(store.ds, run_id, step)[:4]:
        out.append(f"profile of {step}/{task_id} ({entry.get('profiler', 'pyinstrument')}):")
        out.extend("  " + line for line in describe_profile(store.ds, entry))
    return out
