"""`workbench run FLOW --step S --profile`: the step re-runs on its past inputs under pyinstrument; the
profile's hot path names the slow function, and the HTML report is kept with the run."""

import os
import subprocess
import sys
import textwrap

import pytest

from workbench.config import load_config
from workbench.datastore import FlowDatastore
from workbench.profiling import hottest_function, read_profile

FLOW = """
from workbench import FlowSpec, step


def deliberately_slow_function(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def quick_helper():
    return sum(range(1000))


class Slow(FlowSpec):
    @step
    def start(self):
        self.n = 1_500_000
        self.next(self.crunch)

    @step
    def crunch(self):
        quick_helper()
        self.total = deliberately_slow_function(self.n)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _cli(project, *args):
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", "run", "flows/slow.py", *args],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=240,
    )


def _profile_of_latest_run(project):
    ds = FlowDatastore(load_config().datastore_url, "Slow")
    run_id = ds.list_runs()[-1]
    (task_id,) = ds.list_tasks(run_id, "crunch")
    return ds, run_id, task_id, read_profile(ds, run_id, "crunch", task_id)


def _check_profile(project, extra_args=()):
    (project / "flows" / "slow.py").write_text(textwrap.dedent(FLOW))
    assert _cli(project, *extra_args).returncode == 0
    p = _cli(project, "--step", "crunch", "--profile", *extra_args)
    assert p.returncode == 0, p.stderr
    assert "hottest: deliberately_slow_function" in p.stdout, p.stdout
    ds, run_id, task_id, entry = _profile_of_latest_run(project)
    assert entry is not None
    assert hottest_function(entry["hot_path"])["function"] == "deliberately_slow_function"
    names = [f["function"] for f in entry["hot_path"]]
    assert "crunch" in names and names.index("crunch") < names.index("deliberately_slow_function")
    html = ds.storage.local_path(entry["html"])
    assert html and os.path.getsize(html) > 1000 and f"report: {html}" in p.stdout
    assert "deliberately_slow_function" in open(html, encoding="utf-8").read()
    return ds, run_id


def test_profile_names_the_slow_function_locally(project):
    ds, run_id = _check_profile(project)
    # the profiled run is a single-step run of its own: the origin run's task has no profile
    origin = ds.list_runs()[0]
    assert read_profile(ds, origin, "crunch", ds.list_tasks(origin, "crunch")[0]) is None


def test_profile_only_with_step(project):
    (project / "flows" / "slow.py").write_text(textwrap.dedent(FLOW))
    p = _cli(project, "--profile")
    assert p.returncode == 2 and "--profile go with --step" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.docker
def test_profile_names_the_slow_function_in_docker(project):
    from tests.support.engine import base_image, docker_client_or_skip

    docker_client_or_skip()
    (project / "workbench.toml").write_text(f'[project]\nname = "prof"\n[docker]\nimage = "{base_image()}"\n')
    _check_profile(project, ("--backend", "docker"))
