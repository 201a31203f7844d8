import asyncio
import functools
import shutil
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def tui_project(tmp_path, monkeypatch):
    """A copy of the example flows and workbench.toml in a temp dir, with cwd inside it."""
    shutil.copytree(REPO / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "workbench.toml", tmp_path / "workbench.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the TUI's merged logs (workbench.tui.offload)
    for var in ("WORKBENCH_DATASTORE", "WORKBENCH_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def clock():
    return FakeClock()


def unknown_capacity(backend, config):
    """A capacity reader for tests that are not about clamping: every backend's limits unknown, so the
    sliders keep their full ranges on any machine (tests of clamping pass the real reader)."""
    from workbench.tui.capacity import Placement

    return Placement(backend, None, None, None, f"{backend}: what it can place is unknown here")


def fixed_capacity(backend, config):
    """The same small machine for every backend (2 CPUs, 8G, no GPU): screens that match on any host."""
    from workbench.tui.capacity import Placement

    return Placement(backend, 2.0, 8192, 0, f"{backend}: at most cpu 2, memory 8G, gpu 0 (a test machine)")


def make_app(project: Path, clock=None, **kwargs):
    from workbench.config import load_config
    from workbench.tui.app import create_app

    if clock is not None:
        kwargs["clock"] = clock
    kwargs.setdefault("capacity_reader", unknown_capacity)
    return create_app(load_config(project), watch=False, **kwargs)


async def wait_for(pilot, predicate, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await pilot.pause(step)
    raise AssertionError(f"condition not met within {timeout}s")


def seed_run(project: Path, flow_file: str = "flows/hello.py", run_id: str = "1000000000000001") -> str:
    """Run a flow for real, then freeze its timestamps and usage so that screens are deterministic."""
    from workbench.config import load_config
    from workbench.graph import build_graph
    from workbench.parameters import resolve_parameters
    from workbench.runtime import Runtime

    config = load_config(project)
    graph = build_graph(project / flow_file)
    runtime = Runtime(graph, config, params=resolve_parameters(graph.parameters, {}), run_id=run_id)
    result = runtime.run()
    assert result.status == "succeeded", result.message
    ds = runtime.ds
    doc = ds.read_run(run_id)
    doc.started_at, doc.finished_at = 1767225600.0, 1767225601.0
    ds.write_run(doc)
    from workbench.step_summary import summarize_records

    for step in ds.list_steps(run_id):
        frozen = []
        for task_id in ds.list_tasks(run_id, step):
            task = ds.read_task(run_id, step, task_id)
            task.usage = {"peak_memory_mib": 42.0, "cpu_seconds": 0.5}
            task.started_at, task.finished_at = 1767225600.0, 1767225601.0
            ds.write_task(task)
            key = ds.log_key(run_id, step, task_id, task.attempt)
            lines = [
                (1767225600.0 + n / 10, stream, text)
                for n, (_ts, stream, text) in enumerate(ds.read_log(run_id, step, task_id))
            ]
            ds.storage.put(key, [b""])
            ds.append_log(key, lines)
            frozen.append(task)
        summary = summarize_records(graph.name, run_id, step, frozen)  # as the runtime would have, frozen too
        summary.final = True
        ds.write_step_summary(summary)
    return run_id


def async_test(fn):
    """Run an async test with asyncio.run (no async pytest plugin is a dependency)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


async def ready(app, pilot, timeout: float = 30.0):
    """Wait until the lazily mounted tab panes are there."""
    await wait_for(pilot, lambda: app.panes_ready, timeout=timeout)
