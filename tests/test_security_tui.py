"""The TUI's Artifacts tab previews from the summaries tasks stored: opening a run unpickles nothing
(in the issue's attack, pressing 5 was enough to run a planted pickle)."""

from __future__ import annotations

import pickle

import pytest

pytest.importorskip("textual")

from tests.tui.conftest import async_test, clock, make_app, ready, seed_run, tui_project  # noqa: E402,F401
from tests.tui.test_app import select_flow  # noqa: E402


@async_test
async def test_artifacts_tab_never_unpickles(tui_project, clock, monkeypatch):  # noqa: F811
    seed_run(tui_project)

    def refuse(*args, **kwargs):
        raise AssertionError("the TUI unpickled a blob")

    import workbench.datastore.blob as blob

    for target in (pickle, blob.pickle):
        monkeypatch.setattr(target, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    app = make_app(tui_project, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        await pilot.pause()
        await pilot.press("5")
        table = app.query_one("#artifacts-table")
        table.focus()
        await pilot.pause()
        assert table.row_count > 0
        for _ in range(table.row_count):
            await pilot.press("down")
            await pilot.pause()
        text = str(app.query_one("#preview").render())
        assert text and "cannot load" not in text
