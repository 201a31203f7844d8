"""Confirm a re-run of a step that ran out of memory or time: the larger request, where it runs, and the
price difference, before anything starts. y/enter re-runs, escape cancels."""

from __future__ import annotations

from typing import Optional

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Select, Static

from ...units import format_memory
from ..step_tasks import RerunPlan, price_change


class RerunScreen(ModalScreen[Optional[str]]):
    """Dismisses with the backend to re-run on, or None."""

    BINDINGS = [Binding("y", "go", "Re-run"), Binding("escape,n", "cancel", "Cancel")]
    DEFAULT_CSS = """
    RerunScreen { align: center middle; }
    RerunScreen > Vertical { width: 90%; max-width: 90; height: auto; border: round $warning;
                             background: $surface; padding: 0 1; }
    RerunScreen Static { height: auto; }
    RerunScreen #rerun-price { color: $text-accent; }
    RerunScreen .row { height: auto; }
    RerunScreen .row > Static { width: 10; }
    RerunScreen #rerun-backend { width: 1fr; }
    RerunScreen #rerun-buttons { height: auto; align: right middle; }
    RerunScreen Button { margin-left: 2; }
    """

    def __init__(self, plan: RerunPlan, backends: list[str]) -> None:
        super().__init__()
        self.plan = plan
        self.backends = backends

    def compose(self) -> ComposeResult:
        plan = self.plan
        request = [
            f"memory {format_memory(plan.memory)} → [b]{format_memory(plan.new_memory)}[/b]",
            f"cpu {plan.cpu:g} → [b]{plan.new_cpu:g}[/b]",
        ]
        if plan.timeout or plan.new_timeout:
            request.append(f"timeout {plan.timeout or '-'}s → [b]{plan.new_timeout or '-'}s[/b]")
        with Vertical():
            yield Static(f"[b]Re-run {escape(plan.step)}[/b] on the inputs of run {escape(plan.run_id)}")
            yield Static(f"[$warning]{escape(plan.headline())}[/]")
            yield Static(escape(plan.why))
            yield Static("  ".join(request), id="rerun-request")
            with Horizontal(classes="row"):
                yield Static("backend")
                yield Select(
                    [(b, b) for b in self.backends],
                    value=plan.backend if plan.backend in self.backends else self.backends[0],
                    allow_blank=False,
                    id="rerun-backend",
                    compact=True,
                )
            yield Static(escape(price_change(plan, plan.backend)), id="rerun-price")
            with Horizontal(id="rerun-buttons"):
                yield Button("Re-run (y)", id="rerun-go", variant="warning", compact=True)
                yield Button("Cancel (esc)", id="rerun-cancel", compact=True)

    @property
    def backend(self) -> str:
        value = self.query_one("#rerun-backend", Select).value
        return value if isinstance(value, str) else self.plan.backend

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.query_one("#rerun-price", Static).update(escape(price_change(self.plan, self.backend)))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self.backend if event.button.id == "rerun-go" else None)

    def action_go(self) -> None:
        self.dismiss(self.backend)

    def action_cancel(self) -> None:
        self.dismiss(None)
