"""Issue 13 on every backend: a step's declared environment (@pypi) is the one it imports from, locally, in
Docker, on Batch (moto, real containers) and on Kubernetes (emulator); an input pickled with the host's numpy is
read by a step whose image has another numpy (the step gets the host's version); and the environment is
prepared once, before the run, and reused by the next run."""

from __future__ import annotations

import importlib.util

import pytest

from .harness import word

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tabulate") is not None,
    reason="workbench's own interpreter has tabulate: the test could not tell",
)


@pytest.fixture(autouse=True, scope="module")
def _remove_environment_images(contract):
    """The environment images this module's Docker runs built (workbench-<project>:<digest>) are removed, so
    no later test finds them as a cache hit."""
    yield
    if contract.name == "docker":
        remove_project_images(contract.backend.project_name)


def remove_project_images(project_name: str) -> None:
    from tests.support.engine import docker_client_or_skip
    from workbench.image import default_tag

    client = docker_client_or_skip()
    repo = default_tag(project_name, "x").split(":", 1)[0]
    for image in client.images.list(name=repo):
        client.images.remove(image.id, force=True)


def test_pypi_step_imports_exactly_its_version(contract):
    outcome = contract.run("PypiFlow")
    assert outcome.status == "succeeded", (outcome.result.message, outcome.finished("work").reason)
    assert {e.backend for e in outcome.of("TaskStarted", "work")} == {contract.name}
    run = contract.stored("PypiFlow", outcome.run_id)
    assert run["work"].task.data.version == "0.9.0"
    assert "tabulate 0.9.0" in run["work"].task.stdout


def test_environment_reused_across_runs(contract, monkeypatch):
    """The second run resolves nothing: no uv is run before its tasks (the lock and install are cached)."""
    from workbench import environment_uv

    calls = []
    real = environment_uv.run_uv
    monkeypatch.setattr(environment_uv, "run_uv", lambda args, **kw: calls.append(args) or real(args, **kw))
    outcome = contract.run("PypiFlow")
    assert outcome.status == "succeeded", outcome.result.message
    assert calls == [], calls


def test_numpy_input_read_with_host_version(contract):
    numpy = pytest.importorskip("numpy")
    outcome = contract.run("NumpyInputFlow")
    work = outcome.finished("work")
    assert outcome.status == "succeeded", (outcome.result.message, work.reason)
    assert word(work.status) == "succeeded"
    run = contract.stored("NumpyInputFlow", outcome.run_id)
    assert run["start"].task.data.made_with == numpy.__version__
    assert run["work"].task.data.read_with.split(".")[:2] == numpy.__version__.split(".")[:2]
    assert run["work"].task.data.total == 66.0
