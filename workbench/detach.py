"""Detached runs: ``workbench run --detach`` and ``workbench attach RUN``.

``launch`` starts the same ``workbench run`` command again as a background process in its own session
(so closing the terminal, which sends SIGHUP to the terminal's session, never reaches it), with stdin
from /dev/null and stdout/stderr into its own log file (``runtime.log`` in the run's directory when
the datastore is local, else ``.workbench/detached/<run>.log`` under the project). The run id is chosen
here and handed over in the environment, so it can be printed at once. The background runtime keeps the
run's heartbeat like any other (:mod:`workbench.liveness`) and cancels on SIGTERM, which is what
``workbench cancel RUN`` sends it.

``attach`` follows a run from the datastore only (no connection to the runtime): new log lines of every
task as they are written, each task's end, and the run's end. Ctrl-C leaves attach, not the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .datastore import FlowDatastore, new_run_id
from .datastore.records import RunStatus
from .exitcodes import CLI_CANCELLED, CLI_FAILED, CLI_OK

RUN_ID_VAR = "WORKBENCH_DETACHED_RUN_ID"
LOG_VAR = "WORKBENCH_DETACHED_LOG"
START_WAIT = 60.0  # how long `run --detach` waits for the background runtime to write the run's record


def adopt(runtime) -> None:
    """In the background process: take the run id and log path the launcher chose."""
    run_id = os.environ.pop(RUN_ID_VAR, None)
    if run_id:
        runtime.run_id = run_id
        runtime.detached = True
        runtime.runtime_log = os.environ.pop(LOG_VAR, None)


def _log_path(config, flow: str, run_id: str) -> Path:
    from .datastore.storage import open_storage

    storage = open_storage(config.datastore_url)
    local = storage.local_path(f"{flow}/runs/{run_id}/runtime.log")
    path = Path(local) if local else Path(config.root) / ".workbench" / "detached" / f"{run_id}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def launch(argv: list[str], flow_arg: str) -> int:
    """Start ``workbench run ...`` (``argv`` without --detach) in the background; print its run id."""
    from .config import load_config
    from .project_files import resolve_flow

    config = load_config()
    graph = resolve_flow(flow_arg, config)
    if not graph.ok:
        raise graph.errors[0]
    run_id = new_run_id()
    flow = graph.name or ""  # a graph that is ok always has its class name
    log = _log_path(config, flow, run_id)
    args = [a for a in argv if a != "--detach"]
    env = dict(os.environ, **{RUN_ID_VAR: run_id, LOG_VAR: str(log)})
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=os.getcwd(),
        )
    ds = FlowDatastore(config.datastore_url, flow)
    deadline = time.time() + START_WAIT
    while time.time() < deadline:
        if ds.read_run(run_id) is not None:
            print(run_id)
            print(
                f"running in the background (pid {proc.pid}, log {log}); follow it with `workbench attach "
                f"{run_id}`, stop it with `workbench cancel {run_id}`",
                file=sys.stderr,
            )
            return CLI_OK
        code = proc.poll()
        if code is not None:
            print(f"error: the background run did not start (exit {code}); its output ({log}):", file=sys.stderr)
            print(_tail(log), file=sys.stderr)
            return code or CLI_FAILED
        time.sleep(0.1)
    print(
        f"error: the background run (pid {proc.pid}) wrote no record in {START_WAIT:.0f}s; see {log}", file=sys.stderr
    )
    return CLI_FAILED


def _tail(path: Path, size: int = 4000) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f.read().decode("utf-8", "replace").rstrip()


def attach(ds: FlowDatastore, run_id: str, *, poll: float = 0.5, out=None) -> int:
    """Print a run's live events from the datastore until it ends; the exit code says how it ended."""
    from .logs import LogTail, attempts_with_logs

    out = out or sys.stdout
    tails: dict[tuple[str, str, int], LogTail] = {}
    ended: set[tuple[str, str]] = set()
    record = ds.read_run(run_id)
    if record is None:
        from .errors import UsageError

        raise UsageError(f"no run {run_id} of flow {ds.flow} in {ds.url}")
    print(f"attached to {ds.flow}/{run_id} ({record.status}); Ctrl-C leaves attach, not the run", file=out, flush=True)
    try:
        while True:
            record = ds.read_run(run_id) or record
            final = record.status is not RunStatus.RUNNING
            for step in ds.list_steps(run_id):
                for task_id in ds.list_tasks(run_id, step):
                    if (step, task_id) in ended:
                        continue
                    for attempt in attempts_with_logs(ds, run_id, step, task_id):
                        tail = tails.setdefault(
                            (step, task_id, attempt), LogTail(ds, ds.log_key(run_id, step, task_id, attempt))
                        )
                        for _ts, _stream, text in tail.read_new():
                            print(f"{step}/{task_id} {text}", file=out, flush=True)
                    task = ds.read_task(run_id, step, task_id)
                    if task is not None:
                        for (s, t, _), tail in tails.items():
                            if (s, t) == (step, task_id):
                                for _ts, _stream, text in tail.rest():
                                    print(f"{step}/{task_id} {text}", file=out, flush=True)
                        ended.add((step, task_id))
                        why = f": {task.reason}" if task.reason and not task.status.ok else ""
                        print(f"{step}/{task_id} {task.status}{why}", file=out, flush=True)
            if final:
                note = f" ({record.message})" if record.message else ""
                print(f"run {run_id} {record.status}{note}", file=out, flush=True)
                return {RunStatus.SUCCEEDED: CLI_OK, RunStatus.CANCELLED: CLI_CANCELLED}.get(record.status, CLI_FAILED)
            time.sleep(poll)
    except KeyboardInterrupt:
        print(f"\nleft attach; run {run_id} goes on (`workbench cancel {run_id}` stops it)", file=sys.stderr)
        return CLI_OK
