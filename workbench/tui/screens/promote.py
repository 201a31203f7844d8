"""Shows a planned promotion (the workbench.toml diff and its notes); y writes it, escape cancels."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


def diff_markup(diff: str) -> str:
    out = []
    for line in diff.splitlines():
        text = escape(line)
        if line.startswith("+") and not line.startswith("+++"):
            out.append(f"[$success]{text}[/]")
        elif line.startswith("-") and not line.startswith("---"):
            out.append(f"[$error]{text}[/]")
        elif line.startswith("@@"):
            out.append(f"[$accent]{text}[/]")
        else:
            out.append(text)
    return "\n".join(out) or "(no change to workbench.toml)"


class PromoteScreen(ModalScreen[bool]):
    BINDINGS = [Binding("y", "apply", "Write workbench.toml"), Binding("escape,n", "cancel", "Cancel")]
    DEFAULT_CSS = """
    PromoteScreen { align: center middle; }
    PromoteScreen > Vertical { width: 90%; max-width: 100; height: 90%; border: round $accent;
                                background: $surface; padding: 0 1; }
    PromoteScreen #diff { height: 1fr; }
    PromoteScreen #notes { height: auto; color: $text-muted; }
    PromoteScreen Horizontal { height: auto; align: right middle; }
    PromoteScreen Button { margin-left: 2; }
    """

    def __init__(self, title: str, promotion) -> None:
        super().__init__()
        self.title_text = title
        self.promotion = promotion

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"[b]{escape(self.title_text)}[/b]")
            with VerticalScroll(id="diff"):
                yield Static(diff_markup(self.promotion.diff or ""), id="diff-text")
            notes = list(getattr(self.promotion, "notes", []) or [])
            settings = getattr(self.promotion, "settings", None)
            if settings is not None and hasattr(settings, "summary"):
                notes.insert(0, f"new settings: {settings.summary()}")
            yield Static("\n".join(escape(n) for n in notes), id="notes")
            with Horizontal():
                yield Button("Write (y)", id="apply", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "apply")

    def action_apply(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
