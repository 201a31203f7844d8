"""Looks of each screen at 80x24 (pytest-textual-snapshot). Everything shown is frozen: a seeded run
with fixed ids, timestamps and usage; no clock in the header; no file watching."""

from .conftest import make_app, ready, seed_run

SIZE = (80, 24)


def app_on(project, flow, step=None, seed=False):
    if seed:
        seed_run(project)
    app = make_app(project)

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
