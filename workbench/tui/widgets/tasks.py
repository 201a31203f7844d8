"""The Tasks tab: the selected step's tasks in the shown run. Counts by state, a duration histogram, the
failed and slowest tasks first (at most MAX_ROWS drawn), the merged log of all its tasks ordered by
time with a task filter, and after an out-of-memory kill or a timeout, why and the key that re-runs it.

Records and logs are read in a worker thread; the UI thread only draws the summary, so a step with
10,000 tasks never freezes the screen."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Log, Static

from ..step_tasks import MAX_LOG_LINES, MAX_ROWS, RerunPlan, StepSummary, histogram, plan_rerun, seconds_text, summarize
from . import PaneMounted

GLYPH = {"succeeded": "✔", "failed": "✘", "oom": "✘", "timeout": "✘", "cancelled": "■", "running": "▶", "cloned": "↺"}


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
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.summary: Optional[StepSummary] = None
        self.plan: Optional[RerunPlan] = None
        self.waiting: dict[str, str] = {}  # pathspec -> why the queued remote task is not running yet
        self.usage_lines: list[str] = []  # the usage timeline of the step's hungriest task (workbench.sampling)
        self.profile_lines: list[str] = []  # the hot path of a profiled run of this step (workbench.profiling)
        self.log_lines: list[tuple[str, str, str]] = []  # (timestamp, task label, text), ordered by time
        self.loads = 0  # finished loads, for tests

    def on_mount(self) -> None:
        self.post_message(PaneMounted())

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
        yield Log(id="tasks-log", max_lines=MAX_LOG_LINES)

    # ------------------------------------------------------------------ loading (off the UI thread)
    def show(self, store, run_id: Optional[str], step: Optional[str]) -> None:
        if store is None or step is None:
            self._draw(None, None, [])
            return
        self._load(store, run_id or store.latest_run(), step)

    @work(thread=True, exclusive=True, group="tasks")
    def _load(self, store, run_id: Optional[str], step: str) -> None:
        if run_id is None:
            self.app.call_from_thread(self._draw, None, None, [])
            return
        docs = store.tasks(run_id, step)
        running = 0
        run = store.run_doc(run_id)
        if run is not None and run.status == "running":
            running = max(0, store.task_counts(run_id).get(step, 0) - len(docs))
        summary = summarize(step, run_id, docs, running)
        plan = next((p for p in (plan_rerun(d, run_id) for d in docs) if p is not None), None)
        lines = merged_log(store, run_id, step, [d.task_id for d in docs])
        profile = profile_lines(store, run, run_id, step)
        self.usage_lines = usage_lines(docs)
        self.app.call_from_thread(self._draw, summary, plan, lines, profile)

    # ------------------------------------------------------------------ drawing
    def _draw(
        self,
        summary: Optional[StepSummary],
        plan: Optional[RerunPlan],
        lines: list,
        profile: Optional[list[str]] = None,
    ) -> None:
        if not self.is_mounted:
            return
        self.profile_lines = profile or []
        usage = self.query_one("#tasks-usage", Static)
        usage.update(escape("\n".join(self.usage_lines if summary is not None else [])))
        usage.display = bool(self.usage_lines) and summary is not None
        shown = self.query_one("#tasks-profile", Static)
        shown.update(escape("\n".join(self.profile_lines)))
        shown.display = bool(self.profile_lines)
        self.summary, self.plan, self.log_lines = summary, plan, lines
        table = self.query_one("#tasks-table", DataTable)
        table.clear()
        title = self.query_one("#tasks-title", Static)
        if summary is None:
            title.update("no run of this step yet")
            for name in ("#tasks-counts", "#tasks-fix", "#tasks-hist"):
                self.query_one(name, Static).update("")
            self.query_one("#tasks-fix", Static).display = False
            self._refill()
            self.loads += 1
            return
        title.update(
            f"[b]{escape(summary.step)}[/b] in run {escape(summary.run_id)} · {summary.total} task(s)"
            + (f" · showing {len(summary.rows)}: failed, then slowest" if summary.total > MAX_ROWS else "")
        )
        counts = " · ".join(
            f"{GLYPH.get(s, '?')} {n} {s}" for s, n in sorted(summary.counts.items(), key=lambda kv: -kv[1])
        )
        self.query_one("#tasks-counts", Static).update(escape(counts))
        fix = ""
        if plan is not None:
            fix = (
                f"{escape(plan.headline())}\n{escape(plan.why)}\n"
                f"[b]x[/b] re-runs {escape(plan.step)} on its past inputs with this request (price shown first)"
            )
        self.query_one("#tasks-fix", Static).update(fix)
        self.query_one("#tasks-fix", Static).display = bool(fix)
        self.query_one("#tasks-hist", Static).update(escape("\n".join(histogram(summary.durations, bins=5))))
        for row in summary.rows:
            label = row.task_id + (f" [{row.index}]" if row.index else "")
            table.add_row(
                label,
                f"{GLYPH.get(row.status, '?')} {row.status}",
                seconds_text(row.seconds),
                str(row.attempt),
                row.reason[:80],
                key=row.task_id,
            )
        self._refill()
        self.loads += 1

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
        shown.update(escape("\n".join(lines)))
        shown.display = bool(lines)

    def _refill(self) -> None:
        needle = self.query_one("#tasks-filter", Input).value.strip().lower()
        log = self.query_one("#tasks-log", Log)
        log.clear()
        shown = [
            f"{_clock(ts)} [{task}] {text}" for ts, task, text in self.log_lines if not needle or _matches(task, needle)
        ]
        log.write_lines(shown)

    @on(Input.Changed, "#tasks-filter")
    def _filter(self, event: Input.Changed) -> None:
        event.stop()
        self._refill()


def _matches(task: str, needle: str) -> bool:
    """A filter of '12' picks task 12 (not 112); 'square/12' or '[3]' work too; other text is a substring."""
    if needle.isdigit():
        return task.split("/")[-1].split(" ")[0] == needle
    return needle in task.lower()


def _clock(ts: str) -> str:
    """The time of day of an ISO timestamp (the merged log is one run; the date is noise)."""
    try:
        return dt.datetime.fromisoformat(ts).strftime("%H:%M:%S.%f")[:-3]
    except ValueError:
        return ts


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


def merged_log(store, run_id: str, step: str, task_ids: list[str]) -> list[tuple[str, str, str]]:
    """Every line of every task of the step, ordered by time (ties keep each task's order); the newest
    MAX_LOG_LINES when there are more."""
    lines: list[tuple[str, str, str]] = []
    from ..runs import BREATHE_EVERY, breathe

    for n, task_id in enumerate(task_ids):
        if n % BREATHE_EVERY == BREATHE_EVERY - 1:
            breathe()
        try:
            for ts, _stream, text in store.ds.read_log(run_id, step, task_id):
                lines.append((ts, f"{step}/{task_id}", text))
        except Exception:  # noqa: BLE001 - a missing or half-written log: the other tasks still show
            continue
    lines.sort(key=lambda line: line[0])
    return lines[-MAX_LOG_LINES:]
