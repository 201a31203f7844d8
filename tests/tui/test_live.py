"""Issue 17's first list through Pilot: runs started elsewhere show up live, the log search gives keys
back, notifications keep their text, enter on a run shows its logs, a syntax error keeps the DAG."""

import os
import subprocess
import sys
import time

from workbench.tui.widgets.dag_view import DagView
from workbench.tui.widgets.logs import LogPane

from .conftest import async_test, make_app, ready, seed_run, wait_for
from .test_app import saved, select_flow

SLOW = """
from workbench import FlowSpec, step


class SlowFlow(FlowSpec):
    @step
    def start(self):
        import time
        print("sleeping", flush=True)
        time.sleep(4)
        self.next(self.end)

    @step
    def end(self):
        print("done")
"""


def toasts(app) -> str:
    """The text of the notifications on screen, as drawn (markup already applied)."""
    from textual.widgets._toast import Toast

    return "\n".join(str(t.render()) for t in app.screen.query(Toast))


@async_test
async def test_a_run_started_from_the_cli_appears_within_2_seconds(tui_project, clock):
    (tui_project / "flows" / "slow.py").write_text(SLOW)
    app = make_app(tui_project, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        select_flow(app, "SlowFlow")
        await pilot.press("3")
        table = app.query_one("#runs-table")
        assert table.row_count == 0
        cli = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "run", "flows/slow.py"],
            cwd=tui_project,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            runs = tui_project / ".workbench"
            deadline = time.monotonic() + 30
            while not list(runs.glob("**/SlowFlow/runs/*/run.json")):  # the CLI run has its record
                assert time.monotonic() < deadline, "the CLI run never wrote its record"
                await pilot.pause(0.02)
            recorded = time.monotonic()
            await wait_for(pilot, lambda: table.row_count == 1 and app.statuses.get("start") == "running", timeout=5)
            assert time.monotonic() - recorded < 2.0
            assert "running" in str(table.get_row_at(0)[1])
            assert "▶ start" in "\n".join(app.query_one("#dag", DagView).picture.lines)
            # and it finishes on screen too, still without selecting the flow again
            await wait_for(pilot, lambda: app.statuses.get("end") == "succeeded", timeout=30)
            await wait_for(pilot, lambda: "succeeded" in str(table.get_row_at(0)[1]), timeout=5)
        finally:
            cli.kill()
            cli.wait()


@async_test
async def test_polling_the_datastore_can_be_switched_off(tui_project, clock):
    app = make_app(tui_project, clock, datastore_poll=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        seed_run(tui_project)
        await pilot.pause(1.2)
        assert app.statuses == {}  # nothing looked: the test setting holds


@async_test
async def test_log_search_escape_bindings_highlight_and_n_N(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        logs = app.query_one("#logs", LogPane)
        logs.add([("F/1/start/1", f"line {i}{' needle' if i % 10 == 3 else ''}") for i in range(100)])
        await pilot.press("4", "slash")
        search = app.query_one("#log-search")
        assert search.has_focus
        await pilot.press(*"NEEDLE", "enter")
        assert not search.has_focus  # enter searched and gave the keys back
        assert logs._match == 3 and not logs.follow
        await pilot.press("n")
        assert logs._match == 13
        await pilot.press("n", "n")
        assert logs._match == 33
        await pilot.press("N")
        assert logs._match == 23
        assert "match at line 24" in str(logs.query_one("#log-status").render())
        # every match on screen is marked
        strip = logs.log_widget._render_line_strip(23, logs.log_widget.rich_style)
        marked = [seg.text for seg in strip if seg.style and seg.style.reverse]
        assert marked == ["needle"]
        await pilot.press("slash")
        assert search.has_focus
        await pilot.press("escape")
        assert not search.has_focus
        await pilot.press("1", "j", "j", "5")  # bindings again, none of it lands in the box
        assert search.value == "NEEDLE"
        assert app.query_one("#tabs").active == "tab-artifacts"
        assert app.selected_step == "end"


@async_test
async def test_notification_keeps_markup_like_text_and_names_no_phantom_run(tui_project, clock):
    toml = tui_project / "workbench.toml"
    toml.write_text(toml.read_text() + '\n[flows.HelloFlow.steps.count]\nbackend = "batch"\n')
    app = make_app(tui_project, clock)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.runtime is None and "S3 datastore" in toasts(app), timeout=30)
        text = toasts(app)
        assert "[datastore] root" in text and "[datastore] remote" in text
        assert "did not start" in text
        assert not any(ch.isdigit() for ch in text.split("did not start")[0])  # no run id that exists nowhere
        assert app.query_one("#runs-table").row_count == 0


@async_test
async def test_enter_on_a_run_loads_its_logs_and_shows_them(tui_project, clock):
    seed_run(tui_project)
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        await pilot.press("3")
        app.query_one("#runs-table").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query_one("#tabs").active == "tab-logs")
        assert "hello, world" in "\n".join(app.query_one("#logs", LogPane).log_widget.lines)


@async_test
async def test_runs_table_fits_80_columns(tui_project, clock):
    seed_run(tui_project)
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        await pilot.press("3")
        await pilot.pause()
        table = app.query_one("#runs-table")
        row = [str(c) for c in table.get_row_at(0)]
        assert row == ["1000000000000001", "succeeded", "01-01 00:00", "✔✔✔"]
        widths = sum(col.get_render_width(table) for col in table.columns.values())
        assert widths <= table.size.width  # nothing clipped: start time and steps are on screen
    app = make_app(tui_project, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        await pilot.press("3")
        await pilot.pause()
        row = [str(c) for c in app.query_one("#runs-table").get_row_at(0)]
        assert row[2:] == ["01-01 00:00:00", "start✔ count✔ end✔"]


@async_test
async def test_value_sources_do_not_wrap_at_80_columns(tui_project, clock):
    toml = tui_project / "workbench.toml"
    toml.write_text(toml.read_text() + '\n[flows.HelloFlow.steps.count]\ncpu = 4\nmemory = "16G"\n')
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        app.select_step("count")
        await pilot.press("2")
        await pilot.pause()
        text = app.query_one("#settings-text")
        lines = str(text.render()).count("\n") + 1
        assert text.size.height == lines  # one screen line per setting, however long its source


@async_test
async def test_syntax_error_keeps_the_last_good_dag(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await ready(app, pilot)
        path = select_flow(app, "HelloFlow")
        hello = tui_project / "flows" / "hello.py"
        hello.write_text(hello.read_text().replace("def count(self):", "def count(self)"))
        await saved(app, pilot, clock, path)
        assert not app.graphs[path].steps
        assert set(app.query_one("#dag", DagView).picture.boxes) == {"start", "count", "end"}
        error = str(app.query_one("#flow-error").render())
        assert "syntax error" in error and "last version that parsed" in error


@async_test
async def test_resume_counts_cloned_and_rerun_tasks(tui_project, clock):
    # no datastore polling: what is on screen comes from the live run's events alone
    app = make_app(tui_project, clock, datastore_poll=None)
    async with app.run_test(size=(100, 40)) as pilot:
        await ready(app, pilot)
        select_flow(app, "FanoutFlow")
        table = app.query_one("#runs-table")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.runtime is None and table.row_count == 1, timeout=60)
        await pilot.press("R")  # everything succeeded: square's 8 tasks are all cloned
        await wait_for(pilot, lambda: app.runtime is None and table.row_count == 2, timeout=60)
        assert app.task_counts.get("square") == 8
        dag = "\n".join(app.query_one("#dag", DagView).picture.lines)
        assert "square ×8" in dag, dag


def test_cli_runs_are_newest_first(tui_project):
    seed_run(tui_project, run_id="1000000000000001")
    seed_run(tui_project, run_id="1000000000000002")
    env = {**os.environ}
    out = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "runs"],
        cwd=tui_project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.index("1000000000000002") < out.index("1000000000000001")
