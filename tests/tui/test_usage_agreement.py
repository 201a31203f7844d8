"""One measured-usage rule: the TUI inspector and `workbench promote` show the same peak memory for a
foreach step whose tasks measured different peaks (the hungriest task's), from the same run."""

import re

from workbench.config import load_config
from workbench.graph import build_graph
from workbench.parameters import resolve_parameters
from workbench.promote import plan_promotion
from workbench.runtime import Runtime

from .conftest import async_test, make_app, ready
from .test_app import select_flow

PEAKS = [96.0, 448.0, 160.0]  # one per foreach task: the step's figure must be 448 on both paths


def seed_foreach_run(project) -> str:
    """Run FanoutFlow for real with three squares, then give each square task its own measured peak."""
    config = load_config(project)
    graph = build_graph(project / "flows" / "fanout.py")
    runtime = Runtime(
        graph, config, params=resolve_parameters(graph.parameters, {"count": "3"}), run_id="1000000000000002"
    )
    result = runtime.run()
    assert result.status == "succeeded", result.message
    ds = runtime.ds
    tasks = sorted(ds.list_tasks(result.run_id, "square"), key=int)
    assert len(tasks) == len(PEAKS)
    for task_id, peak in zip(tasks, PEAKS, strict=True):
        task = ds.read_task(result.run_id, "square", task_id)
        task.usage = {"peak_memory_mib": peak, "cpu_seconds": peak / 100}
        ds.write_task(task)
    return result.run_id


def promote_peak(project) -> float:
    config = load_config(project)
    graph = build_graph(project / "flows" / "fanout.py")
    plan = plan_promotion(config, graph, "square", {"backend": "local", "memory": "1G"}, check_capacity=False)
    note = next(n for n in plan.notes if "measured peak" in n)
    value, unit = re.search(r"measured peak (\d+(?:\.\d+)?)([MG])", note).groups()
    return float(value) * (1024 if unit == "G" else 1)


@async_test
async def test_tui_inspector_and_promote_show_the_same_peak_for_a_foreach_step(tui_project, clock):
    run_id = seed_foreach_run(tui_project)
    from_promote = promote_peak(tui_project)
    app = make_app(tui_project, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        select_flow(app, "FanoutFlow")
        app.select_step("square")
        await pilot.press("2")
        shown = str(app.query_one("#measured").render())
    from_tui = float(re.search(r"peak memory (\d+(?:\.\d+)?) MiB", shown).group(1))
    assert from_tui == from_promote == max(PEAKS), (shown, from_promote, run_id)
