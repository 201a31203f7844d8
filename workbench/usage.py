"""Measured resource usage of past tasks, and the request it suggests: one rule, used by `workbench show
--usage`, by `workbench promote` (to compare a new request with the measured peak) and by the TUI's
inspector, so all three show the same figures.

The rule: a step's usage comes from the newest of the flow's last :data:`RUNS_LOOKED_AT` runs in which
that step has tasks that measured something (cloned tasks are skipped: they did not run). Within that
run the figures are the largest over the step's tasks (a foreach step's peak is its hungriest task's),
reading at most :data:`TASKS_LOOKED_AT` of them (and passing over a run whose first :data:`PROBE_TASKS`
measured nothing), so that a 10,000-wide foreach costs the TUI's inspector a bounded number of reads;
every caller uses the same bounds, so they always agree.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

from .config import ProjectConfig
from .datastore import FlowDatastore
from .datastore.records import TaskRecord
from .graph import FlowGraph
from .past_runs import PastRuns

RUNS_LOOKED_AT = 20
TASKS_LOOKED_AT = 200
PROBE_TASKS = 20


def step_usage(tasks: Iterable[TaskRecord], run_id: str) -> Optional[dict[str, Any]]:
    """The usage of one step in one run, from its task records; None when none of them measured any.

    Keys: peak_memory_mib, cpu_seconds, wall_seconds (each the largest over the tasks), tasks (how many
    measured), backend (of the first measured task's last attempt), run_id, and timeline (the sampled
    usage over time of the task with the largest peak, where one was sampled: workbench.sampling)."""
    out: Optional[dict[str, Any]] = None
    for doc in tasks:
        u = doc.usage
        if doc.cloned_from or not u.get("peak_memory_mib"):
            continue
        if out is None:
            out = {
                "peak_memory_mib": 0.0,
                "cpu_seconds": 0.0,
                "tasks": 0,
                "run_id": run_id,
                "wall_seconds": 0.0,
                "backend": doc.attempts[-1].backend if doc.attempts else None,
            }
        if u.get("timeline") and u["peak_memory_mib"] >= out["peak_memory_mib"]:
            out["timeline"] = u["timeline"]  # the hungriest task's, as the Tasks tab shows
        out["peak_memory_mib"] = max(out["peak_memory_mib"], u["peak_memory_mib"])
        out["cpu_seconds"] = max(out["cpu_seconds"], u.get("cpu_seconds", 0.0))
        out["wall_seconds"] = max(out["wall_seconds"], (doc.finished_at or 0) - (doc.started_at or 0))
        out["tasks"] += 1
    return out


def usage_by_step(ds: FlowDatastore, steps: Optional[Iterable[str]] = None) -> dict[str, dict[str, Any]]:
    """Step -> its measured usage by the rule above (only ``steps``, when given)."""
    history = PastRuns(ds)
    wanted = set(steps) if steps is not None else None
    usage: dict[str, dict[str, Any]] = {}
    for run_id in reversed(history.runs()[-RUNS_LOOKED_AT:]):
        for step in history.steps(run_id):
            if step in usage or (wanted is not None and step not in wanted):
                continue
            measured = step_usage(_first_tasks(history, run_id, step), run_id)
            if measured is not None:
                usage[step] = measured
        if wanted is not None and wanted <= set(usage):
            break
    return usage


def _first_tasks(history: PastRuns, run_id: str, step: str) -> list[TaskRecord]:
    out: list[TaskRecord] = []
    for n, task_id in enumerate(history.task_ids(run_id, step)[:TASKS_LOOKED_AT]):
        if n == PROBE_TASKS and not any(d.usage.get("peak_memory_mib") and not d.cloned_from for d in out):
            return []  # this run did not measure the step
        try:
            doc = history.ds.read_task(run_id, step, task_id)
        except Exception:  # noqa: BLE001 - a broken record reads as absent, as everywhere on the read side
            doc = None
        if doc is not None:
            out.append(doc)
    return out


def measured_usage(config: ProjectConfig, graph: FlowGraph) -> dict[str, dict[str, Any]]:
    """Peak memory and CPU per step of ``graph``'s flow (see the module's rule)."""
    return usage_by_step(FlowDatastore(config.datastore_url, graph.name or ""))


def suggest_request(peak_mib: float, cpu_seconds: float, wall_seconds: float) -> tuple[int, float]:
    """Peak memory plus 50% headroom, rounded up to a power of two (>= 512M) and CPUs actually used, rounded up."""
    want = max(512.0, peak_mib * 1.5)
    memory = 2 ** math.ceil(math.log2(want))
    cpu = max(1, math.ceil(cpu_seconds / wall_seconds)) if wall_seconds > 0 else 1
    return memory, cpu
