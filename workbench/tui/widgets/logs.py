"""Live logs, per task: every line is kept (capped) and the Log widget shows the chosen task's lines.

Textual's Log only renders the visible lines, so 100,000 lines stay responsive; lines arrive in
batches from the app's event pump, never one message per line.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Optional

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Log, Select

from . import PaneMounted

MAX_LINES = 200_000
ALL = "__all__"


class LogPane(Vertical):
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

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Select([("all tasks", ALL)], value=ALL, allow_blank=False, id="log-task", compact=True)
            yield Input(placeholder="search logs (/)", id="log-search", compact=True)
        yield Label("following", id="log-status")
        yield Log(max_lines=MAX_LINES, auto_scroll=True, id="log")

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
        log.write_lines([self._format(p, t) for p, t in self.lines if self.task_filter in (ALL, p)],
                        scroll_end=self.follow)

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
        self.search(event.value)

    def search(self, needle: str) -> Optional[int]:
        """Jump to the next line containing ``needle`` (case-insensitive); stops following."""
        if not needle:
            return None
        log = self.log_widget
        lines = log.lines
        needle = needle.lower()
        n = len(lines)
        for k in range(1, n + 1):
            i = (self._match + k) % n
            if needle in lines[i].lower():
                self._match = i
                self.set_follow(False)
                log.scroll_to(y=max(0, i - 2), animate=False)
                self._status(f"match at line {i + 1}")
                return i
        self._status(f"no match for {needle!r}")
        return None
