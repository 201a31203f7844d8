"""One step's tasks in one run, summarised for a screen: counts by state, a duration histogram, the
failed and slowest tasks first, and after an out-of-memory kill or a timeout, the larger request to
re-run the step with. Pure functions over the step's summary record (:mod:`workbench.step_summary`,
written by the runtime), or over its task records for a run written before summaries existed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from ..datastore.records import DURATION_EDGES, StepSummaryRecord, TaskBrief, TaskRecord
from ..step_summary import foreach_index, summarize_records, task_seconds, task_state
from ..units import format_duration, format_memory

MAX_ROWS = 200  # task rows drawn at first (failed, then slowest); more are read a page at a time
PAGE_ROWS = 100  # task records read per page when the table is scrolled past its last row
MAX_LOG_LINES = 50_000  # merged log lines kept (the newest), however many tasks wrote them
FIXABLE = ("oom", "timeout")
BAR = "█"


@dataclass
class TaskRow:
    task_id: str
    status: str
    seconds: Optional[float]
    attempt: int
    reason: str
    index: str  # the foreach index path ("3", "1.4"), or "" outside a foreach


@dataclass
class StepSummary:
    step: str
    run_id: str
    total: int
    counts: dict[str, int]
    rows: list[TaskRow]  # failed first, then slowest; at most MAX_ROWS
    bins: list[int] = field(default_factory=list)  # finished tasks per DURATION_EDGES bin
    failed_total: int = 0
    final: bool = True  # False while the run may still change it
    peak_memory_task: Optional[str] = None


def seconds_text(secs: Optional[float]) -> str:
    """Durations as people read them at a glance: 0.42s, 12.3s, 4m05s, 2h10m."""
    if secs is None:
        return "-"
    if secs < 10:
        return f"{secs:.2f}s"
    if secs < 60:
        return f"{secs:.1f}s"
    if secs < 3600:
        return f"{int(secs // 60)}m{int(secs % 60):02d}s"
    return f"{int(secs // 3600)}h{int(secs % 3600 // 60):02d}m"


def row_of(doc: TaskRecord) -> TaskRow:
    """A task record as a table row (the pages read beyond the summary's rows)."""
    return TaskRow(doc.task_id or "?", task_state(doc), task_seconds(doc), doc.attempt, doc.reason, foreach_index(doc))


def _row(brief: TaskBrief) -> TaskRow:
    return TaskRow(brief.task_id, brief.status, brief.seconds, brief.attempt, brief.reason, brief.index)


def from_record(record: StepSummaryRecord, run_status: Optional[str] = None) -> StepSummary:
    """What the step view draws, from the step's summary record. Tasks a run that is no longer running
    left in flight (it crashed) are counted as ``unfinished``, not as running."""
    counts = dict(record.counts)
    if run_status not in (None, "running"):
        stuck = counts.pop("running", 0) + counts.pop("retrying", 0)
        if stuck:
            counts["unfinished"] = stuck
    rows = [_row(b) for b in record.failed]
    seen = {r.task_id for r in rows}
    rows += [_row(b) for b in record.slowest if b.task_id not in seen]
    return StepSummary(
        record.step,
        record.run_id,
        record.total,
        counts,
        rows[:MAX_ROWS],
        list(record.durations),
        record.failed_total,
        record.final or run_status not in (None, "running"),
        record.peak_memory_task,
    )


def summarize(step: str, run_id: str, docs: list[TaskRecord], running: int = 0) -> StepSummary:
    """Counts by state (running tasks have a directory but no record yet), failed then slowest first:
    the summary of a run written before the runtime wrote summaries, from its task records."""
    return from_record(summarize_records("", run_id, step, docs, running))


def _edge(i: int) -> float:
    return 0.0 if i == 0 else float(DURATION_EDGES[i - 1])


def _range(first: int, last: int) -> str:
    if last >= len(DURATION_EDGES):
        return f"≥{seconds_text(_edge(first))}"
    return f"{seconds_text(_edge(first))}–{seconds_text(float(DURATION_EDGES[last]))}"


def histogram(bins: list[int], lines: int = 8, width: int = 24) -> list[str]:
    """Text bars of task durations: one line per range from the fastest task's bin to the slowest's
    (adjacent bins merged to fit ``lines``), each 'from–to  ████ n'."""
    used = [i for i, n in enumerate(bins) if n]
    if not used:
        return []
    lo, hi = used[0], used[-1]
    group = -(-(hi - lo + 1) // lines)  # bins per line, rounded up
    rows = []
    for first in range(lo, hi + 1, group):
        last = min(first + group, hi + 1) - 1
        rows.append((_range(first, last), sum(bins[first : last + 1])))
    top = max(n for _, n in rows)
    label = max(len(text) for text, _ in rows)
    return [f"{text:>{label}}  {BAR * max(1 if n else 0, round(n * width / top)):<{width}} {n}" for text, n in rows]


@dataclass
class RerunPlan:
    """Re-run a step that was killed for memory or time, on its past inputs, with a larger request."""

    step: str
    run_id: str
    pathspec: str
    status: str  # oom | timeout
    reason: str
    backend: str
    cpu: float
    memory: int
    timeout: Optional[int]
    new_cpu: float
    new_memory: int
    new_timeout: Optional[int]
    why: str

    def overrides(self, backend: Optional[str] = None) -> dict[str, Any]:
        """The step's settings for the re-run, in the form Runtime(step_overrides=...) takes."""
        out: dict[str, Any] = {
            "backend": backend or self.backend,
            "cpu": self.new_cpu,
            "memory": format_memory(self.new_memory),
        }
        if self.new_timeout:
            out["timeout"] = self.new_timeout
        return out

    def headline(self) -> str:
        what = "ran out of memory" if self.status == "oom" else "timed out"
        return f"{self.pathspec} {what}: {self.reason or self.status}"


def plan_rerun(doc: TaskRecord, run_id: str) -> Optional[RerunPlan]:
    """A larger request for a task that ended with oom or timeout, from its measured usage: memory is the
    measured peak + 50% rounded up to a power of two (workbench.usage) and at least twice the old limit
    when the kill was for memory; the timeout doubles; CPUs are those the task kept busy."""
    from ..usage import suggest_request

    status = str(doc.status or "")
    if status not in FIXABLE:
        return None
    settings = doc.settings
    usage = doc.usage
    cpu = float(settings.get("cpu") or 1)
    memory = int(settings.get("memory") or 0) or 4096
    timeout = settings.get("timeout") or None
    from ..sampling import timeline_peak_mib  # the timeline's peak: the whole process group, over time

    peak = max(float(usage.get("peak_memory_mib") or 0.0), timeline_peak_mib(usage))
    wall = task_seconds(doc) or 0.0
    suggested_memory, suggested_cpu = suggest_request(peak, float(usage.get("cpu_seconds") or 0.0), wall)
    new_cpu, new_memory, new_timeout = max(cpu, float(suggested_cpu)), max(memory, suggested_memory), timeout
    why = [f"measured peak {format_memory(peak)}" if peak else "no memory was measured"]
    if status == "oom":
        new_memory = max(new_memory, 2 ** math.ceil(math.log2(max(memory, 1) * 2)))
        why.append(
            f"memory {format_memory(memory)} → {format_memory(new_memory)} (peak + 50%, at least twice "
            f"the limit it hit)"
        )
    else:
        new_timeout = int(timeout) * 2 if timeout else None
        why.append(
            f"timeout {format_duration(timeout)} → {format_duration(new_timeout)}"
            if timeout
            else "no timeout was set; the backend's limit ended it"
        )
    if new_cpu != cpu:
        why.append(f"cpu {cpu:g} → {new_cpu:g} (CPUs it kept busy)")
    return RerunPlan(
        doc.step,
        run_id,
        doc.pathspec,
        status,
        doc.reason,
        str(settings.get("backend") or "local"),
        cpu,
        memory,
        int(timeout) if timeout else None,
        new_cpu,
        new_memory,
        new_timeout,
        "; ".join(why),
    )


def price_change(plan: RerunPlan, backend: str) -> str:
    """The hourly price before and after, where a price applies (cloud backends)."""
    from ..pricing import estimate

    cloud = ("batch", "kubernetes")
    before = estimate(plan.cpu, plan.memory, 0) if plan.backend in cloud else None
    after = estimate(plan.new_cpu, plan.new_memory, 0) if backend in cloud else None
    if before is None and after is None:
        return f"price: none before or after ({plan.backend} → {backend} run on machines you have)"
    b = f"${before.hourly_usd:.3f}/hour" if before else "none"
    a = f"${after.hourly_usd:.3f}/hour ({after.instance_type})" if after else "none"
    diff = (after.hourly_usd if after else 0.0) - (before.hourly_usd if before else 0.0)
    return f"price: {b} → {a}, {diff:+.3f} $/hour (an estimate)"
