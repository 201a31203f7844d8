"""The command palette's entries: every binding under a longer title, whatever tab is showing, plus the run
dialog's parts under the words people type for them. A mixin of :class:`workbench.tui.app.WorkbenchApp`."""

from __future__ import annotations

from typing import Any, Iterable

from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from .app_host import AppHost


class PaletteCommands(AppHost):
    # longer titles for the command palette, where every binding is listed too
    PALETTE_TITLES = {
        "run": "Run the selected flow",
        "run_dialog": "Run with parameters, a backend, max workers…",
        "cancel_run": "Cancel the current run",
        "resume": "Resume the last run (or the run chosen in Runs)",
        "run_step": "Run the selected step alone with the last run's inputs",
        "next_step": "Select the next step",
        "prev_step": "Select the previous step",
        "promote": "Promote the selected step (write workbench.toml)",
        "follow": "Follow the log (toggle)",
        "search": "Search the log",
        "tab(0)": "Show the DAG",
        "tab(1)": "Show the step inspector",
        "tab(2)": "Show the runs",
        "tab(3)": "Show the logs",
        "tab(4)": "Show the artifacts",
        "tab(5)": "Show the selected step's tasks (counts, durations, merged log)",
        "fix_step": "Re-run a step killed for memory or time with a larger request",
    }

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if not isinstance(binding, Binding) or binding.action == "quit":
                continue
            key = "/" if binding.key == "slash" else binding.key
            title = self.PALETTE_TITLES.get(binding.action, binding.description)
            yield SystemCommand(
                f"{title} ({key})", f"Key {key}", lambda action=binding.action: self.invoke_action(action)
            )
        # what people type in the palette when they look for the run dialog's parts
        yield SystemCommand(
            "Set parameters and run (param) (a)",
            "The run dialog, at the flow's parameters",
            lambda: self.action_run_dialog("param"),
        )
        yield SystemCommand(
            "Choose a backend and run (backend) (a)",
            "The run dialog, at the backend",
            lambda: self.action_run_dialog("backend"),
        )

    def invoke_action(self, action: str) -> None:
        """Run an action whatever the footer shows (the palette lists every binding on every tab)."""
        from textual.actions import parse

        _, name, args = parse(action)
        if name == "search":
            self.action_tab(3)
        getattr(self, f"action_{name}")(*args)
