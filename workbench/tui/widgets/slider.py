"""A slider over a fixed list of values (MIT-licensed, ours; the PyPI one is GPL-3 and integer-only).

Keyboard: left/right (or h/l) one notch, home/end to the ends. Mouse: click or drag on the track.
Posts :class:`Slider.Changed` with the new value.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget


class Slider(Widget, can_focus=True):
    BINDINGS = [
        Binding("left,h", "step(-1)", "Less", show=False),
        Binding("right,l", "step(1)", "More", show=False),
        Binding("home", "jump(0)", "Min", show=False),
        Binding("end", "jump(-1)", "Max", show=False),
    ]
    DEFAULT_CSS = """
    Slider { height: 1; width: 1fr; min-width: 12; }
    Slider > .slider--track { color: $text-muted; }
    Slider > .slider--fill { color: $accent; }
    Slider > .slider--thumb { color: $text; }
    Slider:focus > .slider--thumb { color: $accent; text-style: bold reverse; }
    """
    COMPONENT_CLASSES = {"slider--track", "slider--fill", "slider--thumb"}

    index: reactive[int] = reactive(0)

    class Changed(Message):
        def __init__(self, slider: "Slider", value: Any) -> None:
            super().__init__()
            self.slider = slider
            self.value = value

        @property
        def control(self) -> "Slider":
            return self.slider

    def __init__(
        self,
        values: Sequence[Any],
        value: Any = None,
        *,
        format: Callable[[Any], str] = str,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.values = list(values)
        self.format = format
        self._dragging = False
        self.set_reactive(Slider.index, self.nearest_index(value) if value is not None else 0)

    # ------------------------------------------------------------------ values
    def nearest_index(self, value: Any) -> int:
        """The notch closest to ``value`` (values snap to the list)."""
        try:
            return min(range(len(self.values)), key=lambda i: (abs(float(self.values[i]) - float(value)), i))
        except (TypeError, ValueError):
            return self.values.index(value) if value in self.values else 0

    @property
    def value(self) -> Any:
        return self.values[self.index]

    @value.setter
    def value(self, value: Any) -> None:
        self.index = self.nearest_index(value)

    def set_value_silently(self, value: Any) -> None:
        self.set_reactive(Slider.index, self.nearest_index(value))
        self.refresh()

    def set_values(self, values: Sequence[Any], value: Any) -> None:
        """New notches (e.g. clamped to what a backend can place), keeping ``value``'s nearest one; silent."""
        self.values = list(values)
        self.set_reactive(Slider.index, self.nearest_index(value))
        self.refresh()

    def validate_index(self, index: int) -> int:
        return max(0, min(len(self.values) - 1, index))

    def watch_index(self, old: int, new: int) -> None:
        if old != new:
            self.post_message(self.Changed(self, self.value))

    def action_step(self, delta: int) -> None:
        self.index += delta

    def action_jump(self, where: int) -> None:
        self.index = 0 if where == 0 else len(self.values) - 1

    # ------------------------------------------------------------------ drawing
    def _track_width(self) -> int:
        return max(2, self.size.width)

    def render(self):
        from rich.text import Text

        width = self._track_width()
        n = len(self.values)
        thumb = 0 if n <= 1 else round(self.index * (width - 1) / (n - 1))
        text = Text(no_wrap=True, overflow="crop")
        fill = self.get_component_rich_style("slider--fill")
        track = self.get_component_rich_style("slider--track")
        knob = self.get_component_rich_style("slider--thumb")
        text.append("━" * thumb, fill)
        text.append("●", knob)
        text.append("─" * (width - thumb - 1), track)
        return text

    # ------------------------------------------------------------------ mouse
    def _index_at(self, x: int) -> int:
        width = self._track_width()
        n = len(self.values)
        if n <= 1:
            return 0
        return round(max(0, min(width - 1, x)) * (n - 1) / (width - 1))

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self.focus()
        self._dragging = True
        self.capture_mouse()
        self.index = self._index_at(event.x)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._dragging:
            self.index = self._index_at(event.x)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._dragging:
            self._dragging = False
            self.release_mouse()

    def on_click(self, event: events.Click) -> None:
        self.index = self._index_at(event.x)


def cpu_values() -> list[float]:
    return [0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]


def memory_values() -> list[int]:
    """MiB: powers of two from 512M to 512G."""
    return [512 * 2**i for i in range(11)]


def gpu_values() -> list[int]:
    return list(range(9))
