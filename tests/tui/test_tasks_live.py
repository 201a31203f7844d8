"""What a live step costs the keys: a live refresh that changes nothing touches no widget, the Tasks tab is
not redrawn while another tab is shown (and is, at once, when it is shown again), the table keeps its cursor
when a live step's rows are redrawn, and the footer is rebuilt only when its keys change (entering or
leaving the Logs tab)."""

from textual.widgets import Footer, Static

from workbench.tui.widgets.tasks import TasksPane

from .conftest import async_test, make_app, wait_for
from .test_tasks_scale import RUN, on_step, seed

SHOWN = ("#tasks-title", "#tasks-counts", "#tasks-fix", "#tasks-hist", "#tasks-usage", "#tasks-profile")


def count_updates(monkeypatch) -> list[str]:
    """The ids of the Statics updated from now on."""
    updated: list[str] = []
    original = Static.update

    def update(self, *args, **kwargs):
        updated.append(self.id or type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Static, "update", update)
    return updated


def rewrite_summary(ds, failed: str, final: bool = False) -> None:
    """The runtime's summary after task ``failed`` failed too."""
    from workbench.datastore.records import TaskRecord
    from workbench.step_summary import StepSummaryBuilder

    record = TaskRecord.from_dict({**ds.read_task(RUN, "square", failed).to_dict(), "status": "failed", "reason": "x"})
    ds.write_task(record)
    builder = StepSummaryBuilder("FanoutFlow", RUN, "square")
    for i in range(1, 301):
        builder.add(ds.read_task(RUN, "square", str(i)))
    ds.write_step_summary(builder.record(final=final))


@async_test
async def test_a_live_refresh_that_changes_nothing_updates_no_widget(tui_project, clock, monkeypatch):
    seed(tui_project, 300, live=True)
    app = make_app(tui_project, clock, datastore_poll=None)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await on_step(app, pilot)
        assert pane.live
        table = pane.query_one("#tasks-table")
        table.focus()
        table.move_cursor(row=7)
        title = str(pane.query_one("#tasks-title", Static).content)
        updated = count_updates(monkeypatch)
        loads = pane.loads
        await wait_for(pilot, lambda: pane.loads >= loads + 2, timeout=20)  # two live refreshes drawn
        assert [name for name in updated if f"#{name}" in SHOWN] == []
        assert str(pane.query_one("#tasks-title", Static).content) == title and "live" in title
        assert table.cursor_row == 7


@async_test
async def test_a_hidden_tasks_tab_is_not_redrawn_and_is_at_once_when_shown(tui_project, clock):
    ds = seed(tui_project, 300, live=True)
    app = make_app(tui_project, clock, datastore_poll=None)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await on_step(app, pilot)
        await pilot.press("3")
        await pilot.pause(0.3)
        rewrite_summary(ds, "5", final=True)  # the step ends while the Runs tab is shown
        await pilot.pause(2.5)  # two live refreshes' time
        assert not pane.summary.final and pane.live, "a hidden tab is not read again"
        await pilot.press("6")
        await wait_for(pilot, lambda: pane.summary.final, timeout=10)
        assert pane.summary.failed_total == 2 and not pane.live
        assert "live" not in str(pane.query_one("#tasks-title", Static).content)
        await wait_for(pilot, lambda: pane.log_complete, timeout=60)  # the ended step's merged log is read


@async_test
async def test_the_table_keeps_its_cursor_when_a_live_steps_rows_are_redrawn(tui_project, clock, monkeypatch):
    monkeypatch.setattr("workbench.tui.widgets.tasks.LIVE_ROWS_SECONDS", 0.0)  # redraw rows at every refresh
    ds = seed(tui_project, 300, live=True)
    app = make_app(tui_project, clock, datastore_poll=None)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await on_step(app, pilot)
        table = pane.query_one("#tasks-table")
        table.focus()
        table.move_cursor(row=12)
        rewrite_summary(ds, "5")
        await wait_for(pilot, lambda: pane.summary.failed_total == 2)
        assert {table.get_row_at(0)[0], table.get_row_at(1)[0]} == {"5 [4]", "77 [76]"}  # redrawn
        assert table.cursor_row == 12


@async_test
async def test_the_footer_is_rebuilt_only_when_its_keys_change(tui_project, clock, monkeypatch):
    rebuilt: list[int] = []
    original = Footer.recompose

    async def recompose(self):
        rebuilt.append(1)
        return await original(self)

    monkeypatch.setattr(Footer, "recompose", recompose)
    seed(tui_project, 10)
    app = make_app(tui_project, clock, datastore_poll=None)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await on_step(app, pilot)
        assert isinstance(pane, TasksPane)
        await pilot.pause(0.3)
        before = len(rebuilt)
        for key in "36363":
            await pilot.press(key)
        await pilot.pause(0.3)
        assert len(rebuilt) == before  # the same keys apply to the Runs and Tasks tabs

        def footer_actions() -> set[str]:
            return {key.action for key in app.query("FooterKey")}

        assert "follow" not in footer_actions() and "next_step" in footer_actions()
        await pilot.press("4")
        await wait_for(pilot, lambda: "follow" in footer_actions() and "next_step" not in footer_actions())
        await pilot.press("6")
        await wait_for(pilot, lambda: "follow" not in footer_actions() and "next_step" in footer_actions())


@async_test
async def test_the_cli_app_freezes_its_first_screen_out_of_full_collections(tui_project, clock, monkeypatch):
    """Full collections scanned the first screen's ~100,000 objects, ~100 ms each, and a key landing in one
    waited for it (benchmarks/tui_foreach.py): `workbench tui`'s app freezes them once its panes are up."""
    import gc

    from textual.app import App

    from workbench.config import load_config
    from workbench.tui import app as app_module

    made = []
    monkeypatch.setattr(App, "run", lambda self, *a, **k: made.append(self))
    app_module.run_app(load_config(tui_project))
    assert made[0].freeze_gc is True

    assert gc.get_freeze_count() == 0
    app = make_app(tui_project, clock, datastore_poll=None, freeze_gc=True)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.panes_ready and gc.get_freeze_count() > 0)
            assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()
            assert app.freeze_gc is False  # once
    finally:
        gc.unfreeze()
