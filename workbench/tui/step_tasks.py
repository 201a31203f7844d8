"""One step's tasks in one run, summarised for a screen: counts by state, a duration histogram, the
failed and slowest tasks first, the merged log ordered by time, and after an out-of-memory kill or a
timeout, the larger request to re-run the step with. Pure functions over task records, so that a
10,000-task foreach is summarised off the UI thread and the screen gets only what it draws."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from ..datastore.records import TaskRecord
from ..units import format_duration, format_memory

MAX_ROWS = 200  # task rows drawn at once; the rest are counted, never drawn
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
    durations: list[float] = field(default_factory=list)


def _seconds(doc: TaskRecord) -> Optional[float]:
    started, finished = doc.started_at, doc.finished_at
    if isinstance(started, (int, float)) and isinstance(finished, (int, float)) and finished >= started:
        return float(finished) - float(started)
    return None


def _index(doc: TaskRecord) -> str:
    frames = doc.foreach_stack
    return ".".join(str(f.get("index", "")) for f in frames if isinstance(f, dict))


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


def status_of(doc: TaskRecord) -> str:
    return "cloned" if doc.cloned_from else str(doc.status or "?")


def summarize(step: str, run_id: str, docs: list[TaskRecord], running: int = 0) -> StepSummary:
    """Counts by state (running tasks have a directory but no record yet), failed then slowest first."""
    counts: dict[str, int] = {}
    rows = []
    durations = []
    for doc in docs:
        status = status_of(doc)
        counts[status] = counts.get(status, 0) + 1
        seconds = _seconds(doc)
        if seconds is not None and status != "cloned":
            durations.append(seconds)
        rows.append(TaskRow(doc.task_id or "?", status, seconds, doc.attempt, doc.reason, _index(doc)))
    if running:
        counts["running"] = running
    bad = [r for r in rows if r.status not in ("succeeded", "cloned")]
    good = [r for r in rows if r.status in ("succeeded", "cloned")]
    good.sort(key=lambda r: -(r.seconds or 0.0))
    ordered = bad + good
    return StepSummary(step, run_id, len(docs) + running, counts, ordered[:MAX_ROWS], durations)


def histogram(durations: list[float], bins: int = 8, width: int = 24) -> list[str]:
    """Text bars of task durations: one line per bin, 'lo–hi  ████ n'."""
    if not durations:
        return []
    lo, hi = min(durations), max(durations)
    if hi - lo < 1e-9:
        return [f"{seconds_text(lo):>8}  {BAR * width} {len(durations)}"]
    step = (hi - lo) / bins
    counts = [0] * bins
    for d in durations:
        counts[min(bins - 1, int((d - lo) / step))] += 1
    top = max(counts)
    lines = []
    for i, n in enumerate(counts):
        bar = BAR * max(1 if n else 0, round(n * width / top))
        lines.append(f"{seconds_text(lo + i * step):>8}  {bar:<{width}} {n}")
    return lines


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
    wall = _seconds(doc) or 0.0
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
