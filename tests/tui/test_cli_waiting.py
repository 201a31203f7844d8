"""Why is it pending, in the CLI as in the TUI's Tasks tab: the plain and the live renderers show a queued
remote task's TaskWaiting (the platform's words) as it changes, and stop when it runs or ends."""

import io

from rich.console import Console

from tests.support.moto_server import aws, moto_server  # noqa: F401 - fixtures
from tests.test_kubernetes_backend import _run, kube, kube_project  # noqa: F401 - fixtures
from workbench import events as ev
from workbench.cli.render import LiveRenderer, PlainRenderer


def render(events) -> tuple[str, str]:
    """The events as `workbench run` prints them to a pipe (plain) and to a terminal (live)."""
    plain_out = io.StringIO()
    plain = PlainRenderer(plain_out)
    live_out = io.StringIO()
    live = LiveRenderer(Console(file=live_out, width=200, force_terminal=False, color_system=None))
    for event in events:
        plain(event)
        live(event)
    live.close()
    return plain_out.getvalue(), live_out.getvalue()


def test_an_unschedulable_pod_shows_the_schedulers_words_in_the_cli(kube_project, kube, monkeypatch):  # noqa: F811
    """A real run against the Kubernetes API emulator: the GPU pod cannot be placed, and says why."""
    monkeypatch.setenv("WORKBENCH_K8S_PENDING_TIMEOUT", "2")
    events: list = []
    _, result = _run(kube_project(gpu=1), events)
    assert result.status == "failed"
    plain, live = render(events)
    waiting = [line for line in plain.splitlines() if "waiting on kubernetes" in line]
    assert (
        waiting and "[train/2] waiting on kubernetes: Pending: unschedulable: insufficient nvidia.com/gpu" in waiting[0]
    )
    assert "train/2 waiting on kubernetes: Pending: unschedulable: insufficient nvidia.com/gpu" in live


def test_a_wait_is_said_once_per_change_and_its_end_once():
    flow = "F/1/train/2"
    plain, live = render(
        [
            ev.RunStarted("F", "1", steps=("start", "train")),
            ev.TaskStarted(flow, "train", 0, "batch"),
            ev.TaskWaiting(flow, "train", "batch", "RUNNABLE: queued: waiting for a compute environment [cpu=4]"),
            ev.TaskWaiting(flow, "train", "batch", "STARTING: placed on an instance"),
            ev.TaskWaiting(flow, "train", "batch", ""),
            ev.TaskFinished(flow, "train", "succeeded", 0, 1.0),
            ev.RunFinished("F", "1", "succeeded", 2.0),
        ]
    )
    lines = [line.split(" ", 1)[1] for line in plain.splitlines()]
    assert lines[2:5] == [
        "[train/2] waiting on batch: RUNNABLE: queued: waiting for a compute environment [cpu=4]",
        "[train/2] waiting on batch: STARTING: placed on an instance",
        "[train/2] no longer waiting: running on batch",
    ]
    assert "waiting for a compute environment [cpu=4]" in live  # not taken for markup
