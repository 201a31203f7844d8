"""The run dialog: a flow's parameters (typed, defaults shown), the backend and the most tasks at once.
Values are checked as `workbench run` checks them (workbench.parameters), before the dialog closes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from ...errors import WorkbenchError


@dataclass
class RunRequest:
    """What the dialog hands back: converted parameter values, and CLI-like overrides (None: as configured)."""

    params: dict[str, Any]
    backend: Optional[str] = None
    max_workers: Optional[int] = None
    given: dict[str, str] = field(default_factory=dict)  # the raw text of the parameters the user changed


def backend_names() -> list[str]:
    """The backends the runtime knows, from the registry (the one list)."""
    from ...backends import REGISTRY

    return list(REGISTRY)


def default_text(spec) -> str:
    """A parameter's default as the user would type it on the command line ('' when it is computed)."""
    from ...graph import Unresolved

    default = spec.default
    if not spec.has_default or default is None or isinstance(default, Unresolved):
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, (dict, list)) or spec.type_name in ("JSONType", "json"):
        return json.dumps(default)
    return str(default)


def type_label(spec) -> str:
    from ...graph import Unresolved

    if spec.kind == "include_file":
        return "file"
    name = spec.type_name or (
        type(spec.default).__name__
        if spec.has_default and spec.default is not None and not isinstance(spec.default, Unresolved)
        else "str"
    )
    return {"JSONType": "json"}.get(name, name)


class RunDialog(ModalScreen[Optional[RunRequest]]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Run")]
    DEFAULT_CSS = """
    RunDialog { align: center middle; }
    RunDialog > Vertical { width: 90%; max-width: 90; height: auto; max-height: 90%; border: round $accent;
                           background: $surface; padding: 0 1; }
    RunDialog #run-fields { height: auto; max-height: 20; }
    RunDialog .row { height: auto; }
    RunDialog .row > Label { width: 22; padding-top: 0; }
    RunDialog .row > Input, RunDialog .row > Select { width: 1fr; }
    RunDialog .help { color: $text-muted; padding-left: 22; height: auto; }
    RunDialog #run-error { color: $error; height: auto; }
    RunDialog #run-buttons { height: auto; align: right middle; }
    RunDialog Button { margin-left: 2; }
    """

    def __init__(self, graph, focus: str = "param") -> None:
        super().__init__()
        self.graph = graph
        self.initial_focus = focus

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"[b]Run {escape(self.graph.name or '')}[/b]  [$text-muted]enter runs · esc cancels[/]")
            with VerticalScroll(id="run-fields"):
                for spec in self.graph.parameters:
                    with Horizontal(classes="row"):
                        need = " *" if spec.required else ""
                        yield Label(f"{escape(spec.name)} ({type_label(spec)}){need}")
                        default = default_text(spec)
                        yield Input(
                            value=default,
                            placeholder="computed in start" if spec.has_default and not default else "",
                            id=f"param-{spec.attr}",
                            compact=True,
                            classes="param",
                        )
                    if spec.help:
                        yield Static(escape(spec.help), classes="help")
                with Horizontal(classes="row"):
                    yield Label("backend")
                    yield Select(
                        [(name, name) for name in backend_names()],
                        prompt="as configured per step",
                        id="run-backend",
                        compact=True,
                    )
                with Horizontal(classes="row"):
                    yield Label("max workers")
                    yield Input(placeholder="number of cores", type="integer", id="run-workers", compact=True)
            yield Static("", id="run-error")
            with Horizontal(id="run-buttons"):
                yield Button("Run (enter)", id="run-go", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="run-cancel", compact=True)

    def on_mount(self) -> None:
        self.call_after_refresh(self._focus_first)

    def _focus_first(self) -> None:
        fields = list(self.query(".param"))
        if self.initial_focus == "backend" or not fields:
            self.query_one("#run-backend").focus()
        else:
            fields[0].focus()

    def request(self) -> RunRequest:
        """The dialog's values, checked as the CLI checks them; raises WorkbenchError with one clear line."""
        from ...errors import UsageError
        from ...parameters import resolve_parameters

        given = {}
        for spec in self.graph.parameters:
            text = self.query_one(f"#param-{spec.attr}", Input).value
            if text.strip() == "":
                continue
            if text == default_text(spec) and spec.kind != "include_file":
                continue  # the default, unchanged: resolve it as the CLI does without the option
            given[spec.name] = text
        params = resolve_parameters(self.graph.parameters, given)
        backend = self.query_one("#run-backend", Select).value
        workers_text = self.query_one("#run-workers", Input).value.strip()
        workers = None
        if workers_text:
            try:
                workers = int(workers_text)
            except ValueError:
                workers = 0
            if workers < 1:
                raise UsageError(f"--max-workers: {workers_text!r} is not a positive integer")
        return RunRequest(params, backend if isinstance(backend, str) else None, workers, given)

    def action_submit(self) -> None:
        try:
            request = self.request()
        except WorkbenchError as exc:
            self.query_one("#run-error", Static).update(escape(str(exc)))
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "run-go":
            self.action_submit()
        else:
            self.dismiss(None)
