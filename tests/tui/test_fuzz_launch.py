"""`workbench tui` starts whatever flow files are on disk at launch and shows each broken one's error."""

from workbench.tui.widgets.dag_view import DagView

from ..test_fuzz_flows import chain, cyclic_bases, deep_expression
from .conftest import async_test, make_app, ready

ODD_DECORATOR = b"""from workbench import FlowSpec, step, resources, environment

class OddFlow(FlowSpec):
    @resources(memory=1e999)
    @environment(vars=1)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@async_test
async def test_the_tui_starts_with_broken_flow_files_present(tui_project):
    flows = tui_project / "flows"
    (flows / "cyclic.py").write_bytes(cyclic_bases("pair"))
    (flows / "deep.py").write_bytes(deep_expression("sum", 5000))
    (flows / "long.py").write_bytes(chain(1000))
    (flows / "latin1.py").write_bytes(b"from workbench import FlowSpec\n# caf\xe9\nclass L(FlowSpec):\n    pass\n")
    (flows / "odd.py").write_bytes(ODD_DECORATOR)
    app = make_app(tui_project)
    async with app.run_test(size=(100, 40)) as pilot:
        await ready(app, pilot)
        cyclic = str(flows / "cyclic.py")
        assert "class A derives from itself (A -> B -> A)" in app.graphs[cyclic].errors[0].message
        assert not app.graphs[str(flows / "deep.py")].ok and not app.graphs[str(flows / "latin1.py")].ok
        assert app.graphs[str(flows / "long.py")].ok and len(app.graphs[str(flows / "long.py")].steps) == 1000
        app.select_flow(cyclic)
        await pilot.pause(0.1)
        error = str(app.query_one("#flow-error").render())
        assert "flows/cyclic.py:3" in error and "derives from itself" in error
        app.select_flow(str(flows / "odd.py"))
        await pilot.pause(0.1)
        assert "memory = inf is not a finite number" in app.settings_errors["start"]
        app.select_flow(str(flows / "long.py"))
        await pilot.pause(0.5)
        assert len(app.query_one("#dag", DagView).picture.boxes) == 1000
        hello = next(p for p, g in app.graphs.items() if g.name == "HelloFlow")
        app.select_flow(hello)
        await pilot.pause(0.1)
        assert set(app.query_one("#dag", DagView).picture.boxes) == {"start", "count", "end"}
