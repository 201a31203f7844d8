"""The run dialog (parameters, backend, max workers) and the palette entries that lead to it."""

from workbench.tui.screens.run_dialog import RunDialog
from workbench.tui.widgets.dag_view import DagView

from .conftest import async_test, make_app, ready, wait_for
from .test_app import select_flow


@async_test
async def test_run_dialog_passes_typed_parameters_backend_and_workers(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        select_flow(app, "FanoutFlow")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, RunDialog))
        count = app.screen.query_one("#param-count")
        assert count.value == "8" and count.has_focus  # the default, shown and typed
        assert "count (int)" in "\n".join(str(w.render()) for w in app.screen.query("Label"))
        count.value = "three"
        await pilot.press("enter")
        assert isinstance(app.screen, RunDialog)  # refused, as the CLI refuses it
        assert "--count: 'three' is not an integer" in str(app.screen.query_one("#run-error").render())
        count.value = "3"
        app.screen.query_one("#run-backend").value = "local"
        app.screen.query_one("#run-workers").value = "2"
        started = []
        start_runtime = app.start_runtime

        def recording_start(**kwargs):
            start_runtime(**kwargs)
            started.append((kwargs, app.runtime))

        app.start_runtime = recording_start
        count.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, RunDialog) and started)
        kwargs, runtime = started[0]
        assert kwargs == {"params": {"count": 3}, "backend": "local", "max_workers": 2}
        assert runtime.max_workers == 2 and runtime.params["count"] == 3
        assert {s.backend for s in runtime.settings.values()} == {"local"}
        await wait_for(pilot, lambda: app.runtime is None and app.statuses.get("end") == "succeeded", timeout=60)
        assert "square ×3" in "\n".join(app.query_one("#dag", DagView).picture.lines)
        doc = app.run_store().run_doc(app.run_store().latest_run())
        assert doc["params"]["count"] == 3


@async_test
async def test_run_dialog_escape_and_bad_workers(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, RunDialog))
        app.screen.query_one("#run-workers").value = "0"
        await pilot.press("ctrl+s")
        assert "--max-workers: '0' is not a positive integer" in str(app.screen.query_one("#run-error").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, RunDialog))
        assert app.runtime is None


@async_test
async def test_palette_finds_param_and_backend(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert any("param" in t for t in commands) and any("backend" in t for t in commands)
        backend = next(c for t, c in commands.items() if "(backend)" in t)
        backend.callback()
        await wait_for(pilot, lambda: isinstance(app.screen, RunDialog) and app.screen.query("#run-backend"))
        await pilot.pause()
        assert app.screen.query_one("#run-backend").has_focus
        from workbench.backends import REGISTRY

        options = [str(o[0]) for o in app.screen.query_one("#run-backend")._options if o[1] in REGISTRY]
        assert options == list(REGISTRY)
