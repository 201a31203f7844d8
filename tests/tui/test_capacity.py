"""Sliders clamped to what the chosen backend can place, and the live price of the request."""

import pytest

from workbench.tui.capacity import read_capacity
from workbench.tui.widgets.slider import Slider

from .conftest import async_test, fixed_capacity, make_app, ready, wait_for
from .test_app import select_flow


async def on_inspector(app, pilot, flow, step):
    await ready(app, pilot)
    select_flow(app, flow)
    app.select_step(step)
    await pilot.press("2")
    await wait_for(pilot, lambda: str(app.query_one("#capacity").render()).strip() != "")


@async_test
async def test_sliders_stop_at_what_the_backend_can_place(tui_project, clock):
    app = make_app(tui_project, clock, capacity_reader=fixed_capacity)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_inspector(app, pilot, "HelloFlow", "count")
        cpu, memory, gpu = (app.query_one(f"#{n}", Slider) for n in ("cpu", "memory", "gpu"))
        cpu.focus()
        await pilot.press("end")
        assert cpu.value == 2
        memory.focus()
        await pilot.press("end")
        assert memory.value == 8192
        gpu.focus()
        await pilot.press("end")
        assert gpu.value == 0
        assert "at most cpu 2, memory 8G" in str(app.query_one("#capacity").render())


@async_test
async def test_a_step_asking_for_more_keeps_its_value_and_is_told(tui_project, clock):
    # the example's train_big no longer asks for a GPU in code (the README promotes it); ask in workbench.toml
    toml = tui_project / "workbench.toml"
    toml.write_text(toml.read_text() + "\n[flows.TrainFlow.steps.train_big]\ngpu = 1\n")
    app = make_app(tui_project, clock, capacity_reader=fixed_capacity)
    async with app.run_test(size=(120, 40)) as pilot:
        await on_inspector(app, pilot, "TrainFlow", "train_big")  # cpu=2, memory=8G (@resources), gpu=1 (toml)
        gpu = app.query_one("#gpu", Slider)
        assert gpu.values == [0, 1] and gpu.value == 1  # shown as it is, not silently lowered
        assert "asks for more: gpu 1" in str(app.query_one("#capacity").render())
        assert app.query_one("#inspector").changes() == {}


@async_test
async def test_live_price_follows_the_sliders_on_a_cloud_backend(tui_project, clock):
    toml = tui_project / "workbench.toml"
    toml.write_text(toml.read_text() + '\n[flows.HelloFlow.steps.count]\nbackend = "batch"\ncpu = 2\nmemory = "4G"\n')
    app = make_app(tui_project, clock)  # capacity unknown: the full ranges, with a note
    async with app.run_test(size=(120, 40)) as pilot:
        await on_inspector(app, pilot, "HelloFlow", "count")
        price = app.query_one("#price")
        assert "$0.042/hour (t3.medium" in str(price.render())
        assert "unknown" in str(app.query_one("#capacity").render())
        memory = app.query_one("#memory", Slider)
        memory.focus()
        await pilot.press("right", "right")  # 4G -> 16G
        text = str(price.render())
        assert "r5.large" in text and "now $0.042/hour (+0.084)" in text
        app.query_one("#backend").value = "local"
        await pilot.pause()
        assert "price: none" in str(price.render())


@async_test
async def test_docker_sliders_use_the_engines_capacity(tui_project, clock):
    from tests.support.engine import docker_client_or_skip

    info = docker_client_or_skip().info()
    app = make_app(tui_project, clock, capacity_reader=read_capacity)
    async with app.run_test(size=(120, 40)) as pilot:
        await on_inspector(app, pilot, "HelloFlow", "count")
        app.query_one("#backend").value = "docker"
        await wait_for(pilot, lambda: "Docker engine" in str(app.query_one("#capacity").render()), timeout=20)
        cpu = app.query_one("#cpu", Slider)
        assert max(cpu.values) == pytest.approx(float(info["NCPU"]))
        assert max(app.query_one("#memory", Slider).values) <= info["MemTotal"] // (1024 * 1024)


def test_local_capacity_is_this_machine():
    import os

    placement = read_capacity("local", None)
    assert placement.cpu == os.cpu_count() and placement.memory > 0 and placement.gpu == 0
