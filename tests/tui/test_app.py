"""Behaviour of `workbench tui` through Textual's Pilot: files on disk drive the DAG, the sliders write
workbench.toml through the promotion code, a run shows its logs and artifacts."""

import time

from workbench.tui.runs import RunsPane
from workbench.tui.widgets.dag_view import DagView
from workbench.tui.widgets.logs import LogPane
from workbench.tui.widgets.slider import Slider

from .conftest import async_test, make_app, ready, seed_run, wait_for

NEW_STEP_HELLO = '''"""Hello with an extra step."""

from workbench import FlowSpec, Parameter, step


class HelloFlow(FlowSpec):
    name = Parameter("name", default="world")

    @step
    def start(self):
        self.greeting = f"hello, {self.name}"
        print(self.greeting)
        self.next(self.count)

    @step
    def count(self):
        self.letters = sum(c.isalpha() for c in self.greeting)
        print(f"{self.letters} letters")
        self.next(self.shout)

    @step
    def shout(self):
        self.loud = self.greeting.upper()
        self.next(self.end)

    @step
    def end(self):
        print("done")
'''


def select_flow(app, name):
    path = next(p for p, g in app.graphs.items() if g.name == name)
    app.select_flow(path)
    return path


async def saved(app, pilot, clock, path):
    """What the watchdog handler does on a save, then let the debounce period pass on the fake clock."""
    from types import SimpleNamespace

    before = app.reload_count
    app.handler.dispatch(SimpleNamespace(event_type="modified", src_path=str(path), dest_path="", is_directory=False))
    await pilot.pause(0.1)
    assert app.reload_count == before, "reloaded before the debounce period passed"
    clock.advance(1.0)
    await wait_for(pilot, lambda: app.reload_count > before, timeout=5)


@async_test
async def test_new_step_on_disk_updates_the_dag(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await ready(app, pilot)
        path = select_flow(app, "HelloFlow")
        dag = app.query_one("#dag", DagView)
        assert set(dag.picture.boxes) == {"start", "count", "end"}
        (tui_project / "flows" / "hello.py").write_text(NEW_STEP_HELLO)
        await saved(app, pilot, clock, path)
        assert set(dag.picture.boxes) == {"start", "count", "shout", "end"}
        assert dag.picture.boxes["shout"][1] > dag.picture.boxes["count"][1]


@async_test
async def test_broken_file_shows_error_line_and_fixing_clears_it(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await ready(app, pilot)
        path = select_flow(app, "HelloFlow")
        good = (tui_project / "flows" / "hello.py").read_text()
        lines = good.splitlines()
        lines[16] = "    def count(self)"  # line 17: a missing colon
        (tui_project / "flows" / "hello.py").write_text("\n".join(lines) + "\n")
        await saved(app, pilot, clock, path)
        error = str(app.query_one("#flow-error").render())
        assert "flows/hello.py:17" in error and "syntax error" in error
        assert app.query_one("#flow-error").display
        assert not app.graphs[path].ok
        (tui_project / "flows" / "hello.py").write_text(good)
        await saved(app, pilot, clock, path)
        assert str(app.query_one("#flow-error").render()).strip() == ""
        assert set(app.query_one("#dag", DagView).picture.boxes) == {"start", "count", "end"}


@async_test
async def test_deleted_renamed_and_bad_config_never_crash(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        hello = tui_project / "flows" / "hello.py"
        select_flow(app, "HelloFlow")
        renamed = tui_project / "flows" / "greet.py"
        hello.rename(renamed)
        await saved(app, pilot, clock, hello)
        assert str(renamed) in app.graphs and str(hello) not in app.graphs
        assert app.current == str(renamed)  # the selection follows a rename
        renamed.unlink()
        await saved(app, pilot, clock, renamed)
        assert all(g.name != "HelloFlow" for g in app.graphs.values())
        assert app.current in app.graphs
        (tui_project / "workbench.toml").write_text("[project\nname = 1\n")
        await saved(app, pilot, clock, tui_project / "workbench.toml")
        assert app.config_error and "workbench.toml" in app.config_error
        for path in list(app.graphs):
            (tui_project / "flows" / path.split("/")[-1]).unlink()
        await saved(app, pilot, clock, tui_project / "flows" / "x.py")
        assert app.graphs == {} and app.current is None


@async_test
async def test_memory_slider_and_promote_write_workbench_toml(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        await pilot.press("j")  # start -> count
        assert app.selected_step == "count"
        await pilot.press("2")
        slider = app.query_one("#memory", Slider)
        assert slider.value == 4096
        slider.focus()
        await pilot.press("right", "right")  # 4G -> 8G -> 16G: powers of two
        assert slider.value == 16384
        notes = str(app.query_one("#plan-notes").render())
        assert "memory=16G" in notes
        await pilot.press("p")
        from workbench.tui.screens.promote import PromoteScreen

        await wait_for(pilot, lambda: isinstance(app.screen, PromoteScreen))
        diff = str(app.screen.query_one("#diff-text").render())
        assert '+memory = "16G"' in diff
        await pilot.press("y")
        await wait_for(pilot, lambda: not isinstance(app.screen, PromoteScreen))
        text = (tui_project / "workbench.toml").read_text()
        assert "[flows.HelloFlow.steps.count]" in text
        assert 'memory = "16G"' in text and 'backend = "local"' in text
        assert "# Per-step overrides" in text  # comments kept
        await wait_for(pilot, lambda: app.settings["count"].memory == 16384)
        assert app.settings["count"].sources["memory"] != "default"


@async_test
async def test_slider_snaps_and_mouse_click(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        await pilot.press("2")
        cpu = app.query_one("#cpu", Slider)
        cpu.value = 5  # snaps to the nearest notch
        assert cpu.value in (4, 6)
        cpu.focus()
        await pilot.press("end")
        assert cpu.value == 64
        await pilot.press("home")
        assert cpu.value == 0.5
        gpu = app.query_one("#gpu", Slider)
        await pilot.click(gpu, offset=(gpu.size.width - 1, 0))
        assert gpu.value == 8


@async_test
async def test_running_a_flow_shows_logs_and_artifacts(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.runtime is None and app.statuses.get("end") == "succeeded", timeout=30)
        logs = app.query_one("#logs", LogPane)
        text = "\n".join(logs.log_widget.lines)
        assert "hello, world" in text and "10 letters" in text
        assert app.statuses == {"start": "succeeded", "count": "succeeded", "end": "succeeded"}
        assert "✔ end" in "\n".join(app.query_one("#dag", DagView).picture.lines)
        await pilot.press("5")
        table = app.query_one("#artifacts-table")
        names = {str(table.get_row_at(i)[1]).split(" ")[0] for i in range(table.row_count)}
        assert "greeting" in names
        preview = str(app.query_one("#preview").render())
        assert "hello, world" in preview
        runs = app.query_one("#runs", RunsPane).query_one("#runs-table")
        assert runs.row_count == 1
        # run one step again with that run's inputs, then resume
        await pilot.press("j")
        assert app.selected_step == "count"
        await pilot.press("o")
        await wait_for(pilot, lambda: app.runtime is None and runs.row_count == 2, timeout=30)
        assert "count only" in str(runs.get_row_at(0)[1])
        await pilot.press("R")
        await wait_for(pilot, lambda: app.runtime is None and runs.row_count == 3, timeout=30)
        assert "resume" in str(runs.get_row_at(0)[1])


@async_test
async def test_cancel_a_run(tui_project, clock):
    (tui_project / "flows" / "slow.py").write_text("""
from workbench import FlowSpec, step
class SlowFlow(FlowSpec):
    @step
    def start(self):
        import time
        print("sleeping", flush=True)
        time.sleep(30)
        self.next(self.end)
    @step
    def end(self):
        pass
""")
    app = make_app(tui_project, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        select_flow(app, "SlowFlow")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.statuses.get("start") == "running", timeout=15)
        select_flow(app, "HelloFlow")  # another flow's DAG does not take the live run's statuses
        assert app.statuses.get("start") != "running"
        select_flow(app, "SlowFlow")
        assert app.statuses.get("start") == "running"
        await pilot.press("c")
        await wait_for(pilot, lambda: app.runtime is None, timeout=20)
        runs = app.query_one("#runs-table")
        assert "cancelled" in str(runs.get_row_at(0)[1])


@async_test
async def test_log_pane_handles_100k_lines_and_search(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        logs = app.query_one("#logs", LogPane)
        started = time.monotonic()
        for chunk in range(10):
            logs.add([(f"F/1/train/{chunk % 2 + 1}", f"line {chunk * 10000 + i}") for i in range(10000)])
            await pilot.pause(0)
        await pilot.press("4")
        await pilot.pause()
        assert time.monotonic() - started < 20
        assert len(logs.log_widget.lines) == 100_000
        assert logs.search("line 5000") is not None and not logs.follow
        await pilot.press("f")
        assert logs.follow
        logs.query_one("#log-task").value = "F/1/train/2"
        await wait_for(pilot, lambda: len(logs.log_widget.lines) == 50_000)


@async_test
async def test_every_binding_is_in_the_command_palette(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for binding in app.BINDINGS:
            if binding.action != "quit":
                key = "/" if binding.key == "slash" else binding.key
                assert any(f"({key})" in t for t in titles), binding


@async_test
async def test_seeded_run_feeds_statuses_and_measured_usage(tui_project, clock):
    seed_run(tui_project)
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        assert app.statuses == {"start": "succeeded", "count": "succeeded", "end": "succeeded"}
        await pilot.press("2")
        assert "peak memory 42 MiB" in str(app.query_one("#measured").render())
        await pilot.press("3")
        table = app.query_one("#runs-table")
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.query_one("#logs", LogPane).lines) >= 3)


@async_test
async def test_clicking_a_step_in_the_dag_selects_it(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await ready(app, pilot)
        select_flow(app, "TrainFlow")
        await pilot.pause()
        dag = app.query_one("#dag", DagView)
        x, y, w, h = dag.picture.boxes["train_big"]
        await pilot.click(dag, offset=(x + 1 + 2, y + 1))  # +1: the view's left padding
        assert app.selected_step == "train_big"
        await pilot.press("2")
        assert "@resources" in str(app.query_one("#settings-text").render())


@async_test
async def test_long_artifact_preview_collapses_and_expands(tui_project, clock):
    (tui_project / "flows" / "big.py").write_text("""
from workbench import FlowSpec, step
class BigFlow(FlowSpec):
    @step
    def start(self):
        self.table = {f"key{i}": list(range(i, i + 30)) for i in range(60)}
        self.next(self.end)
    @step
    def end(self):
        pass
""")
    app = make_app(tui_project, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        select_flow(app, "BigFlow")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.runtime is None and app.statuses.get("end") == "succeeded", timeout=30)
        await pilot.press("5")
        table = app.query_one("#artifacts-table")
        table.focus()
        await pilot.pause()
        text = str(app.query_one("#preview").render())
        assert "e expands" in text and len(text.splitlines()) <= 15
        await pilot.press("e")
        assert len(str(app.query_one("#preview").render()).splitlines()) > 40


@async_test
async def test_foreach_run_shows_task_count_in_the_dag(tui_project, clock):
    app = make_app(tui_project, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        select_flow(app, "FanoutFlow")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.runtime is None and app.statuses.get("end") == "succeeded", timeout=60)
        assert app.statuses["square"] == "succeeded"
        assert "✔ square ×8" in "\n".join(app.query_one("#dag", DagView).picture.lines)
        app.refresh_flow()  # from the datastore, as after a restart
        assert "✔ square ×8" in "\n".join(app.query_one("#dag", DagView).picture.lines)


@async_test
async def test_inspector_shows_price_of_a_cloud_step(tui_project, clock):
    toml = tui_project / "workbench.toml"
    toml.write_text(toml.read_text() + '\n[flows.HelloFlow.steps.count]\nbackend = "batch"\ncpu = 4\nmemory = "16G"\n')
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        select_flow(app, "HelloFlow")
        app.select_step("count")
        await pilot.press("2")
        assert "workbench.toml" in str(app.query_one("#settings-text").render())  # where cpu came from
        assert "price now:" in str(app.query_one("#plan-notes").render())
        assert "$" in str(app.query_one("#plan-notes").render())
