"""Running a :class:`~workbench.runtime.Runtime` in the foreground of a terminal or a CI job.

Signals: SIGINT (Ctrl-C), SIGTERM (CI cancellation, ``timeout``, systemd) and SIGHUP (the terminal
closed) all cancel the run: running tasks are stopped, the backends remove what the run started and
the run ends ``cancelled``. A second signal stops the waiting for tasks to confirm they ended but still
removes what the run started; a third leaves at once (``workbench cancel RUN`` removes the rest). The
command exits 128 + the first signal's number (130, 143, 129).

A closed stdout (``workbench run FLOW | head -2``): the reader is gone, which in a pipeline means
"stop" — as SIGPIPE stops any other writer — so the run is cancelled cleanly (tasks stopped, backends
cleaned up, the record written ``cancelled``) and the command exits 141 (128 + SIGPIPE), never 0.
Running on without anyone to read the output would leave a run nobody asked to keep; ``run --detach``
is the way to keep one going.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable, Optional

STOP_SIGNALS = tuple(
    s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)
EXIT_BROKEN_PIPE = 128 + getattr(signal, "SIGPIPE", 13)


class PipeSafeSink:
    """Wraps the event sink: the first write to a closed stdout cancels the run; later events are dropped."""

    def __init__(self, sink: Callable[[Any], None], on_broken: Callable[[], None]):
        self.sink, self.on_broken = sink, on_broken
        self.broken = False

    def __call__(self, event: Any) -> None:
        if self.broken:
            return
        try:
            self.sink(event)
        except BrokenPipeError:
            self.broken = True
            _silence_stdout()
            self.on_broken()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def drive(
    runtime: Any, sink: Callable[[Any], None], *, say: Optional[Callable[[str], None]] = None
) -> tuple[Optional[Any], int]:
    """Run ``runtime`` on a thread, handling stop signals in this one. Returns (RunResult or None, exit code
    override or 0). Re-raises what the runtime raised."""
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    result: list = []
    errors: list[BaseException] = []
    safe = PipeSafeSink(sink, lambda: runtime.cancel("stdout was closed (broken pipe)"))
    runtime.sink = safe
    done = threading.Event()
    received: list[int] = []

    def on_signal(signum, frame):  # only records: the loop below acts, outside the handler
        received.append(signum)

    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS} if in_main else {}

    def target() -> None:
        try:
            result.append(runtime.run())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=target, name="workbench-runtime", daemon=True)
    worker.start()
    handled = 0
    try:
        while not done.wait(0.1):
            if len(received) > handled:
                handled = len(received)
                name = signal.Signals(received[-1]).name
                if handled == 1:
                    say(f"\n{name}: cancelling: stopping running tasks ({_again(received[0])} to stop waiting)")
                    runtime.cancel("cancelled" if received[0] == signal.SIGINT else f"cancelled ({name})")
                elif handled == 2:
                    say(
                        f"{name}: not waiting for tasks to confirm they stopped; removing what the run started "
                        f"(containers, jobs, processes)... ({_again(received[0])} again to leave at once)"
                    )
                    runtime.hurry()
                else:
                    say(f"{name}: leaving now; `workbench cancel {runtime.run_id}` removes whatever is left")
                    return None, 128 + received[0]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if errors:
        raise errors[0]
    code = 128 + received[0] if received else (EXIT_BROKEN_PIPE if safe.broken else 0)
    return (result[0] if result else None), code


def _again(signum: int) -> str:
    return "Ctrl-C again" if signum == signal.SIGINT else "signal again"
