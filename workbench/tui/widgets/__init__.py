"""Widgets of the terminal workbench."""

from textual.message import Message


class PaneMounted(Message):
    """A tab's pane (mounted lazily, after the first paint) is ready to be filled."""
