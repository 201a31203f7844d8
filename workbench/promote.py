"""Promotion: move one step to another backend or a bigger machine by writing workbench.toml, never the
flow's code. ``workbench promote`` and the TUI's Promote action both go through
:func:`plan_promotion` and :func:`apply_promotion`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import is_remote
from .config import CONFIG_NAME, ProjectConfig, edit_step
from .errors import ResourceError, UsageError, WorkbenchError
from .graph import FlowGraph
from .settings import StepSettings, effective_settings
from .units import format_duration, format_memory, parse_cpu, parse_duration, parse_gpu, parse_memory

MAX_GPUS = 16


@dataclass
class Promotion:
    config: ProjectConfig
    graph: FlowGraph
    step: str
    values: dict[str, Any]  # what goes into [flows.<flow>.steps.<step>]
    diff: str
    settings: StepSettings  # the step's effective settings once written
    notes: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.config.path or (self.config.root / CONFIG_NAME)


def _normalise(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate values and give them the form they take in workbench.toml."""
    out: dict[str, Any] = {}
    for key, raw in changes.items():
        if raw is None or raw == "":
            continue
        key = key.replace("-", "_")
        if key == "cpu":
            cpu = parse_cpu(raw, "--cpu")
            out["cpu"] = int(cpu) if cpu == int(cpu) else cpu
        elif key in ("memory", "shared_memory"):
            out[key] = format_memory(parse_memory(raw, f"--{key.replace('_', '-')}"))
        elif key == "gpu":
            gpu = parse_gpu(raw, "--gpu")
            if gpu > MAX_GPUS:
                raise ResourceError(f"--gpu {raw}: no machine has more than {MAX_GPUS} GPUs")
            out["gpu"] = gpu
        elif key == "timeout":
            out["timeout"] = format_duration(parse_duration(raw, "--timeout"))
        elif key in ("backend", "image"):
            out[key] = str(raw)
        else:
            raise UsageError(
                f"cannot promote {key} (settable: backend, cpu, memory, gpu, shared_memory, image, timeout)"
            )
    return out


def plan_promotion(
    config: ProjectConfig, graph: FlowGraph, step: str, changes: dict[str, Any], *, check_capacity: bool = True
) -> Promotion:
    if step not in graph.steps:
        raise UsageError(f"flow {graph.name} has no step {step} (steps: {', '.join(graph.steps)})")
    values = _normalise(changes)
    if "backend" not in values:
        current = config.step_section(graph.name or "", step)
        values["backend"] = (
            current.backend if current and current.backend else None
        ) or config.model.project.remote_backend
    values = {"backend": values.pop("backend"), **values}
    new = effective_settings(graph, step, config, cli=values)
    notes: list[str] = []
    from .preflight import image_warning, refuse_impossible, summary_line

    refuse_impossible(new)
    if check_capacity:
        _check_capacity(config, new, notes)
    needs = summary_line(step, config, new)
    if needs:
        notes.append(f"warning: {needs}")
    image_note = image_warning(config, new)
    if image_note:
        notes.append(f"warning: {image_note}")
    notes.extend(_usage_notes(config, graph, step, new))
    from .pricing import estimate

    price = estimate(new.cpu, new.memory, new.gpu)
    if is_remote(new.backend):
        notes.append(f"price: {price.describe()}" if price else "price: no common EC2 instance type fits this request")
    diff = edit_step(config.path or config.root / CONFIG_NAME, graph.name or "", step, values, dry_run=True)
    return Promotion(config, graph, step, values, diff, new, notes)


def apply_promotion(promotion: Promotion) -> str:
    return edit_step(promotion.path, promotion.graph.name or "", promotion.step, promotion.values)


def _check_capacity(config: ProjectConfig, s: StepSettings, notes: list[str]) -> None:
    from .backends import backend_class

    try:
        cap = backend_class(s.backend)(config).capacity()
    except WorkbenchError as exc:
        notes.append(f"could not check what {s.backend} can schedule: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - an unreachable backend must not block editing the file
        notes.append(f"could not check what {s.backend} can schedule: {type(exc).__name__}: {exc}")
        return
    if cap is None:
        return
    too_big = [
        f"{name} {want}"
        for name, want, have in (
            ("cpu", f"{s.cpu:g}", s.cpu > cap.cpu),
            ("memory", format_memory(s.memory), s.memory > cap.memory),
            ("gpu", str(s.gpu), s.gpu > cap.gpu),
        )
        if have
    ]
    if too_big:
        raise ResourceError(
            f"{s.backend} cannot schedule {', '.join(too_big)}: the largest fit is cpu "
            f"{cap.cpu:g}, memory {format_memory(cap.memory)}, gpu {cap.gpu}"
            + (f" ({cap.source})" if cap.source else "")
        )


def _usage_notes(config: ProjectConfig, graph: FlowGraph, step: str, s: StepSettings) -> list[str]:
    from .usage import measured_usage

    u = measured_usage(config, graph).get(step)
    if not u:
        return []
    peak = u["peak_memory_mib"]
    notes = [
        f"memory {format_memory(s.memory)}; measured peak {format_memory(peak)} (run {u['run_id']} on {u['backend']})"
    ]
    if s.memory < peak:
        notes.append(
            f"warning: memory {format_memory(s.memory)} is below the measured peak; the step may be killed for memory"
        )
    return notes


def demote_step(config: ProjectConfig, graph: FlowGraph, step: str, *, dry_run: bool = False) -> str:
    """Remove the step's table from workbench.toml; returns the diff ("" when it had no overrides)."""
    if config.path is None:
        return ""
    return edit_step(config.path, graph.name or "", step, {}, remove=True, dry_run=dry_run)
