"""Profile one step with a sampling profiler built on pyinstrument and keep the profile with the run.

``workbench run FLOW --step S --profile`` (and the TUI's profile key) set ``StepSettings.profile``; the
task entrypoint then wraps the step call with :func:`profiled`. pyinstrument is imported there, inside
the task, only when a profile is asked for, so a normal task never pays for it.

What is kept, on every backend, as task outputs next to the log:
- ``profile-<attempt>.html``: pyinstrument's interactive report (open it in a browser);
- the attempt record's ``profile`` entry: the hot call path (the chain of frames that took the most time,
  root to leaf), a text summary of it and where the HTML report is. The record is the one document every
  backend already brings back (a container's outbox, S3), so the CLI and the TUI read the hot path there.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

PROFILE_INTERVAL = 0.001  # seconds between samples: pyinstrument's default, fine-grained enough for a step
HOT_PATH_MIN_SHARE = 0.05  # stop following the hot path once a frame holds less than this share of the total
HOT_PATH_MAX_FRAMES = 40
MAX_HTML_BYTES = 32 * 1024 * 1024  # a bigger report is not kept (the hot path still is)


def profile_key(task_key: str, attempt: int) -> str:
    """Where a task attempt's HTML report lives: next to its log and attempt record."""
    return f"{task_key}/profile-{attempt}.html"


def profiled(func: Callable[..., Any], ds, spec, result) -> Callable[..., Any]:
    """``func`` wrapped so that calling it runs under the profiler; on return or raise the report is saved
    to ``ds`` and the hot path put on ``result`` (the task's AttemptRecord) as ``extra["profile"]``."""
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        raise RuntimeError(
            "--profile needs pyinstrument in the task's environment (pip install pyinstrument)"
        ) from None

    def call(*args: Any) -> Any:
        profiler = CpuSampler() if CpuSampler.usable() else _WallProfiler()
        started = time.perf_counter()
        profiler.start()
        try:
            return func(*args)
        finally:
            session = profiler.stop()
            elapsed = time.perf_counter() - started
            result.extra["profile"] = _save(session, ds, spec, elapsed, profiler.kind)

    return call


class CpuSampler:
    """A sampling profiler that costs little: SIGPROF every PROFILE_INTERVAL of the process's CPU time, and
    the handler records the interrupted Python stack (pyinstrument's own stack format), weighted by the CPU
    time since the previous sample. pyinstrument then builds the call tree, the hot path and the HTML.

    Why not pyinstrument's Profiler itself: it installs a profile hook called on every Python call and
    return, which on CPython 3.11 slows a pure-Python step by 40% (loops) to 5x (many small calls); see
    benchmarks/profile_overhead.py. The price here: time blocked in sleep or I/O is not in the profile (it
    is CPU time), and only the main thread is sampled."""

    kind = "cpu-sampler"

    @staticmethod
    def usable() -> bool:
        import signal
        import threading

        return hasattr(signal, "SIGPROF") and threading.current_thread() is threading.main_thread()

    def start(self) -> None:
        import signal
        import sys

        from pyinstrument.stack_sampler import build_call_stack

        self._build = build_call_stack
        self.records: list[tuple[list[str], float]] = []
        self.start_stack = build_call_stack(sys._getframe(1), "initial", None)
        self.wall0, self.perf0 = time.time(), time.perf_counter()
        self.cpu0 = self.last_cpu = time.process_time()
        self.previous = signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, PROFILE_INTERVAL, PROFILE_INTERVAL)

    def _sample(self, signum, frame) -> None:
        now = time.process_time()
        self.records.append((self._build(frame, "sample", None), now - self.last_cpu))
        self.last_cpu = now

    def stop(self):
        import signal
        import sys

        from pyinstrument.session import Session

        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, self.previous)
        cpu = time.process_time() - self.cpu0
        return Session(
            frame_records=self.records,
            start_time=self.wall0,
            duration=time.perf_counter() - self.perf0,
            min_interval=PROFILE_INTERVAL,
            max_interval=PROFILE_INTERVAL,
            sample_count=len(self.records),
            start_call_stack=self.start_stack,
            target_description="workbench step (CPU time)",
            cpu_time=cpu,
            sys_path=list(sys.path),
            sys_prefixes=[sys.prefix, sys.base_prefix],
        )


class _WallProfiler:
    """pyinstrument's own Profiler (wall-clock, a hook on every call): where SIGPROF cannot be used."""

    kind = "pyinstrument"

    def start(self) -> None:
        from pyinstrument import Profiler

        self.profiler = Profiler(interval=PROFILE_INTERVAL)
        self.profiler.start()

    def stop(self):
        return self.profiler.stop()


def _save(session, ds, spec, elapsed: float, kind: str) -> dict[str, Any]:
    """Write the HTML report; return the record entry (hot path, text summary, report key)."""
    from pyinstrument.renderers import HTMLRenderer

    path = hot_path(session.root_frame()) if session.sample_count else []
    entry: dict[str, Any] = {
        "seconds": round(elapsed, 3),
        "samples": session.sample_count,
        "profiler": kind,
        "interval": PROFILE_INTERVAL,
        "hot_path": path,
        "text": format_hot_path(path),
    }
    try:
        html = HTMLRenderer().render(session).encode()
        if len(html) <= MAX_HTML_BYTES:
            key = profile_key(ds.task_key(spec.run_id, spec.step, spec.task_id), spec.attempt)
            ds.storage.put(key, [html])
            entry["html"] = key
        else:
            entry["html_skipped"] = f"report of {len(html):,} bytes is over {MAX_HTML_BYTES:,}"
    except Exception as exc:  # noqa: BLE001 - the hot path is still worth keeping
        entry["html_skipped"] = f"{type(exc).__name__}: {exc}"
    return entry


def hot_path(root) -> list[dict[str, Any]]:
    """From the root frame, follow the child that took the most time, down to a leaf (or a frame below
    HOT_PATH_MIN_SHARE of the total). pyinstrument's own synthetic frames (``[self]``, ``[await]``) are
    skipped; each entry names the function, its file and line, its total and own time."""
    out: list[dict[str, Any]] = []
    frame = root
    total = (root.time if root is not None else 0.0) or 0.0
    while frame is not None and len(out) < HOT_PATH_MAX_FRAMES:
        if not frame.is_synthetic:
            out.append(
                {
                    "function": frame.function or "?",
                    "file": frame.file_path_short or frame.file_path or "",
                    "line": frame.line_no,
                    "seconds": round(frame.time, 4),
                    "self_seconds": round(_self_time(frame), 4),
                    "share": round(frame.time / total, 3) if total else 0.0,
                    "app": bool(frame.is_application_code),
                }
            )
        children = [c for c in frame.children if not c.is_synthetic]
        frame = max(children, key=lambda c: c.time, default=None)
        if frame is not None and total and frame.time / total < HOT_PATH_MIN_SHARE:
            break
    return out


def _self_time(frame) -> float:
    return frame.time - sum(c.time for c in frame.children if not c.is_synthetic)


def hottest_function(path: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The frame of the hot path that spent the most time in itself (the place to look first)."""
    return max(path, key=lambda f: f["self_seconds"], default=None)


def format_hot_path(path: list[dict[str, Any]], width: int = 100) -> str:
    """The hot path as indented lines: ``share  seconds  function  file:line``, root first."""
    lines = []
    for depth, f in enumerate(path):
        where = f"{f['file']}:{f['line']}" if f.get("line") else f["file"]
        lines.append(
            f"{f['share'] * 100:5.1f}% {f['seconds']:8.3f}s {'  ' * min(depth, 12)}{f['function']}  {where}"[:width]
        )
    return "\n".join(lines)


def read_profile(ds, run_id: str, step: str, task_id: str, attempt: Optional[int] = None) -> Optional[dict[str, Any]]:
    """The profile entry of a task's (latest) attempt, or None when it was not profiled. Reads JSON only."""
    if attempt is None:
        task = ds.read_task(run_id, step, task_id)
        attempt = task.attempt if task is not None else 0
    record = ds.read_attempt(run_id, step, task_id, attempt)
    entry = record.extra.get("profile") if record is not None else None
    return entry if isinstance(entry, dict) else None


def report_location(ds, entry: dict[str, Any]) -> Optional[str]:
    """A path the user can open (a local datastore) or the report's URL in the store (S3)."""
    key = entry.get("html")
    if not key:
        return None
    local = ds.storage.local_path(key)
    return local or f"{ds.url.rstrip('/')}/{key}"


def step_profiles(ds, run_id: str, step: str) -> list[tuple[str, dict[str, Any]]]:
    """(task id, profile entry) of every profiled task of ``step`` in ``run_id``."""
    out = []
    for task_id in ds.list_tasks(run_id, step):
        entry = read_profile(ds, run_id, step, task_id)
        if entry is not None:
            out.append((task_id, entry))
    return out


def describe_profile(ds, entry: dict[str, Any]) -> list[str]:
    """The lines shown for one profile: the hottest function, the hot path, where the HTML report is."""
    lines = []
    top = hottest_function(entry.get("hot_path") or [])
    if top is not None:
        lines.append(
            f"hottest: {top['function']} ({top['file']}:{top['line']}) "
            f"{top['self_seconds']:.3f}s of {entry.get('seconds', 0):.3f}s"
        )
    lines.append("hot path:")
    lines.extend("  " + line for line in (entry.get("text") or "(no samples)").splitlines())
    where = report_location(ds, entry)
    lines.append(f"report: {where}" if where else f"report: not kept ({entry.get('html_skipped', 'unknown')})")
    return lines


def print_step_profiles(ds, run_id: str, step: str) -> None:
    """After `run --step S --profile`: print each profiled task's hot path and report location."""
    profiles = step_profiles(ds, run_id, step)
    if not profiles:
        print(f"profile: no profile was recorded for {step} in run {run_id}")
    for task_id, entry in profiles:
        print(f"profile of {run_id}/{step}/{task_id}:")
        for line in describe_profile(ds, entry):
            print("  " + line)


CONTAINER_TOOLS_DIR = "/opt/workbench-tools"  # where a container sees this machine's pyinstrument


def container_profiler_mount(binds: dict[str, dict[str, str]], pythonpath: str) -> str:
    """Mount this machine's pyinstrument package (no dependencies of its own) read-only into a container
    at CONTAINER_TOOLS_DIR and return ``pythonpath`` with that directory added, so `--profile` works with an
    image that only has python3. Its compiled part needs the image's Python to be the host's minor version;
    otherwise the task says pyinstrument is missing. Without pyinstrument here, nothing is mounted."""
    import importlib.util
    from pathlib import Path

    found = importlib.util.find_spec("pyinstrument")
    if found is None or not found.submodule_search_locations:
        return pythonpath
    source = str(Path(list(found.submodule_search_locations)[0]).resolve())
    binds[source] = {"bind": f"{CONTAINER_TOOLS_DIR}/pyinstrument", "mode": "ro"}
    return f"{pythonpath}:{CONTAINER_TOOLS_DIR}"
