"""Peak memory of the runtime and of `workbench logs` for a step that writes a lot of output.

A flow whose start step writes ``--mb`` MB to stdout (100-byte lines) runs through the real CLI (output
to /dev/null, local backend, warm worker); then `workbench logs RUN/start` reads the whole log back
(to /dev/null). Each process is sampled with psutil every 20 ms (RSS of the process itself; the local
worker and the task process are reported separately, they are not the runtime).

    python benchmarks/logs_memory.py [--mb 200]

Target (issue 15): runtime and `workbench logs` each under 150 MB RSS peak (exit code 1 above it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
LIMIT_MB = 150

FLOW = """
from workbench import FlowSpec, step
import sys

class ChattyFlow(FlowSpec):
    @step
    def start(self):
        line = "x" * 99 + "\\n"
        block = line * 10_000  # 1 MB
        for _ in range({mb}):
            sys.stdout.write(block)
        sys.stdout.flush()
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def peak_rss(proc: subprocess.Popen, interval: float = 0.02) -> dict[str, float]:
    """Peak RSS (MiB) of ``proc`` itself and of its descendants by role, sampled until it exits."""
    peaks = {"self": 0.0, "children": 0.0}
    try:
        p = psutil.Process(proc.pid)
    except psutil.NoSuchProcess:
        return peaks
    while proc.poll() is None:
        try:
            peaks["self"] = max(peaks["self"], p.memory_info().rss / 2**20)
            kids = sum(c.memory_info().rss for c in p.children(recursive=True)) / 2**20
            peaks["children"] = max(peaks["children"], kids)
        except psutil.Error:
            pass
        time.sleep(interval)
    return peaks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "flows").mkdir()
        (root / "workbench.toml").write_text('[project]\nname = "logbench"\n')
        (root / "flows" / "chatty.py").write_text(textwrap.dedent(FLOW.format(mb=args.mb)))
        t0 = time.time()
        with open(os.devnull, "w") as null:
            run = subprocess.Popen(
                [sys.executable, "-m", "workbench.cli", "run", "flows/chatty.py"],
                cwd=root,
                env=env,
                stdout=null,
                stderr=subprocess.PIPE,
                text=True,
            )
            err_lines: list[str] = []
            threading.Thread(target=lambda: err_lines.extend(run.stderr), daemon=True).start()
            run_peaks = peak_rss(run)
        run_s = time.time() - t0
        if run.returncode != 0:
            print("".join(err_lines[-20:]), file=sys.stderr)
            return 2
        [log] = list((root / ".workbench" / "ChattyFlow" / "runs").glob("*/start/*/0.log"))
        run_id = log.parts[-4]
        size_mb = log.stat().st_size / 1e6
        t0 = time.time()
        with open(os.devnull, "w") as null:
            logs = subprocess.Popen(
                [sys.executable, "-m", "workbench.cli", "logs", f"{run_id}/start"],
                cwd=root,
                env=env,
                stdout=null,
                stderr=subprocess.PIPE,
            )
            logs_peaks = peak_rss(logs)
        logs_s = time.time() - t0
    print(f"step output: {args.mb} MB; stored log: {size_mb:.0f} MB")
    print(
        f"workbench run:  runtime peak RSS {run_peaks['self']:.0f} MiB (worker + task processes "
        f"{run_peaks['children']:.0f} MiB), {run_s:.1f}s"
    )
    print(f"workbench logs: peak RSS {logs_peaks['self']:.0f} MiB, {logs_s:.1f}s")
    ok = run_peaks["self"] < LIMIT_MB and logs_peaks["self"] < LIMIT_MB
    print("ok" if ok else f"over the {LIMIT_MB} MiB target")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
