"""Widgets of the terminal workbench."""

from __future__ import annotations

from typing import Callable

from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static


class PaneMounted(Message):
    """A tab's pane (mounted lazily, after the first paint) is ready to be filled."""


class LaterPane(Widget):
    """Stands in for a tab's pane until just after the first paint, then builds it with ``make`` (which
    imports the pane's module) and mounts it in its place: like textual's ``Lazy``, but the pane's
    module is not imported before the first screen either."""

    DEFAULT_CSS = "LaterPane { display: none; }"

    def __init__(self, make: Callable[[], Widget]) -> None:
        super().__init__()
        self._make = make

    async def mount_composed_widgets(self, widgets: list[Widget]) -> None:
        parent = self.parent
        if not isinstance(parent, Widget):
            return

        async def mount() -> None:
            await parent.mount(self._make(), after=self)
            await self.remove()

        self.call_after_refresh(mount)


def set_text(static: Static, text: str) -> bool:
    """Show ``text`` in ``static`` unless it shows it already: every ``update`` costs the screen a layout
    (a live run redraws its panes every second, mostly with the same text). True when it changed."""
    old = static.content
    if old == text:
        return False
    static.update(text, layout=not _same_size(static, old, text))
    return True


def _same_size(static: Static, old: object, new: str) -> bool:
    """The new text takes the old one's place without a screen layout: as many lines, none wrapped (a
    line's markup only makes it longer than it shows), in a widget whose width is not its content's."""
    width = static.content_size.width
    if not isinstance(old, str) or not width or (static.styles.width is not None and static.styles.width.is_auto):
        return False
    old_lines, new_lines = old.split("\n"), new.split("\n")
    return len(old_lines) == len(new_lines) and all(len(line) <= width for line in old_lines + new_lines)


def on_screen(widget: Widget) -> bool:
    """The widget and every container above it are displayed (its tab is the active one)."""
    return widget.is_mounted and all(node.display for node in widget.ancestors_with_self if isinstance(node, Widget))
