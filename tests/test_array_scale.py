"""A wide foreach at scale: the scheduler starts it in bounded slices (no 10,000 instructions at once), the remote
in-flight cap is as wide as one array (or what the run says), and --max-workers reaches Kubernetes' parallelism.
Events in, instructions out: no processes. The figures (memory, API calls) are in benchmarks/scale_*.py."""

import textwrap
from pathlib import Path
from types import SimpleNamespace

from workbench.backends.base import TaskExit
from workbench.config import ProjectConfig
from workbench.datastore.records import AttemptRecord, TaskStatus
from workbench.graph import build_graph
from workbench.scheduler import DISPATCH_BATCH, MAX_REMOTE_IN_FLIGHT, RunStart, Scheduler, Submit, TaskExited, Tick
from workbench.settings import StepSettings

WIDE = textwrap.dedent("""
    from workbench import FlowSpec, step
    class Wide(FlowSpec):
        @step
        def start(self):
            self.items = list(range(1200))
            self.next(self.work, foreach="items")
        @step
        def work(self):
            self.next(self.join)
        @step
        def join(self, inputs):
            self.next(self.end)
        @step
        def end(self):
            pass
""")


def _scheduler(**kw) -> Scheduler:
    graph = build_graph("flow.py", source=WIDE)
    settings = {n: StepSettings(backend="batch" if n == "work" else "local") for n in graph.steps}
    return Scheduler(graph, run_id="9", flow_file="flow.py", settings=settings, **kw)


def _fan_out(s: Scheduler, width: int = 1200) -> list:
    start = [i for i in s.handle(RunStart(0.0)) if isinstance(i, Submit)][0]
    report = AttemptRecord(
        status=TaskStatus.SUCCEEDED,
        attempt=0,
        artifacts={"items": {"sha": "abc"}},
        foreach_num_splits=width,
        foreach_artifact="items",
    )
    return s.handle(TaskExited(start.key, 0, TaskExit(TaskStatus.SUCCEEDED, 0), report, 1.0))


def test_a_wide_fan_out_starts_in_slices_and_the_next_tick_starts_the_rest():
    s = _scheduler(remote_backends=frozenset({"batch"}))
    first = [i for i in _fan_out(s) if isinstance(i, Submit)]
    assert len(first) == DISPATCH_BATCH and s.wake_at == 1.0  # more to start: wake at once
    assert s.dispatch_pending  # the runtime tells the backends more of the burst is coming (one array for all)
    second = [i for i in s.handle(Tick(1.01)) if isinstance(i, Submit)]
    assert s.dispatch_pending
    third = [i for i in s.handle(Tick(1.02)) if isinstance(i, Submit)]
    assert len(second) == DISPATCH_BATCH and len(third) == 1200 - 2 * DISPATCH_BATCH and s.wake_at is None
    assert not s.dispatch_pending
    indexes = [sub.spec.foreach_stack[-1]["index"] for sub in first + second + third]
    assert indexes == list(range(1200))  # every task once, in order
    # every record of the step shares one settings dict (10,000 equal dicts otherwise)
    assert len({id(sub.spec.settings) for sub in first + second + third}) == 1


def test_the_default_remote_cap_is_one_array_wide_and_a_setting_or_max_workers_changes_it(tmp_path: Path):
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    assert MAX_REMOTE_IN_FLIGHT == 10_000  # a foreach up to 10,000 wide is one array job / Indexed Job
    flow = tmp_path / "wide.py"
    flow.write_text(WIDE)
    graph = load_graph(str(flow))
    config = ProjectConfig(root=tmp_path)
    assert Runtime(graph, config).max_remote_tasks() == 10_000
    assert Runtime(graph, config, max_workers=4).max_remote_tasks() == 10_000  # arrays are not cut to 4
    assert Runtime(graph, config, max_workers=20_000).max_remote_tasks() == 20_000
    config.model.project.max_remote_tasks = 300
    assert Runtime(graph, config, max_workers=20_000).max_remote_tasks() == 300


def test_a_capped_run_starts_no_more_remote_tasks_than_the_cap():
    s = _scheduler(remote_backends=frozenset({"batch"}), max_remote=300)
    assert len([i for i in _fan_out(s) if isinstance(i, Submit)]) == 300 and s.wake_at is None


def test_kubernetes_takes_max_workers_as_an_indexed_jobs_parallelism():
    from workbench.backends.kubernetes import KubernetesBackend

    backend = KubernetesBackend(ProjectConfig(root=Path("/tmp")))
    backend._ctx = SimpleNamespace(max_workers=None)
    assert backend.parallelism(50) == 50  # nothing said: every index at once
    backend._ctx = SimpleNamespace(max_workers=8)  # workbench run --max-workers 8
    assert backend.parallelism(50) == 8 and backend.parallelism(3) == 3
    backend.section.parallelism = 5  # [kubernetes] parallelism wins
    assert backend.parallelism(50) == 5
