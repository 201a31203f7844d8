"""Looks of each screen at 80x24, and of the main ones at 80x24 and 120x40 in dark and light themes
(pytest-textual-snapshot). Everything shown is frozen: a seeded run with fixed ids, timestamps, usage
and log times; no clock in the header; no file watching; no datastore polling; a fixed capacity."""

import pytest

from .conftest import fixed_capacity, make_app, ready, seed_run, wait_for

SIZE = (80, 24)


def app_on(project, flow, step=None, seed=False):
    if seed:
        seed_run(project)
    app = make_app(project, datastore_poll=None, capacity_reader=fixed_capacity)

    async def run_before(pilot):
        await ready(app, pilot)
        path = next(p for p, g in app.graphs.items() if g.name == flow or p.endswith(f"/{flow}"))
        app.select_flow(path)
        if step:
            app.select_step(step)
        await pilot.pause()

    return app, run_before


def test_snapshot_dag_with_branches(tui_project, snap_compare):
    app, before = app_on(tui_project, "TrainFlow", "train_big")
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_snapshot_dag_of_a_run(tui_project, snap_compare):
    app, before = app_on(tui_project, "HelloFlow", "count", seed=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_snapshot_flow_with_error(tui_project, snap_compare):
    path = tui_project / "flows" / "hello.py"
    path.write_text(path.read_text().replace("def count(self):", "def count(self)"))
    app, before = app_on(tui_project, "hello.py")
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_snapshot_inspector(tui_project, snap_compare):
    app, before = app_on(tui_project, "TrainFlow", "train_big")

    async def run_before(pilot):
        await before(pilot)
        await pilot.press("2")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_runs(tui_project, snap_compare):
    app, before = app_on(tui_project, "HelloFlow", seed=True)

    async def run_before(pilot):
        await before(pilot)
        await pilot.press("3")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_logs(tui_project, snap_compare):
    app, before = app_on(tui_project, "HelloFlow", seed=True)

    async def run_before(pilot):
        await before(pilot)
        await pilot.press("3")
        app.query_one("#runs-table").focus()
        await pilot.press("enter")
        await pilot.press("4")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_artifacts(tui_project, snap_compare):
    app, before = app_on(tui_project, "HelloFlow", "count", seed=True)

    async def run_before(pilot):
        await before(pilot)
        await pilot.press("5")
        app.query_one("#artifacts-table").focus()
        await pilot.press("down")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_promote_dialog(tui_project, snap_compare):
    app, before = app_on(tui_project, "HelloFlow", "count", seed=True)

    async def run_before(pilot):
        from workbench.tui.screens.promote import PromoteScreen

        from .conftest import wait_for

        await before(pilot)
        await pilot.press("2")
        app.query_one("#memory").focus()
        await pilot.press("right", "right", "p")
        await wait_for(pilot, lambda: isinstance(app.screen, PromoteScreen))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_light_theme(tui_project, snap_compare):
    app, before = app_on(tui_project, "TrainFlow", "train_big", seed=True)

    async def run_before(pilot):
        app.theme = "textual-light"
        await before(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
THEMES = {"dark": "textual-dark", "light": "textual-light"}


async def _inspector(app, pilot):
    await pilot.press("2")
    await wait_for(pilot, lambda: "at most" in str(app.query_one("#capacity").render()))


async def _runs(app, pilot):
    await pilot.press("3")


async def _tasks(app, pilot):
    pane = app.query_one("#tasks")
    await pilot.press("6")
    await wait_for(pilot, lambda: pane.summary is not None and pane.summary.step == app.selected_step)
    await wait_for(pilot, lambda: pane.log_complete)  # the merged log is read after the summary


async def _run_dialog(app, pilot):
    from workbench.tui.screens.run_dialog import RunDialog

    await pilot.press("a")
    await wait_for(pilot, lambda: isinstance(app.screen, RunDialog))


SCREENS = {
    "dag": ("TrainFlow", "train_big", None),
    "inspector": ("TrainFlow", "train_big", _inspector),
    "runs": ("HelloFlow", "count", _runs),
    "tasks": ("HelloFlow", "count", _tasks),
    "run_dialog": ("FanoutFlow", None, _run_dialog),
}


@pytest.mark.parametrize("theme", list(THEMES))
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("screen", list(SCREENS))
def test_snapshot_sizes_and_themes(tui_project, snap_compare, screen, size, theme):
    flow, step, then = SCREENS[screen]
    app, before = app_on(tui_project, flow, step, seed=True)

    async def run_before(pilot):
        app.theme = THEMES[theme]
        await before(pilot)
        if then is not None:
            await then(app, pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)
