"""The TUI's heavy reads, in a child process: the merged log of a step's tasks and the artifact rows of a run.

Reading 10,000 small files and parsing each is pure-Python work that needs the GIL between every two
system calls. In a worker thread of the TUI it convoys with the UI thread: the reader waits for the
interpreter after each read (up to the 5 ms switch interval while the UI thread runs), and the UI thread
waits for it after each look at the terminal. A 10,000-task merged log took minutes that way on a quiet
machine and keys took seconds. A child process has its own interpreter: the TUI's worker thread only
waits on a pipe, and the UI thread never shares the GIL with the reading.

The child writes its result to a file in the cache directory (atomically), one row a line, and prints
``<done> <total>`` progress lines on stdout; the TUI reads the file back a page at a time. A small step is
read in the calling thread by the same functions (starting a process costs more than reading a few
hundred files). The cached merged log of a finished run is read again without reading any task's log.

Usage: python -m workbench.tui.offload log|artifacts URL FLOW RUN_ID STEP OUT  (STEP "" = every step)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional

OFFLOAD_TASKS = 200  # a step (or run) with more tasks than this is read in a child process
PROGRESS_EVERY = 500  # tasks read between two progress lines
from .step_tasks import MAX_LOG_LINES  # noqa: E402 - merged log lines kept (the newest)

KEEP_CACHED = 32  # result files kept in the cache directory (the newest)
ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the workbench package

Progress = Callable[[int, int], object]  # (done, total) -> False to stop


def cache_dir() -> Path:
    """Where results are written: $XDG_CACHE_HOME/workbench/tui (never the datastore: viewing writes nothing there)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workbench" / "tui"


def result_path(job: str, url: str, flow: str, run_id: str, step: Optional[str]) -> Path:
    key = hashlib.sha1("\0".join([job, url, flow, run_id, step or ""]).encode()).hexdigest()[:20]
    return cache_dir() / f"{job}-{key}.txt"


def fresh(path: Path, finished_at: Optional[float]) -> bool:
    """A cached result still true: written after its run finished (a finished run's logs never change)."""
    try:
        return finished_at is not None and path.stat().st_mtime >= finished_at
    except OSError:
        return False


# ---------------------------------------------------------------------------------- the reading itself
def _clock(ts: str) -> str:
    """The time of day of an ISO timestamp (the merged log is one run; the date is noise)."""
    try:
        return dt.datetime.fromisoformat(ts).strftime("%H:%M:%S.%f")[:-3]
    except ValueError:
        return ts


def _each(ds, task_ids: list, read, progress: Optional[Progress]) -> Iterator:
    """``read(task_id)`` of each task in order; an object store is read by 8 threads (each GET waits on
    the network), local files one after another. Stops quietly when ``progress`` answers False."""
    total = len(task_ids)
    pool = None
    if ds.storage.local_path("") is None and total > 1:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(8)
    try:
        results: Iterator = map(read, task_ids) if pool is None else pool.map(read, task_ids)
        for n, result in enumerate(results, 1):
            yield result
            if progress is not None and (n % PROGRESS_EVERY == 0 or n == total) and progress(n, total) is False:
                return
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def merged_log(ds, run_id: str, step: str, task_ids: list[str], progress: Optional[Progress] = None) -> list[str]:
    """Every line of every task of the step ordered by time (ties keep the tasks' order), as the lines
    the pane shows, each ``label<TAB>HH:MM:SS.mmm [label] text``; the newest MAX_LOG_LINES."""

    def read(task_id: str) -> list[tuple[str, str]]:
        label = f"{step}/{task_id}"
        try:
            return [
                (ts, f"{label}\t{_clock(ts)} [{label}] {text}") for ts, _s, text in ds.read_log(run_id, step, task_id)
            ]
        except Exception:  # noqa: BLE001 - a missing or half-written log: the other tasks still show
            return []

    lines: list[tuple[str, str]] = []
    for got in _each(ds, task_ids, read, progress):
        lines.extend(got)
    lines.sort(key=lambda line: line[0])
    return [shown for _ts, shown in lines[-MAX_LOG_LINES:]]


def artifact_rows(ds, run_id: str, step: Optional[str], progress: Optional[Progress] = None) -> list[str]:
    """The artifacts of the step's tasks (every step's when ``step`` is None), one JSON row a line:
    {"key", "task", "name", "inherited", "info"}. An inherited artifact carries only its sha: its type
    and size come from the task that made it (so every record of the run is read)."""
    tasks = [(s, t) for s in ds.list_steps(run_id) for t in ds.list_tasks(run_id, s)]  # every step: see above

    def read(pair: tuple[str, str]):
        try:
            return ds.read_task(run_id, *pair)
        except Exception:  # noqa: BLE001 - a half-written record: the others still show
            return None

    docs = [doc for doc in _each(ds, tasks, read, progress) if doc is not None]
    known = {
        info["sha"]: info for doc in docs for info in doc.artifacts.values() if info.get("sha") and info.get("type")
    }
    out = []
    for doc in docs if step is None else [d for d in docs if d.step == step]:
        task = f"{doc.step}/{doc.task_id}"
        for name, info in sorted(doc.artifacts.items()):
            if name.startswith("_"):
                continue
            row = {"key": f"{task}:{name}", "task": task, "name": name, "inherited": bool(info.get("inherited"))}
            row["info"] = {**known.get(info.get("sha"), {}), **info}
            out.append(json.dumps(row, default=str))
    return out


# ---------------------------------------------------------------------------------- the two sides
def write_result(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line.replace("\n", " ") + "\n")
    os.replace(tmp, path)
    kept = sorted(path.parent.glob("*.txt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[KEEP_CACHED:]:
        old.unlink(missing_ok=True)


def read_result(path: Path) -> list[str]:
    """The rows of a result file (one C-level read and split: a few milliseconds for 50,000 lines)."""
    with open(path, encoding="utf-8", newline="\n") as f:
        return f.read().split("\n")[:-1]


def in_child(store) -> bool:
    """Whether a child process can open the same datastore from its URL (a local directory or S3)."""
    return type(store.ds.storage).__name__ in ("LocalStorage", "S3Storage")


def run_child(job: str, store, run_id: str, step: Optional[str], out: Path, progress: Progress) -> Optional[str]:
    """Run ``job`` in a child process writing ``out``; None when it did, else why not in one line (or ""
    when ``progress`` answered False and the child was stopped)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    storage = store.ds.storage
    if hasattr(storage, "endpoint_url"):  # the same S3 endpoint and region as this process's storage
        from ..aws import ENV_S3_ENDPOINT, ENV_S3_REGION

        env[ENV_S3_ENDPOINT], env[ENV_S3_REGION] = storage.endpoint_url or "", storage.region or ""
    cmd = [
        sys.executable,
        "-m",
        "workbench.tui.offload",
        job,
        store.ds.url,
        store.ds.flow,
        run_id,
        step or "",
        str(out),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env
    )
    last = ""
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                if progress(int(parts[0]), int(parts[1])) is False:
                    proc.kill()
                    return ""
            elif line.strip():
                last = line.strip()
    finally:
        proc.stdout.close()
        proc.wait()
    return None if proc.returncode == 0 else (last or f"the reader exited with {proc.returncode}")


def offloaded(job: str, store, run_id: str, step: Optional[str], progress: Progress, finished_at=None):
    """The rows of ``job`` read by a child process (or from the cache when still true): a list of rows, a
    one-line reason when they could not be read, or None when ``progress`` stopped it."""
    path = result_path(job, store.ds.url, store.ds.flow, run_id, step)
    why = None if fresh(path, finished_at) else run_child(job, store, run_id, step, path, progress)
    if why is not None:
        return why or None
    try:
        return read_result(path)
    except OSError as exc:  # another TUI's pruning removed it meanwhile
        return f"the reader's result is gone: {exc}"


def main(argv: list[str]) -> int:
    if len(argv) != 6 or argv[0] not in ("log", "artifacts"):
        print("usage: python -m workbench.tui.offload log|artifacts URL FLOW RUN_ID STEP OUT", file=sys.stderr)
        return 2
    job, url, flow, run_id, step, out = argv
    try:  # background work: the terminal's process comes first when the CPUs are busy
        os.nice(10)
    except (AttributeError, OSError):
        pass
    from ..datastore import FlowDatastore

    ds = FlowDatastore(url, flow)

    parent = os.getppid()

    def progress(done: int, total: int) -> bool:
        if os.getppid() != parent:  # the TUI is gone: nobody will read the result
            raise SystemExit(1)
        print(done, total, flush=True)
        return True

    if job == "log":
        lines = merged_log(ds, run_id, step, ds.list_tasks(run_id, step), progress)
    else:
        lines = artifact_rows(ds, run_id, step or None, progress)
    write_result(Path(out), lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
