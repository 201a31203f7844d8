"""Watch the flows directory and workbench.toml; coalesce bursts of saves into one reload.

Two small parts so that tests can drive each one directly:

* :class:`Debouncer` collects changed paths (from any thread) and says, for a given clock reading,
  whether the quiet period has passed; the clock is injected (``clock=lambda: t``).
* :class:`ChangeHandler` is the watchdog event handler: it filters events to ``*.py`` files and the
  config file and calls ``Debouncer.touch``. :func:`start_observer` wires it to a real Observer.

The app polls ``Debouncer.take_due()`` from a short timer and redraws from the static graph.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

DEBOUNCE_SECONDS = 0.08
# watchdog also reports opened/closed files on Linux: reading the flows to redraw them must not
# count as a change, or every redraw would schedule the next one
CHANGE_EVENTS = frozenset({"created", "modified", "deleted", "moved"})


class Debouncer:
    def __init__(self, delay: float = DEBOUNCE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.delay = delay
        self.clock = clock
        self._lock = threading.Lock()
        self._paths: set[str] = set()
        self._last: Optional[float] = None

    def touch(self, path: str) -> None:
        with self._lock:
            self._paths.add(str(path))
            self._last = self.clock()

    @property
    def pending(self) -> bool:
        return self._last is not None

    def take_due(self) -> set[str]:
        """The changed paths once nothing has changed for ``delay`` seconds; else an empty set."""
        with self._lock:
            if self._last is None or self.clock() - self._last < self.delay:
                return set()
            paths, self._paths, self._last = self._paths, set(), None
            return paths


def _is_relevant(path: str, config_path: Optional[str]) -> bool:
    if not path:
        return False
    if config_path and Path(path).name == Path(config_path).name:
        return True
    name = Path(path).name
    return name.endswith(".py") and not name.startswith(".")


try:  # watchdog is a TUI dependency; without it the app still works, it just does not follow saves
    from watchdog.events import FileSystemEventHandler
except ImportError:  # pragma: no cover
    FileSystemEventHandler = object  # type: ignore[assignment,misc]


class ChangeHandler(FileSystemEventHandler):
    def __init__(self, debouncer: Debouncer, config_path: Optional[str] = None):
        super().__init__()
        self.debouncer = debouncer
        self.config_path = config_path

    def dispatch(self, event) -> None:  # created, modified, deleted, moved; not opened/closed
        if getattr(event, "event_type", None) not in CHANGE_EVENTS:
            return
        if getattr(event, "is_directory", False):
            # a renamed or removed directory may hold flows: reload everything
            if event.event_type in ("moved", "deleted", "created"):
                self.debouncer.touch(str(event.src_path))
            return
        for path in (getattr(event, "src_path", ""), getattr(event, "dest_path", "")):
            path = path.decode() if isinstance(path, bytes) else path
            if _is_relevant(path, self.config_path):
                self.debouncer.touch(path)


def start_observer(handler: ChangeHandler, watches: Iterable[tuple[Path, bool]], polling: bool = False):
    """Start a watchdog observer on each existing directory ``(path, recursive)``; call ``.stop()``."""
    observer: BaseObserver
    if polling:
        from watchdog.observers.polling import PollingObserver

        observer = PollingObserver(timeout=0.05)
    else:
        from watchdog.observers import Observer

        observer = Observer()
    seen = set()
    for path, recursive in watches:
        path = Path(path)
        if path.is_dir() and path not in seen:
            seen.add(path)
            observer.schedule(handler, str(path), recursive=recursive)
    observer.daemon = True
    observer.start()
    return observer
