"""Measured resource usage of past tasks, and the request it suggests. Used by `workbench show --usage`
and by `workbench promote` (to compare a new request with the measured peak)."""

from __future__ import annotations

import math
from typing import Any

from .config import ProjectConfig
from .datastore import FlowDatastore
from .graph import FlowGraph


def measured_usage(config: ProjectConfig, graph: FlowGraph) -> dict[str, dict[str, Any]]:
    """Peak memory and CPU per step from the latest run that measured them."""
    if not graph.name:
        return {}  # not a flow (nothing found in the file): no runs to measure
    ds = FlowDatastore(config.datastore_url, graph.name)
    for run_id in reversed(ds.list_runs()[-20:]):
        usage: dict[str, dict[str, Any]] = {}
        for step in ds.list_steps(run_id):
            for task_id in ds.list_tasks(run_id, step):
                doc = ds.read_task(run_id, step, task_id)
                if doc is None or not doc.usage.get("peak_memory_mib"):
                    continue
                u = doc.usage
                cur = usage.setdefault(step, {"peak_memory_mib": 0.0, "cpu_seconds": 0.0, "tasks": 0,
                                              "backend": doc.attempts[-1].backend if doc.attempts else None,
                                              "run_id": run_id, "wall_seconds": 0.0})
                cur["peak_memory_mib"] = max(cur["peak_memory_mib"], u["peak_memory_mib"])
                cur["cpu_seconds"] = max(cur["cpu_seconds"], u.get("cpu_seconds", 0.0))
                cur["wall_seconds"] = max(cur["wall_seconds"], (doc.finished_at or 0) - (doc.started_at or 0))
                cur["tasks"] += 1
        if usage:
            return usage
    return {}


def suggest_request(peak_mib: float, cpu_seconds: float, wall_seconds: float) -> tuple[int, float]:
    """Peak memory plus 50% headroom, rounded up to a power of two (>= 512M) and CPUs actually used, rounded up."""
    want = max(512.0, peak_mib * 1.5)
    memory = 2 ** math.ceil(math.log2(want))
    cpu = max(1, math.ceil(cpu_seconds / wall_seconds)) if wall_seconds > 0 else 1
    return memory, cpu
