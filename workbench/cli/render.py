"""Render run events for the headless CLI: a live display on a terminal, plain lines otherwise, JSON
lines with ``--json``, and a JUnit XML report with ``--junit-xml``."""

from __future__ import annotations

import json
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import IO, TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from rich.progress import TaskID

from .. import events as ev
from ..progress import RunProgress


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def _short_path(pathspec: str) -> str:
    parts = pathspec.split("/")
    return "/".join(parts[2:]) if len(parts) == 4 else pathspec


class JsonRenderer:
    def __init__(self, out: IO[str] = sys.stdout):
        self.out = out

    def __call__(self, event: ev.Event) -> None:
        self.out.write(json.dumps(event.to_dict(), default=str) + "\n")
        self.out.flush()

    def close(self) -> None:
        pass


class PlainRenderer:
    """One timestamped line per event, for CI logs and pipes."""

    def __init__(self, out: IO[str] = sys.stdout, quiet_logs: bool = False):
        self.out = out
        self.quiet_logs = quiet_logs
        self.waiting: set[str] = set()  # pathspecs of queued remote tasks said to wait

    def line(self, ts: float, text: str) -> None:
        self.out.write(f"{_clock(ts)} {text}\n")
        self.out.flush()

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.RunStarted):
            origin = f" (resuming {e.origin_run_id})" if e.origin_run_id else ""
            self.line(e.ts, f"run {e.flow}/{e.run_id} started{origin}")
        elif isinstance(e, ev.TaskStarted):
            retry = f" (attempt {e.attempt + 1})" if e.attempt else ""
            self.line(e.ts, f"[{_short_path(e.pathspec)}] started on {e.backend}{retry}")
        elif isinstance(e, ev.TaskCloned):
            self.line(e.ts, f"[{_short_path(e.pathspec)}] reused from {e.origin_pathspec}")
        elif isinstance(e, ev.LogLine):
            if not self.quiet_logs:
                mark = "!" if e.stream == "stderr" else "|"
                self.line(e.ts, f"[{_short_path(e.pathspec)}] {mark} {e.text}")
        elif isinstance(e, ev.TaskRetrying):
            self.line(
                e.ts,
                f"[{_short_path(e.pathspec)}] attempt {e.attempt + 1} failed ({e.reason}); retrying in {e.delay:g}s",
            )
        elif isinstance(e, ev.TaskWaiting):  # why a queued remote task is not running, as it changes
            if e.reason:
                self.waiting.add(e.pathspec)
                self.line(e.ts, f"[{_short_path(e.pathspec)}] waiting on {e.backend}: {e.reason}")
            elif e.pathspec in self.waiting:
                self.waiting.discard(e.pathspec)
                self.line(e.ts, f"[{_short_path(e.pathspec)}] no longer waiting: running on {e.backend}")
        elif isinstance(e, ev.TaskFinished):
            self.waiting.discard(e.pathspec)
            if e.ok:
                self.line(e.ts, f"[{_short_path(e.pathspec)}] succeeded in {e.duration:.2f}s")
            else:
                self.line(e.ts, f"[{_short_path(e.pathspec)}] {e.status}: {e.reason}")
        elif isinstance(e, ev.RunWarning):
            self.line(e.ts, f"warning: {e.message}")
        elif isinstance(e, ev.RunFinished):
            tail = f": {e.message}" if e.message and e.status != "succeeded" else ""
            self.line(e.ts, f"run {e.flow}/{e.run_id} {e.status} in {e.duration:.2f}s{tail}")

    def close(self) -> None:
        pass


class LiveRenderer:
    """A rich live view: per-step progress bars under the scrolling log."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=False)
        self.progress = Progress(
            TextColumn("{task.fields[icon]} [bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.live = Live(self.progress, console=self.console, refresh_per_second=8, transient=False)
        self.rows: dict[str, TaskID] = {}
        self.state = RunProgress()  # per-step counts, reduced from the events (workbench.progress)
        self.waiting: dict[str, dict[str, str]] = defaultdict(dict)  # step -> pathspec -> why it waits
        self.plain = PlainRenderer()
        self.started = False

    def _row(self, step: str) -> TaskID:
        if step not in self.rows:
            self.rows[step] = self.progress.add_task(step, total=0, icon=" ", note="")
        return self.rows[step]

    def _update(self, step: str) -> None:
        s = self.state.step(step)
        total, done, failed, running = s.total, s.done, s.failed, s.running
        icon = "[red]✗" if failed else ("[green]✓" if total and done == total else "[yellow]•")
        waits = self.waiting.get(step) or {}
        note = f"[red]{failed} failed" if failed else (f"{running} running" if running else "")
        if waits and not failed:  # submitted but not running yet: the platform's words for the first
            why = next(iter(waits.values()))
            note = f"[yellow]{len(waits)} waiting: {_escape(why[:60])}" + ("…" if len(why) > 60 else "")
        self.progress.update(self._row(step), total=max(total, 1), completed=done, icon=icon, note=note)

    def __call__(self, e: ev.Event) -> None:
        if not self.started:
            self.live.start()
            self.started = True
        self.state.apply(e)
        if isinstance(e, ev.RunStarted):
            self.console.print(
                f"[bold]{e.flow}[/] run [cyan]{e.run_id}[/]"
                + (f" (resuming {e.origin_run_id})" if e.origin_run_id else "")
            )
            for step in e.steps:
                self._row(step)
        elif isinstance(e, (ev.TaskStarted, ev.TaskCloned)):
            self._update(e.step)
        elif isinstance(e, ev.LogLine):
            style = "red" if e.stream == "stderr" else ""
            self.console.print(
                f"[dim]{_short_path(e.pathspec)}[/] {_escape(e.text)}", style=style, highlight=False, soft_wrap=True
            )
        elif isinstance(e, ev.TaskRetrying):
            self.console.print(
                f"[yellow]{_short_path(e.pathspec)} attempt {e.attempt + 1} failed: "
                f"{_escape(e.reason)}; retrying in {e.delay:g}s"
            )
            self._update(e.step)
        elif isinstance(e, ev.TaskWaiting):
            waits = self.waiting[e.step]
            if e.reason:
                waits[e.pathspec] = e.reason
                self.console.print(f"[yellow]{_short_path(e.pathspec)} waiting on {e.backend}:[/] {_escape(e.reason)}")
            else:
                waits.pop(e.pathspec, None)
            self._update(e.step)
        elif isinstance(e, ev.TaskFinished):
            self.waiting[e.step].pop(e.pathspec, None)
            if not e.ok:
                self.console.print(f"[red]{_short_path(e.pathspec)} {e.status}: {_escape(e.reason)}")
            self._update(e.step)
        elif isinstance(e, ev.RunWarning):
            self.console.print(f"[yellow]warning:[/] {_escape(e.message)}")
        elif isinstance(e, ev.RunFinished):
            self.live.stop()
            colour = {"succeeded": "green", "failed": "red"}.get(e.status, "yellow")
            tail = f": {_escape(e.message)}" if e.message and e.status != "succeeded" else ""
            self.console.print(f"[{colour}]run {e.run_id} {e.status}[/] in {e.duration:.2f}s{tail}")

    def close(self) -> None:
        if self.started:
            self.live.stop()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


class JUnitWriter:
    """Collects task results; ``write(path)`` saves one test case per task."""

    def __init__(self) -> None:
        self.cases: list[ev.TaskFinished] = []
        self.logs: dict[str, list[str]] = defaultdict(list)
        self.flow = ""
        self.run_id = ""

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.RunStarted):
            self.flow, self.run_id = e.flow, e.run_id
        elif isinstance(e, ev.TaskFinished):
            self.cases.append(e)
        elif isinstance(e, ev.LogLine):
            lines = self.logs[e.pathspec]
            if len(lines) < 2000:
                lines.append(f"{e.stream}: {e.text}")

    def write(self, path: str) -> None:
        failures = sum(1 for c in self.cases if c.status not in ("succeeded", "cancelled"))
        skipped = sum(1 for c in self.cases if c.status == "cancelled")
        suite = ET.Element(
            "testsuite",
            name=f"{self.flow}/{self.run_id}",
            tests=str(len(self.cases)),
            failures=str(failures),
            errors="0",
            skipped=str(skipped),
            time=f"{sum(c.duration for c in self.cases):.3f}",
        )
        for c in self.cases:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=self.flow,
                name="/".join(c.pathspec.split("/")[2:]),
                time=f"{c.duration:.3f}",
            )
            if c.status == "cancelled":
                ET.SubElement(case, "skipped", message=c.reason or "cancelled")
            elif not c.ok:
                fail = ET.SubElement(case, "failure", message=f"{c.status}: {c.reason}", type=c.status)
                fail.text = c.traceback or c.reason
            if self.logs.get(c.pathspec):
                ET.SubElement(case, "system-out").text = "\n".join(self.logs[c.pathspec])
        root = ET.Element("testsuites")
        root.append(suite)
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


class Tee:
    def __init__(self, *sinks):
        self.sinks = [s for s in sinks if s is not None]

    def __call__(self, e: ev.Event) -> None:
        for s in self.sinks:
            s(e)


def pick_renderer(json_mode: bool, out: Optional[IO[str]] = None):
    out = out or sys.stdout
    if json_mode:
        return JsonRenderer(out)
    if out.isatty():
        return LiveRenderer()
    return PlainRenderer(out)
