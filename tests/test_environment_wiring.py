"""Issue 13's wiring, through the CLI a user types: a numpy artifact made on the host read by a step moved
to Docker (`run FLOW --step fit --backend docker`, and after `promote fit --to docker`) whose base image has
another numpy; a package that does not exist stops `workbench run` in one line before any task; an input
whose versions cannot be installed for the image is refused in one line naming both versions.

The @pypi-on-every-backend and cache-reuse tests are in tests/contract/test_environments.py."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.config import load_config

NUMPY_FLOW = """
from workbench import FlowSpec, step


class NumpyFlow(FlowSpec):
    @step
    def start(self):
        import numpy
        self.features = numpy.arange(6.0).reshape(2, 3)
        self.next(self.fit)

    @step
    def fit(self):
        import numpy
        self.read_with = numpy.__version__
        self.total = float(self.features.sum())
        self.next(self.end)

    @step
    def end(self):
        pass
"""

MISSING_FLOW = """
from workbench import FlowSpec, pypi, step


class MissingFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @pypi(packages={"workbench-no-such-package-zz9": "1.0"})
    @step
    def end(self):
        pass
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    from tests.support.engine import base_image, docker_client_or_skip

    image = base_image(docker_client_or_skip())
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "numpy_flow.py").write_text(NUMPY_FLOW)
    (tmp_path / "flows" / "missing.py").write_text(MISSING_FLOW)
    name = f"envwire-{uuid.uuid4().hex[:8]}"
    (tmp_path / "workbench.toml").write_text(
        f'[project]\nname = "{name}"\n\n[docker]\nimage = "{image}"\nnetwork = "host"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    yield tmp_path
    from tests.contract.test_environments import remove_project_images

    remove_project_images(name)  # no later test may find this test's images as a cache hit


def _fit_read_with(project: Path) -> tuple[str, float, str]:
    """What the last run's fit task read its input with (its artifacts, loaded through the client API)."""
    from workbench import Flow

    run = Flow("NumpyFlow").latest_run
    task = run["fit"].task
    return task.data.read_with, task.data.total, run.id


def test_host_numpy_artifact_read_by_a_container_with_another_numpy(project, capsys):
    np = pytest.importorskip("numpy")
    from tests.support.engine import docker_client_or_skip
    from workbench.image import image_versions

    client = docker_client_or_skip()
    theirs = image_versions(client, "workbench-base:bookworm").get("numpy")
    if not theirs or theirs.split(".")[:2] == np.__version__.split(".")[:2]:
        pytest.skip(f"the base image's numpy ({theirs}) is the host's release: nothing to prove")
    assert main(["run", "flows/numpy_flow.py"]) == 0
    capsys.readouterr()
    from workbench import Flow

    start = Flow("NumpyFlow").latest_run["start"].task
    assert start.artifacts["features"]["requires"] == {"numpy": np.__version__}

    assert main(["run", "flows/numpy_flow.py", "--step", "fit", "--backend", "docker"]) == 0, capsys.readouterr()
    read_with, total, _ = _fit_read_with(project)
    assert read_with.split(".")[:2] == np.__version__.split(".")[:2] and total == 15.0

    assert main(["promote", "fit", "--to", "docker"]) == 0
    assert main(["run", "flows/numpy_flow.py", "--step", "fit"]) == 0, capsys.readouterr()
    read_with, total, run_id = _fit_read_with(project)
    assert read_with.split(".")[:2] == np.__version__.split(".")[:2] and total == 15.0
    record = json.loads(next((project / ".workbench").rglob(f"{run_id}/fit/*/task.json")).read_text())
    assert record["settings"]["backend"] == "docker"


def test_missing_package_stops_the_run_in_one_line_before_any_task(project, capsys):
    assert main(["run", "flows/missing.py"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "flows/missing.py:10:" in err and "workbench-no-such-package-zz9" in err and "Traceback" not in err
    assert not (project / ".workbench" / "MissingFlow").exists()  # no run was recorded: nothing started


def test_input_versions_that_cannot_be_installed_are_refused_in_one_line(project):
    """The guard's other branch on the real engine and index: numpy 0.0.1 does not exist, so the step is
    refused naming the package, both versions and how to declare it."""
    from workbench.backends.base import TaskSpec
    from workbench.backends.docker_env import EnvironmentImages
    from workbench.environment_guard import EnvironmentMismatch
    from workbench.settings import StepSettings

    images = EnvironmentImages("host", load_config(project).model.project.name, say=lambda line: None)
    spec = TaskSpec(
        flow="F",
        run_id="1",
        step="fit",
        task_id="2",
        attempt=0,
        settings=StepSettings(),
        datastore_url=str(project / ".workbench"),
        project_root=str(project),
        flow_file="flows/x.py",
        class_name="F",
        input_pins=("numpy==0.0.1",),
    )
    with pytest.raises(EnvironmentMismatch) as info:
        images.image_for_task("workbench-base:bookworm", spec)
    line = str(info.value)
    assert "\n" not in line and line.startswith("step fit: its inputs were pickled with numpy 0.0.1")
    assert "image workbench-base:bookworm has numpy 1." in line and "@pypi(packages=" in line
