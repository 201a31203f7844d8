"""Usage timelines: CPU and memory of a task sampled over time, bounded, stored with its usage."""

import textwrap

import pytest

from workbench.config import load_config
from workbench.graph import load_graph
from workbench.runtime import Runtime
from workbench.sampling import MAX_SAMPLES, Timeline, describe_timeline, sparkline, timeline_peak_mib

GROWING = """
import os

from workbench import FlowSpec, step


PAUSE = float(os.environ.get("GROW_PAUSE", "0.25"))


class Grow(FlowSpec):
    @step
    def start(self):
        import time
        hoard = []
        for _ in range(12):
            hoard.append(bytearray(16 << 20))  # 16 MiB more, touched (bytearray zero-fills)
            time.sleep(PAUSE)
        self.held = len(hoard)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _rising_timeline(project, backend, source, monkeypatch):
    (project / "flows" / "grow.py").write_text(textwrap.dedent(GROWING))
    result = Runtime(load_graph(project / "flows" / "grow.py"), load_config(), backend=backend).run()
    assert result.status == "succeeded", result.message
    from workbench.datastore import FlowDatastore

    ds = FlowDatastore(load_config().datastore_url, "Grow")
    (task_id,) = ds.list_tasks(result.run_id, "start")
    usage = ds.read_task(result.run_id, "start", task_id).usage
    timeline = usage["timeline"]
    mem = timeline["mem_mib"]
    assert timeline["source"] == source and len(mem) >= 4, timeline
    top = mem.index(max(mem))
    assert mem[top] - mem[0] >= 100, mem  # 12 x 16 MiB were added while it ran (freed when the step ended)
    climb = mem[: top + 1]
    assert len(climb) >= 4 and all(b >= a for a, b in zip(climb, climb[1:], strict=False)), mem  # rising, not one jump
    assert timeline_peak_mib(usage) == max(mem) and len(timeline["cpu"]) == len(mem)
    lines = describe_timeline(usage, backend)
    assert lines[0].startswith("memory ") and "peak" in lines[0]


def test_a_task_that_allocates_gradually_has_a_rising_timeline(project, monkeypatch):
    _rising_timeline(project, "local", "proc", monkeypatch)


@pytest.mark.docker
def test_a_docker_task_that_allocates_gradually_has_a_rising_timeline(project, monkeypatch):
    from tests.support.engine import base_image, docker_client_or_skip

    docker_client_or_skip()
    (project / "workbench.toml").write_text(
        f'[project]\nname = "grow"\n[docker]\nimage = "{base_image()}"\nenv = {{ GROW_PAUSE = "1.0" }}\n'
    )  # 12 s of growth: under load the engine's stats stream came every ~2.5 s, and 0.6 s pauses gave 3 readings
    _rising_timeline(project, "docker", "docker-stats", monkeypatch)


def test_timeline_stays_bounded_and_keeps_the_peak():
    t = Timeline(interval=0.5)
    for i in range(10_000):
        t.add(1.0, 5000.0 if i == 7777 else float(i % 100))
    assert len(t.mem) < MAX_SAMPLES and t.peak_mib() == 5000.0 and t.interval > 0.5


def test_sparkline_and_backends_that_cannot_be_read():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert len(sparkline(list(range(1000)), width=20)) == 20
    assert "not read on batch" in describe_timeline({}, "batch")[0]
    assert describe_timeline({}, "local") == []
