"""Why is it pending, in the Tasks tab: a TaskWaiting from a remote backend shows the platform's reason
live, and goes away when the task runs or ends."""

from workbench import events as ev
from workbench.tui.widgets.tasks import TasksPane

from .conftest import async_test, make_app, ready, wait_for
from .test_app import select_flow


@async_test
async def test_tasks_tab_shows_why_a_queued_task_waits_until_it_ends(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        await pilot.press("6")
        pane = app.query_one("#tasks", TasksPane)
        shown = pane.query_one("#tasks-waiting")
        assert not shown.display
        reason = "Pending: unschedulable: insufficient nvidia.com/gpu: requested 1 (scheduler: 0/1 nodes are available)"
        app.events.put(ev.TaskWaiting("HelloFlow/1/train/2", "train", "kubernetes", reason))
        app.events.put(ev.TaskWaiting("HelloFlow/1/train/3", "train", "batch", "RUNNABLE: queued [cpu=4]"))
        await wait_for(pilot, lambda: shown.display)
        text = str(shown.render())
        assert "1/train/2 waits: kubernetes: Pending: unschedulable: insufficient nvidia.com/gpu" in text
        assert "RUNNABLE: queued [cpu=4]" in text  # not taken for markup
        app.events.put(ev.TaskWaiting("HelloFlow/1/train/2", "train", "kubernetes", ""))  # it runs
        await wait_for(pilot, lambda: "train/2" not in str(shown.render()))
        app.events.put(ev.TaskFinished("HelloFlow/1/train/3", "train", "failed", 0, 1.0))
        await wait_for(pilot, lambda: not shown.display)
