"""The step inspector: decorators, effective settings with their sources, and promotion sliders."""

from __future__ import annotations

from typing import Any, Optional

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Button, Label, Select, Static

from ...backends import REGISTRY, is_remote
from ...units import format_memory
from ..capacity import Placement, clamp, price_line
from . import PaneMounted
from .slider import Slider, cpu_values, gpu_values, memory_values


def describe_step(graph, step_name: str, settings, error: Optional[str] = None) -> str:
    """Markup text: kind, decorators with line numbers, and every effective setting with its source."""
    step = graph.steps[step_name]
    lines = [f"[b]{escape(step_name)}[/b]  [$text-muted]{step.kind} · line {step.lineno}[/]"]
    if step.doc:
        lines.append(f"[$text-muted]{escape(step.doc.strip().splitlines()[0])}[/]")
    if step.decorators:
        for deco in step.decorators:
            args = ", ".join(f"{k}={v!r}" for k, v in deco.kwargs.items())
            lines.append(f"  @{escape(deco.name)}({escape(args)})  [$text-muted]line {deco.lineno}[/]")
    else:
        lines.append("  [$text-muted](no decorators)[/]")
    if error:
        lines.append(f"[$error]{escape(error)}[/]")
        return "\n".join(lines)
    rows = [
        ("backend", settings.backend),
        ("cpu", f"{settings.cpu:g}"),
        ("memory", format_memory(settings.memory)),
        ("gpu", str(settings.gpu)),
    ]
    if settings.image:
        rows.append(("image", settings.image))
    if settings.timeout:
        rows.append(("timeout", f"{settings.timeout}s"))
    if settings.retries:
        rows.append(("retries", str(settings.retries)))
    if settings.shared_memory:
        rows.append(("shared_memory", format_memory(settings.shared_memory)))
    for key in sorted(settings.env):
        rows.append((f"env {key}", settings.env[key]))
    for key, value in rows:
        source = settings.sources.get(key.split(" ")[0], "default")
        lines.append(f"  {key:<8} [b]{escape(str(value))}[/b]  [$text-muted]← {escape(source)}[/]")
    return "\n".join(lines)


def usage_text(usage: Optional[dict]) -> str:
    if not usage:
        return "measured: no finished run yet"
    mem = usage.get("peak_memory_mib")
    cpu = usage.get("cpu_seconds")
    parts = []
    if mem is not None:
        parts.append(f"peak memory {mem:g} MiB")
    if cpu is not None:
        parts.append(f"cpu {cpu:g} s")
    from ...sampling import describe_timeline  # a sparkline of memory and CPU over time, where sampled

    return "\n".join(["measured (last run): " + (", ".join(parts) or "n/a"), *describe_timeline(usage, width=30)])


def current_price(settings) -> str:
    """The hourly price of a step that already runs on a cloud backend (the same table promote uses)."""
    if settings is None or not is_remote(settings.backend):
        return ""
    try:
        from ...pricing import estimate

        price = estimate(settings.cpu, settings.memory, settings.gpu)
    except Exception:  # noqa: BLE001 - the table is an estimate; never break the inspector over it
        return ""
    return f"price now: {price.describe()}" if price else "price now: no common instance type fits"


class Inspector(VerticalScroll):
    DEFAULT_CSS = """
    Inspector { height: 1fr; padding: 0 1; }
    Inspector #settings-text { height: auto; text-wrap: nowrap; text-overflow: ellipsis; }
    Inspector .row { height: auto; }
    Inspector .row > Label.name { width: 9; }
    Inspector .row > Label.value { width: 8; text-align: right; }
    Inspector .row > Slider { margin: 0 1; }
    Inspector #backend { width: 1fr; }
    Inspector #measured, Inspector #plan-notes, Inspector #capacity { height: auto; color: $text-muted; }
    Inspector #price { height: auto; }
    Inspector #promote { margin-top: 1; }
    """

    class PromoteRequested(Message):
        def __init__(self, changes: dict) -> None:
            super().__init__()
            self.changes = changes

    class ChangesEdited(Message):
        def __init__(self, changes: dict) -> None:
            super().__init__()
            self.changes = changes

    class CapacityWanted(Message):
        """The backend selector shows ``backend``: the app reads what it can place (off the UI thread)."""

        def __init__(self, backend: str) -> None:
            super().__init__()
            self.backend = backend

    def on_mount(self) -> None:
        self.post_message(PaneMounted())

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings = None
        self.step: Optional[str] = None
        self.placement: Optional[Placement] = None

    def compose(self) -> ComposeResult:
        yield Static("Select a step in the DAG (j/k).", id="settings-text")
        with Horizontal(classes="row"):
            yield Label("backend", classes="name")
            yield Select([(b, b) for b in REGISTRY], value="local", allow_blank=False, id="backend", compact=True)
        with Horizontal(classes="row"):
            yield Label("cpu", classes="name")
            yield Slider(cpu_values(), 1, id="cpu", format=lambda v: f"{v:g}")
            yield Label("1", id="cpu-value", classes="value")
        with Horizontal(classes="row"):
            yield Label("memory", classes="name")
            yield Slider(memory_values(), 4096, id="memory", format=format_memory)
            yield Label("4G", id="memory-value", classes="value")
        with Horizontal(classes="row"):
            yield Label("gpu", classes="name")
            yield Slider(gpu_values(), 0, id="gpu")
            yield Label("0", id="gpu-value", classes="value")
        yield Static("", id="capacity")
        yield Static("", id="price")
        yield Static(usage_text(None), id="measured")
        yield Static("", id="plan-notes")
        yield Button("Promote (p)", id="promote", variant="primary", compact=True)

    def show(
        self, graph, step_name: Optional[str], settings, usage: Optional[dict], error: Optional[str] = None
    ) -> None:
        self.step = step_name
        self.settings = settings
        text = self.query_one("#settings-text", Static)
        if graph is None or step_name is None or step_name not in graph.steps:
            text.update("Select a step in the DAG (j/k).")
            return
        text.update(describe_step(graph, step_name, settings, error))
        if settings is not None:
            with self.prevent(Select.Changed, Slider.Changed):
                self._set_backend(settings.backend if settings.backend in REGISTRY else "local")
                self._clamp(
                    self.placement if self.placement and self.placement.backend == settings.backend else None,
                    (settings.cpu, settings.memory, settings.gpu),
                )
            self.post_message(self.CapacityWanted(self.backend))
        self._labels()
        self.query_one("#measured", Static).update(usage_text(usage))
        self.query_one("#plan-notes", Static).update(escape(current_price(settings)))

    def _set_backend(self, name: str) -> None:
        """Set the selector; just after mounting its overlay may not be there yet: then once it is."""
        select = self.query_one("#backend", Select)
        try:
            select.value = name
        except NoMatches:
            self.call_after_refresh(self._set_backend_later, name)

    def _set_backend_later(self, name: str) -> None:
        with self.prevent(Select.Changed):
            try:
                self.query_one("#backend", Select).value = name
            except NoMatches:
                pass

    @property
    def backend(self) -> str:
        value = self.query_one("#backend", Select).value
        return value if isinstance(value, str) else "local"

    def _clamp(self, placement: Optional[Placement], values: tuple) -> None:
        """Slider notches up to what ``placement`` can take; the step's own settings stay reachable."""
        current = self.settings
        keep = (current.cpu, current.memory, current.gpu) if current is not None else (None, None, None)
        value_lists: tuple[list[float] | list[int], ...] = (cpu_values(), memory_values(), gpu_values())
        limits = (placement.cpu, placement.memory, placement.gpu) if placement else (None, None, None)
        for name, full, limit, kept, value in zip(
            ("cpu", "memory", "gpu"), value_lists, limits, keep, values, strict=True
        ):
            notches = clamp(full, limit, kept)
            if name == "cpu" and limit is not None and limit not in notches and limit >= 1:
                notches = sorted(notches + [limit], key=float)  # a 2-CPU engine offers exactly 2
            self.query_one(f"#{name}", Slider).set_values(notches, value)

    def set_capacity(self, placement: Placement) -> None:
        """What the selected backend can place arrived: clamp the sliders to it and say where it came from."""
        if not self.query("#capacity") or placement.backend != self.backend:
            return  # not composed yet (show asks again), or the selector moved on meanwhile
        self.placement = placement
        with self.prevent(Slider.Changed):
            self._clamp(placement, tuple(self.query_one(f"#{n}", Slider).value for n in ("cpu", "memory", "gpu")))
        over: list[str] = []
        if placement.known and self.settings is not None:
            for name, want, have in (
                ("cpu", self.settings.cpu, placement.cpu),
                ("memory", self.settings.memory, placement.memory),
                ("gpu", self.settings.gpu, placement.gpu),
            ):
                if have is not None and float(want) > float(have):
                    over.append(f"{name} {format_memory(want) if name == 'memory' else f'{want:g}'}")
        note = placement.note + (f"; asks for more: {', '.join(over)}" if over else "")
        self.query_one("#capacity", Static).update(escape(note))
        self._labels()

    def _price(self) -> None:
        cpu, memory, gpu = (self.query_one(f"#{n}", Slider).value for n in ("cpu", "memory", "gpu"))
        try:
            text = price_line(self.backend, float(cpu), int(memory), int(gpu), self.settings)
        except Exception as exc:  # noqa: BLE001 - the table is an estimate; never break the inspector over it
            text = f"price: unknown ({exc})"
        self.query_one("#price", Static).update(escape(text))

    def _labels(self) -> None:
        for name in ("cpu", "memory", "gpu"):
            slider = self.query_one(f"#{name}", Slider)
            self.query_one(f"#{name}-value", Label).update(slider.format(slider.value))
        self._price()

    def changes(self) -> dict[str, Any]:
        """Values that differ from the effective settings, in the form `workbench promote` takes."""
        if self.settings is None:
            return {}
        out: dict[str, Any] = {}
        backend = self.query_one("#backend", Select).value
        if isinstance(backend, str) and backend != self.settings.backend:
            out["backend"] = backend
        cpu = self.query_one("#cpu", Slider).value
        if float(cpu) != float(self.settings.cpu):
            out["cpu"] = cpu
        memory = self.query_one("#memory", Slider).value
        if int(memory) != int(self.settings.memory):
            out["memory"] = format_memory(memory)
        gpu = self.query_one("#gpu", Slider).value
        if int(gpu) != int(self.settings.gpu):
            out["gpu"] = gpu
        if out and "backend" not in out and isinstance(backend, str):
            out = {"backend": backend, **out}  # what the selector shows is where the step will run
        return out

    def set_notes(self, notes: list[str]) -> None:
        self.query_one("#plan-notes", Static).update("\n".join(escape(n) for n in notes))

    @on(Slider.Changed)
    @on(Select.Changed, "#backend")
    def _edited(self, event) -> None:
        event.stop()
        if isinstance(event, Select.Changed):
            self.query_one("#capacity", Static).update(f"{escape(self.backend)}: reading what it can place…")
            self.post_message(self.CapacityWanted(self.backend))
        self._labels()
        self.post_message(self.ChangesEdited(self.changes()))

    @on(Button.Pressed, "#promote")
    def _promote(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.PromoteRequested(self.changes()))
