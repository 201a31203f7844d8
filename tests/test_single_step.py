"""`workbench run FLOW --step STEP`: one step of a past run again, with that run's inputs, on any
backend; the artifacts it produces are the ones the full run produced (same content hashes).
Batch and Kubernetes are covered in their own test modules' fixtures (moto server, API emulator)."""

import subprocess
import sys
import textwrap
import uuid

import pytest

from workbench.client import Flow, namespace
from workbench.config import load_config
from workbench.graph import load_graph
from workbench.runtime import Runtime

FLOW = """
from workbench import FlowSpec, Parameter, step

class Repeat(FlowSpec):
    base = Parameter("base", default=10, type=int)

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.value = [self.base + self.input] * 1000
        print("work on", self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = [i.value[0] for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def shas(run, step):
    return sorted(t.artifacts["value"]["sha"] for t in run[step].tasks() if "value" in t.artifacts)


def _full_then_step(project, **step_kw):
    (project / "flows" / "repeat.py").write_text(textwrap.dedent(FLOW))
    graph = load_graph(project / "flows" / "repeat.py")
    config = load_config()
    full = Runtime(graph, config, params={"base": 5}, backend="local").run()
    assert full.status == "succeeded"
    single = Runtime(graph, config, origin_run_id=full.run_id, rerun_steps={"work"}, only_step="work", **step_kw).run()
    assert single.status == "succeeded", single.message
    namespace(config.datastore_url)
    return Flow("Repeat")[full.run_id], Flow("Repeat")[single.run_id]


def test_single_step_local_same_artifacts(project):
    full, single = _full_then_step(project)
    assert shas(single, "work") == shas(full, "work") and len(shas(full, "work")) == 3
    assert "join" not in single and single.origin_run_id == full.id
    assert [t.data.value[0] for t in single["work"].tasks()] == [6, 7, 8]  # base=5 from the origin


def test_single_step_one_foreach_task_from_the_cli(project):
    (project / "flows" / "repeat.py").write_text(textwrap.dedent(FLOW))
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "workbench.cli", "run", "flows/repeat.py", *a],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=120,
    )
    assert run().returncode == 0
    p = run("--step", "work", "--task", "1")
    assert p.returncode == 0, p.stderr
    assert "work on 2" in p.stdout and "work on 1" not in p.stdout and "work on 3" not in p.stdout


@pytest.mark.docker
def test_single_step_docker_same_artifacts(project):
    from tests.support.engine import base_image, count_containers, docker_client_or_skip

    client = docker_client_or_skip()
    image = base_image()
    name = f"single-{uuid.uuid4().hex[:6]}"
    (project / "workbench.toml").write_text(f'[project]\nname = "{name}"\n[docker]\nimage = "{image}"\n')
    full, single = _full_then_step(project, backend="docker")
    assert shas(single, "work") == shas(full, "work")
    assert single["work"].task._doc["attempts"][-1]["backend"] == "docker"
    assert count_containers(client, {"workbench.project": name}) == 0


@pytest.mark.docker
def test_promote_refuses_more_than_the_docker_engine_has(project):
    from tests.support.engine import docker_client_or_skip

    client = docker_client_or_skip()
    ncpu = client.info()["NCPU"]
    (project / "flows" / "repeat.py").write_text(textwrap.dedent(FLOW))
    wb = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "workbench.cli", *a],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=60,
    )
    p = wb("promote", "work", "--to", "docker", "--cpu", str(ncpu * 4))
    assert p.returncode == 2
    assert f"docker cannot schedule cpu {ncpu * 4}: the largest fit is cpu {ncpu}" in p.stderr
    p = wb("promote", "work", "--to", "docker", "--gpu", "1")
    assert p.returncode == 2 and "gpu 1" in p.stderr and "gpu 0" in p.stderr
    ok = wb("promote", "work", "--to", "docker", "--cpu", "1", "--memory", "1G")
    assert ok.returncode == 0 and "Repeat.work now runs on docker cpu=1 memory=1G" in ok.stdout
