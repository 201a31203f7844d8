"""Metaflow compatibility details, datastore guarantees, and CLI behaviour under Ctrl-C and load."""

import signal
import subprocess
import sys
import time

import pytest

from workbench import events as ev
from workbench.client import Flow, namespace
from workbench.config import load_config
from workbench.datastore import FlowDatastore, decode_artifact, encode_artifact
from workbench.datastore.local import LocalStorage
from workbench.graph import load_graph
from workbench.runtime import Runtime

from .conftest import write_flow

METAFLOW_STYLE = """
from workbench import FlowSpec, Parameter, IncludeFile, JSONType, current, step, card, project


class CompatFlow(FlowSpec):
    config = IncludeFile("config", help="a text file")
    weights = Parameter("weights", type=JSONType, default='{"a": 1}')
    debug = Parameter("debug", type=bool, default=False)

    @card
    @step
    def start(self):
        self.where = (current.flow_name, current.step_name, current.retry_count, current.is_running_flow)
        self.pathspec = current.pathspec
        self.next(self.end)

    @step
    def end(self):
        print("config:", self.config.strip(), "weights:", self.weights, "debug:", self.debug)


if __name__ == "__main__":
    CompatFlow()
"""


def wb(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_metaflow_style_file_runs_as_a_script(project):
    write_flow(project, "compat.py", METAFLOW_STYLE)
    (project / "conf.txt").write_text("alpha=1\n")
    p = subprocess.run(
        [sys.executable, "flows/compat.py", "run", "--config", "conf.txt", "--weights", '{"b": 2}', "--debug"],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "config: alpha=1 weights: {'b': 2} debug: True" in p.stdout
    namespace(load_config().datastore_url)
    run = Flow("CompatFlow").latest_run
    start = run["start"].task
    assert start.data.where == ("CompatFlow", "start", 0, True)
    assert start.data.pathspec == start.pathspec


def test_max_workers_bounds_concurrency(project):
    write_flow(
        project,
        "wide.py",
        """
        import time
        from workbench import FlowSpec, step
        class Wide(FlowSpec):
            @step
            def start(self):
                self.items = list(range(8))
                self.next(self.work, foreach="items")
            @step
            def work(self):
                time.sleep(0.2)
                self.next(self.join)
            @step
            def join(self, inputs):
                self.next(self.end)
            @step
            def end(self):
                pass
    """,
    )
    graph = load_graph(project / "flows" / "wide.py")
    events = []
    assert Runtime(graph, load_config(), sink=events.append, max_workers=3).run().status == "succeeded"
    running, peak = 0, 0
    for e in events:
        if isinstance(e, ev.TaskStarted):
            running += 1
            peak = max(peak, running)
        elif isinstance(e, ev.TaskFinished):
            running -= 1
    assert peak == 3


def test_ctrl_c_exits_130_and_marks_the_run_cancelled(project):
    write_flow(
        project,
        "sleepy.py",
        """
        import time
        from workbench import FlowSpec, step
        class Sleepy(FlowSpec):
            @step
            def start(self):
                self.ready = True
                self.next(self.nap)
            @step
            def nap(self):
                print("napping", flush=True)
                time.sleep(60)
                self.next(self.end)
            @step
            def end(self):
                pass
    """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "run", "flows/sleepy.py"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 30
    for line in proc.stdout:
        if "napping" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "cancelled" in out.splitlines()[-1]
    ds = FlowDatastore(load_config().datastore_url, "Sleepy")
    run_id = ds.list_runs()[-1]
    assert ds.read_run(run_id)["status"] == "cancelled"
    assert ds.read_task(run_id, "start", "1")["status"] == "succeeded"  # completed work is kept
    # no task process survives the cancel
    left = subprocess.run(["pgrep", "-f", f"{run_id}/nap"], capture_output=True, text=True).stdout.strip()
    assert left == ""


def test_logs_follow_streams_until_the_task_ends(project):
    write_flow(
        project,
        "ticker.py",
        """
        import time
        from workbench import FlowSpec, step
        class Ticker(FlowSpec):
            @step
            def start(self):
                for i in range(3):
                    print(f"tick {i}", flush=True)
                    time.sleep(0.5)
                self.next(self.end)
            @step
            def end(self):
                pass
    """,
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "run", "flows/ticker.py"],
        cwd=project,
        stdout=subprocess.PIPE,
        text=True,
    )
    first = run.stdout.readline()
    run_id = first.split("Ticker/")[1].split()[0]
    time.sleep(0.3)
    follow = wb("logs", f"{run_id}/start/1", "--follow", cwd=project)
    run.communicate(timeout=60)
    assert [line.split(" ", 1)[1] for line in follow.stdout.splitlines()] == ["tick 0", "tick 1", "tick 2"]


def test_array_artifacts_round_trip_and_preview(project):
    pytest.importorskip("numpy")
    write_flow(
        project,
        "arr.py",
        """
        import numpy as np
        from workbench import FlowSpec, step
        class Arr(FlowSpec):
            @step
            def start(self):
                self.arr = np.arange(12, dtype=np.float32).reshape(3, 4)
                self.next(self.end)
            @step
            def end(self):
                self.total = float(self.arr.sum())
    """,
    )
    p = wb("run", "flows/arr.py", cwd=project)
    assert p.returncode == 0, p.stderr
    run_id = p.stdout.splitlines()[0].split("Arr/")[1].split()[0]
    listing = wb("artifacts", f"{run_id}/start", cwd=project).stdout
    assert "shape=(3, 4) dtype=float32" in listing
    preview = wb("artifacts", f"{run_id}/start/1", "arr", cwd=project).stdout
    assert "shape=(3, 4) dtype=float32" in preview and "min=0 max=11 mean=5.5" in preview
    namespace(load_config().datastore_url)
    assert Flow("Arr").latest_run["end"].task.data.total == 66.0


def test_artifacts_are_content_addressed_and_writes_atomic(tmp_path):
    np = pytest.importorskip("numpy")
    ds = FlowDatastore(str(tmp_path), "F")
    big = np.arange(1_000_000, dtype=np.int64)
    sha1, _ = ds.save_artifact(big)
    sha2, _ = ds.save_artifact(big.copy())
    assert sha1 == sha2 and len(list((tmp_path / "F" / "data").rglob("*"))) == 2  # one dir, one blob
    back = ds.load_artifact(sha1)
    assert (back == big).all() and back.flags.writeable
    # small compressible values are compressed; the hash is of the content, not the bytes on disk
    sha, chunks, size = encode_artifact("x" * 100_000)
    assert sum(len(c) for c in chunks) < size / 10 and decode_artifact(bytearray(b"".join(chunks))) == "x" * 100_000

    class Boom:
        def __iter__(self):
            yield b"WBA1partial"
            raise KeyboardInterrupt  # the writer is killed half-way

    storage = LocalStorage(tmp_path / "s")
    with pytest.raises(KeyboardInterrupt):
        storage.put("F/data/ab/abc", Boom())
    assert not storage.exists("F/data/ab/abc")
    assert list((tmp_path / "s" / "F" / "data" / "ab").iterdir()) == []  # no temp file left either
