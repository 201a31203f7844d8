"""The profile key: P re-runs the selected step on its past inputs under the profiler, and the Tasks tab
shows the hot path (naming the slow function) and where the HTML report is."""

from .conftest import async_test, make_app, ready, wait_for
from .test_app import select_flow
from .test_tasks import on_tasks

SLOW = """
from workbench import FlowSpec, step


def deliberately_slow_function(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


class SlowFlow(FlowSpec):
    @step
    def start(self):
        self.n = 1_500_000
        self.next(self.crunch)

    @step
    def crunch(self):
        self.total = deliberately_slow_function(self.n)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@async_test
async def test_p_profiles_the_step_and_tasks_shows_the_hot_path(tui_project, clock):
    (tui_project / "flows" / "slow.py").write_text(SLOW)
    app = make_app(tui_project, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        select_flow(app, "SlowFlow")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.runtime is None and app.statuses.get("end") == "succeeded", timeout=60)
        pane = await on_tasks(app, pilot, "crunch")
        assert pane.profile_lines == [] and not pane.query_one("#tasks-profile").display
        before = pane.loads
        await pilot.press("P")
        await wait_for(pilot, lambda: app.runtime is not None, timeout=10)
        assert app.runtime.only_step == "crunch" and app.runtime.settings["crunch"].profile
        await wait_for(pilot, lambda: app.runtime is None, timeout=60)
        await wait_for(pilot, lambda: pane.loads > before and pane.profile_lines, timeout=20)
        text = str(pane.query_one("#tasks-profile").render())
        assert pane.query_one("#tasks-profile").display
        assert "hottest: deliberately_slow_function" in text and "report: " in text and ".html" in text


@async_test
async def test_p_without_a_past_run_says_so(tui_project, clock):
    (tui_project / "flows" / "slow.py").write_text(SLOW)
    app = make_app(tui_project, clock)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await ready(app, pilot)
        select_flow(app, "SlowFlow")
        await pilot.press("P")
        await pilot.pause()
        assert app.runtime is None
        assert any("run the flow once first" in n.message for n in app._notifications)


GROW = """
from workbench import FlowSpec, step


class GrowFlow(FlowSpec):
    @step
    def start(self):
        import time
        hoard = []
        for _ in range(8):
            hoard.append(bytearray(16 << 20))
            time.sleep(0.25)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@async_test
async def test_tasks_and_inspector_show_the_usage_timeline(tui_project, clock):
    (tui_project / "flows" / "grow.py").write_text(GROW)
    app = make_app(tui_project, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        select_flow(app, "GrowFlow")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.runtime is None and app.statuses.get("end") == "succeeded", timeout=60)
        pane = await on_tasks(app, pilot, "start")
        text = str(pane.query_one("#tasks-usage").render())
        assert pane.query_one("#tasks-usage").display and "over time" in text and "memory " in text
        assert any(c in text for c in "▂▃▄▅▆▇█") and "peak" in text
        app.select_step("end")
        app.select_step("start")
        await pilot.pause()
        measured = str(app.query_one("#measured").render())
        assert "memory " in measured and "cpu " in measured and "samples" in measured
