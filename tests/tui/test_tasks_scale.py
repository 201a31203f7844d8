"""A big step in the Tasks and Artifacts tabs: the merged log read by a child process (ordered by time, the task
filter working on it), pages of rows kept when a live step's rows are redrawn, and the artifacts of a big run
read off the UI thread and drawn a page at a time."""

from workbench.tui.offload import OFFLOAD_TASKS, cache_dir
from workbench.tui.step_tasks import MAX_ROWS, PAGE_ROWS
from workbench.tui.widgets.tasks import TasksPane

from .conftest import async_test, make_app, ready, wait_for
from .test_app import select_flow

RUN = "1000000000000009"
TASKS = OFFLOAD_TASKS + 100  # past the line where a child process reads the logs


def seed(root, tasks: int, live: bool = False, failed=(77,), artifacts: bool = False):
    """A foreach step as the runtime leaves it; log times shuffled against the ids (task i logs at (i*37) % tasks
    seconds) so an order by time is not the order the tasks are listed in."""
    from workbench.config import load_config
    from workbench.datastore import FlowDatastore
    from workbench.datastore.records import RunRecord, TaskRecord
    from workbench.liveness import stamp
    from workbench.step_summary import StepSummaryBuilder

    ds = FlowDatastore(load_config(root).datastore_url, "FanoutFlow")
    run = RunRecord.from_dict(
        {"flow": "FanoutFlow", "run_id": RUN, "status": "running" if live else "failed", "started_at": 0.0}
    )
    if live:
        stamp(run)
    else:
        run.finished_at = 1.0
    ds.write_run(run)
    builder = StepSummaryBuilder("FanoutFlow", RUN, "square")
    for i in range(1, tasks + 1):
        tid = str(i)
        doc = {
            "run_id": RUN,
            "step": "square",
            "task_id": tid,
            "status": "failed" if i in failed else "succeeded",
            "pathspec": f"FanoutFlow/{RUN}/square/{tid}",
            "started_at": 0.0,
            "finished_at": i / 1000,
            "foreach_stack": [{"step": "start", "index": i - 1}],
        }
        if artifacts:
            doc["artifacts"] = {"result": {"sha": f"{i:040x}", "type": "int", "size": 28}}
        record = TaskRecord.from_dict(doc)
        ds.write_task(record)
        builder.add(record)
        ds.append_log(ds.log_key(RUN, "square", tid, 0), [(1_000_000.0 + (i * 37) % tasks, "stdout", f"task {i}")])
    ds.write_step_summary(builder.record(final=not live))
    return ds


async def on_step(app, pilot):
    await ready(app, pilot, timeout=60)
    select_flow(app, "FanoutFlow")
    app.select_step("square")
    await pilot.press("6")
    pane = app.query_one("#tasks", TasksPane)
    await wait_for(pilot, lambda: pane.summary is not None and pane.summary.step == "square", timeout=20)
    return pane


@async_test
async def test_merged_log_of_a_big_step_is_ordered_by_time_and_filtered_by_task(tui_project, clock):
    seed(tui_project, TASKS)
    app = make_app(tui_project, clock, datastore_poll=None)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await on_step(app, pilot)
        await wait_for(pilot, lambda: pane.log_complete, timeout=60)
        log = pane.query_one("#tasks-log")
        assert len(log.lines) == TASKS
        # ordered by time: task i logged at (i*37) % TASKS seconds past 1,000,000 (13:46:40 UTC)
        first, second = (int(line.split("[square/")[1].split("]")[0]) for line in log.lines[:2])
        assert (first * 37) % TASKS == 0 and (second * 37) % TASKS == 1
        stamps = [line.split(" ")[0] for line in log.lines]
        assert stamps == sorted(stamps)
        assert list(cache_dir().glob("log-*.txt")), "a big step's merged log is read by a child process"
        pane.query_one("#tasks-filter").value = "123"  # a task id: that task's lines only (not 1123 or 1230)
        await wait_for(pilot, lambda: len(log.lines) == 1)
        assert log.lines[0].endswith("[square/123] task 123")
        pane.query_one("#tasks-filter").value = "square/12"  # text: a substring of the task label
        want = sum(1 for i in range(1, TASKS + 1) if f"square/{i}".find("square/12") == 0)
        await wait_for(pilot, lambda: len(log.lines) == want)
        pane.query_one("#tasks-filter").value = ""
        await wait_for(pilot, lambda: len(log.lines) == TASKS)


@async_test
async def test_pages_read_past_the_first_rows_stay_when_a_live_step_is_redrawn(tui_project, clock, monkeypatch):
    from workbench.datastore.records import TaskRecord

    monkeypatch.setattr("workbench.tui.widgets.tasks.LIVE_ROWS_SECONDS", 0.0)  # redraw rows at every refresh
    ds = seed(tui_project, 300, live=True)
    app = make_app(tui_project, clock, datastore_poll=None)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await on_step(app, pilot)
        assert pane.live
        table = pane.query_one("#tasks-table")
        assert table.row_count == MAX_ROWS
        table.focus()
        table.move_cursor(row=table.row_count - 1)
        await wait_for(pilot, lambda: table.row_count > MAX_ROWS, timeout=20)
        paged = table.row_count
        assert paged == MAX_ROWS + PAGE_ROWS - 1  # 77 failed: shown already
        page_ids = {str(key.value) for key in list(table.rows)[MAX_ROWS:]}
        # the run goes on: task 5 fails, so the failed and slowest rows change and are drawn again
        record = TaskRecord.from_dict(
            {**ds.read_task(RUN, "square", "5").to_dict(), "status": "failed", "reason": "exit 1"}
        )
        ds.write_task(record)
        from workbench.step_summary import StepSummaryBuilder

        builder = StepSummaryBuilder("FanoutFlow", RUN, "square")
        for doc in [ds.read_task(RUN, "square", str(i)) for i in range(1, 301)]:
            builder.add(doc)
        ds.write_step_summary(builder.record(final=False))
        await wait_for(pilot, lambda: pane.summary.rows[0].task_id in ("5", "77") and pane.summary.failed_total == 2)
        await wait_for(pilot, lambda: table.get_row_at(0)[0] in ("5 [4]", "77 [76]") and table.row_count >= paged - 1)
        shown = {str(key.value) for key in table.rows}
        assert page_ids - {"5"} <= shown, "the page read before the redraw is still there"
        assert "5" in shown and len(shown) == table.row_count  # each task once


@async_test
async def test_artifacts_of_a_big_run_are_read_in_a_worker_and_drawn_a_page_at_a_time(tui_project, clock, monkeypatch):
    monkeypatch.setattr("workbench.tui.runs.ARTIFACT_PAGE", 100)
    seed(tui_project, TASKS, artifacts=True)
    app = make_app(tui_project, clock, datastore_poll=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot, timeout=60)
        select_flow(app, "FanoutFlow")
        app.select_step("square")
        await pilot.press("5")
        table = app.query_one("#artifacts-table")
        title = app.query_one("#artifacts-title")
        # the records come from a worker (a child process past 200 tasks: its result file is checked below); how
        # soon they are on screen depends on the machine, so the first rows are waited for, not assumed absent
        await wait_for(pilot, lambda: table.row_count == 100, timeout=60)
        assert f"{TASKS:,} artifacts" in str(title.render())
        assert str(table.get_row_at(0)[1]) == "result" and str(table.get_row_at(0)[2]) == "int"
        table.focus()
        table.move_cursor(row=table.row_count - 1)  # the last row: the next page is drawn
        await wait_for(pilot, lambda: table.row_count == 200)
        assert list(cache_dir().glob("artifacts-*.txt")), "a big run's records are read by a child process"


def test_a_reader_that_fails_says_why_in_one_line(tui_project):
    """A datastore the child cannot open: the pane shows the child's last line, never a traceback."""
    from types import SimpleNamespace

    from workbench.tui.offload import offloaded

    store = SimpleNamespace(ds=SimpleNamespace(url="s3://", flow="FanoutFlow", storage=object()))
    why = offloaded("log", store, RUN, "square", lambda done, total: True)
    assert isinstance(why, str) and "no bucket name" in why and "\n" not in why
