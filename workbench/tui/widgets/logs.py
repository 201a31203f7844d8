"""Live logs, per task: every line is kept (capped) and the Log widget shows the chosen task's lines.

Textual's Log only renders the visible lines, so 100,000 lines stay responsive; lines arrive in
batches from the app's event pump, never one message per line.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Optional

from rich.highlighter import Highlighter
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Log, Select

from . import PaneMounted

MAX_LINES = 200_000
ALL = "__all__"


class MatchHighlighter(Highlighter):
    """Marks every case-insensitive occurrence of the search text (the Log widget calls it per visible line)."""

    def __init__(self) -> None:
        self.needle = ""

    def highlight(self, text: Text) -> None:
        if not self.needle:
            return
        plain, needle, start = text.plain.lower(), self.needle, 0
        while (i := plain.find(needle, start)) >= 0:
            text.stylize("bold reverse", i, i + len(needle))
            start = i + len(needle)


class SearchBox(Input):
    """The log search box: enter jumps to the first match, escape gives the keys back to the bindings."""

    BINDINGS = [Binding("escape", "leave", "Leave search", show=False)]

    def action_leave(self) -> None:
        self.screen.query_one("#log", Log).focus()


class LogPane(Vertical):
    BINDINGS = [
        Binding("n", "next_match", "Next match", show=False),
        Binding("N", "prev_match", "Previous match", show=False),
    ]
    DEFAULT_CSS = """
    LogPane { height: 1fr; }
    LogPane > Horizontal { height: auto; }
    LogPane #log-task { width: 1fr; }
    LogPane #log-search { width: 1fr; margin-left: 1; }
    LogPane #log-status { height: 1; color: $text-muted; }
    LogPane Log { height: 1fr; }
    """

    def on_mount(self) -> None:
        self.post_message(PaneMounted())

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: deque[tuple[str, str]] = deque(maxlen=MAX_LINES)  # (pathspec, text)
        self.tasks: list[str] = []
        self.task_filter = ALL
        self.follow = True
        self._match = -1
        self.highlighter = MatchHighlighter()

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Select([("all tasks", ALL)], value=ALL, allow_blank=False, id="log-task", compact=True)
            yield SearchBox(placeholder="search logs (/)", id="log-search", compact=True)
        yield Label("following", id="log-status")
        log = Log(max_lines=MAX_LINES, auto_scroll=True, id="log", highlight=True)
        log.highlighter = self.highlighter
        yield log

    @property
    def log_widget(self) -> Log:
        return self.query_one("#log", Log)

    def clear(self) -> None:
        self.lines.clear()
        self.tasks = []
        self.log_widget.clear()
        self.query_one("#log-task", Select).set_options([("all tasks", ALL)])
        self.task_filter = ALL

    def _label(self, pathspec: str) -> str:
        return "/".join(pathspec.split("/")[-2:])

    def add(self, batch: Iterable[tuple[str, str]]) -> None:
        shown = []
        new_tasks = False
        for pathspec, text in batch:
            self.lines.append((pathspec, text))
            if pathspec not in self.tasks:
                self.tasks.append(pathspec)
                new_tasks = True
            if self.task_filter in (ALL, pathspec):
                shown.append(self._format(pathspec, text))
        if new_tasks:
            select = self.query_one("#log-task", Select)
            select.set_options([("all tasks", ALL)] + [(self._label(t), t) for t in self.tasks])
            select.value = self.task_filter if self.task_filter in self.tasks else ALL
        if shown:
            self.log_widget.write_lines(shown, scroll_end=self.follow)

    def _format(self, pathspec: str, text: str) -> str:
        return f"[{self._label(pathspec)}] {text}" if self.task_filter == ALL else text

    def refill(self) -> None:
        log = self.log_widget
        log.clear()
        log.write_lines(
            [self._format(p, t) for p, t in self.lines if self.task_filter in (ALL, p)], scroll_end=self.follow
        )

    @on(Select.Changed, "#log-task")
    def _task_changed(self, event: Select.Changed) -> None:
        value = event.value if isinstance(event.value, str) else ALL
        if value != self.task_filter:
            self.task_filter = value
            self.refill()

    def set_follow(self, follow: bool) -> None:
        self.follow = follow
        self.log_widget.auto_scroll = follow
        if follow:
            self.log_widget.scroll_end(animate=False)
        self._status()

    def _status(self, extra: str = "") -> None:
        text = "following" if self.follow else "paused (f to follow)"
        self.query_one("#log-status", Label).update(f"{text}{'  ' + extra if extra else ''}")

    @on(Input.Submitted, "#log-search")
    def _search(self, event: Input.Submitted) -> None:
        event.stop()
        self.search(event.value)
        self.log_widget.focus()  # n/N move between matches; the other keys are bindings again

    def _set_needle(self, needle: str) -> None:
        if needle != self.highlighter.needle:
            self.highlighter.needle = needle
            self._match = -1
            self.log_widget._render_line_cache.clear()  # lines drawn before carry the old marks
            self.log_widget.refresh()

    def search(self, needle: str, direction: int = 1) -> Optional[int]:
        """Jump to the next (direction 1) or previous (-1) line containing ``needle`` (case-insensitive),
        mark every match on screen; stops following."""
        self._set_needle(needle.lower())
        if not needle:
            self._status()
            return None
        log = self.log_widget
        lines = log.lines
        needle = needle.lower()
        n = len(lines)
        start = self._match if self._match >= 0 or direction > 0 else 0
        for k in range(1, n + 1):
            i = (start + direction * k) % n
            if needle in lines[i].lower():
                self._match = i
                self.set_follow(False)
                log.scroll_to(y=max(0, i - 2), animate=False)
                self._status(f"match at line {i + 1} of {n}  n/N: next/previous")
                return i
        self._status(f"no match for {needle!r}")
        return None

    def action_next_match(self) -> None:
        self.search(self.query_one("#log-search", Input).value, 1)

    def action_prev_match(self) -> None:
        self.search(self.query_one("#log-search", Input).value, -1)
