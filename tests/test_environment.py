"""Step environments: @pypi/@conda parsed from the flow file, resolved and installed with uv, cached by
content, built into images offline; and the version-mismatch guard over pickles.

Resolution uses the package index pip is configured with on this machine (PyPI or its mirror).
Every test gets its own cache directory (WORKBENCH_CACHE_DIR), so "cold" really is cold.
"""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.config import load_config
from workbench.environment_guard import EnvironmentMismatch, check_inputs, pickle_modules
from workbench.environment_plan import plan_environments
from workbench.environment_spec import (
    EnvironmentSpec,
    PackageSet,
    conda_to_pypi,
    merge,
    project_requirements,
    step_packages,
)
from workbench.environment_uv import Target, index_arguments, uv_binary, uv_failure_line, wheel_rank
from workbench.errors import FlowError
from workbench.graph import load_graph
from workbench.settings import all_settings

REPO = Path(__file__).resolve().parents[1]

TAB_FLOW = """
from workbench import FlowSpec, pypi, pypi_base, step


@pypi_base(packages={"tabulate": "0.8.10"})
class TabFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.show)

    @pypi(packages={"tabulate": "0.9.0"})
    @step
    def show(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""

MISSING_FLOW = """
from workbench import FlowSpec, pypi, step


class MissingFlow(FlowSpec):
    @pypi(packages={"workbench-no-such-package-zz9": "1.0"})
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project in tmp_path with its own environment cache."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "tab.py").write_text(TAB_FLOW)
    (tmp_path / "flows" / "missing.py").write_text(MISSING_FLOW)
    (tmp_path / "workbench.toml").write_text(f'[project]\nname = "envtest-{uuid.uuid4().hex[:8]}"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    return tmp_path


def _uv_logger(tmp_path: Path) -> tuple[Path, Path]:
    """A uv wrapper that records every invocation, then runs the real uv."""
    log = tmp_path / "uv-calls.log"
    wrapper = tmp_path / "uv-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {uv_binary()} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper, log


def _env_python(project: Path, step: str) -> Path:
    config = load_config(project)
    graph = load_graph(project / "flows" / "tab.py")
    plan = plan_environments(graph, config, all_settings(graph, config))
    env = next(p.environment for p in plan if p.step == step)
    return env.python


# ------------------------------------------------------------------------------------ resolve + cache


def test_pypi_step_imports_exactly_that_version(project, capsys):
    assert main(["env", "build", "flows/tab.py"]) == 0
    python = _env_python(project, "show")
    out = subprocess.run(
        [str(python), "-c", "import tabulate, sys; print(tabulate.__version__, sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == "0.9.0"  # the step's @pypi wins over the flow's @pypi_base
    assert out[1].startswith(str(project / "cache" / "envs"))
    base = _env_python(project, "start")  # start and end share the @pypi_base environment
    assert (
        subprocess.run(
            [str(base), "-c", "import tabulate; print(tabulate.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        == "0.8.10"
    )
    assert main(["env", "show", "flows/tab.py", "show"]) == 0
    shown = capsys.readouterr().out
    assert "resolved: 1 package(s): tabulate 0.9.0" in shown and "wheelhouse" in shown
    assert "\x1b" not in shown


def test_missing_package_is_one_line_before_anything_runs(project, capsys):
    assert main(["env", "build", "flows/missing.py"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "flows/missing.py:6:" in err and "workbench-no-such-package-zz9" in err
    assert "not found" in err and "Traceback" not in err
    assert not list((project / "cache" / "envs").glob("*/venv"))  # nothing was installed


def test_cache_reused_across_processes_without_running_uv_again(project):
    wrapper, log = _uv_logger(project)
    env = {**os.environ, "WORKBENCH_UV": str(wrapper), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "workbench.cli", "env", "build", "flows/tab.py"]
    first = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    calls = log.read_text().splitlines()
    assert any(c.startswith("pip compile") for c in calls) and any(c.startswith("pip sync") for c in calls)
    second = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert log.read_text().splitlines() == calls  # no second resolve, no second install
    assert "resolving" not in second.stdout


def test_same_spec_same_key_and_python_or_platform_change_it():
    spec = EnvironmentSpec(("tabulate==0.9.0",))
    assert spec.key("3.11", "x86_64-manylinux_2_36") == EnvironmentSpec(("tabulate==0.9.0",)).key(
        "3.11", "x86_64-manylinux_2_36"
    )
    keys = {
        spec.key("3.11", "x86_64-manylinux_2_36"),
        spec.key("3.12", "x86_64-manylinux_2_36"),
        spec.key("3.11", "aarch64-manylinux_2_36"),
        EnvironmentSpec(("tabulate==0.8.10",)).key("3.11", "x86_64-manylinux_2_36"),
    }
    assert len(keys) == 4


# --------------------------------------------------------------------------------- decorators parsed


def _graph(tmp_path: Path, body: str, base: str = ""):
    path = tmp_path / "f.py"
    path.write_text(
        textwrap.dedent(f"""
        from workbench import FlowSpec, step, pypi, conda, pypi_base, conda_base
        {base}
        class F(FlowSpec):
            {body}
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """)
    )
    return load_graph(path)


def test_pypi_forms_and_settings(tmp_path):
    g = _graph(tmp_path, "", '@pypi_base(packages={"pandas": ">=2,<3", "Rich": "", "numpy": "2.1.0"}, python="3.11")')
    spec = step_packages(g, "start")
    assert spec.requirements == ("numpy==2.1.0", "pandas>=2,<3", "Rich")
    assert spec.python == "3.11"
    config = load_config(tmp_path)
    s = all_settings(g, config)["end"]
    assert s.packages == list(spec.requirements) and s.python == "3.11"
    assert s.sources["packages"].startswith("@pypi_base (line")
    assert "packages=3 python=3.11" in s.summary()


def test_conda_maps_onto_pypi_or_refuses_in_one_line(tmp_path):
    assert conda_to_pypi("pytorch", "2.1", "w") == ("torch", "2.1")
    assert conda_to_pypi("conda-forge::numpy", "1.26.4=py311_0", "w") == ("numpy", "1.26.4")
    g = _graph(tmp_path, "", '@conda_base(libraries={"py-xgboost": "2.0.3", "scikit-learn": ">=1.3"})')
    assert step_packages(g, "end").requirements == ("scikit-learn>=1.3", "xgboost==2.0.3")
    g = _graph(tmp_path, "", '@conda_base(packages={"cudatoolkit": "11.8"})')
    with pytest.raises(FlowError) as info:
        step_packages(g, "start")
    assert "cudatoolkit" in str(info.value) and "conda-only" in str(info.value)
    assert str(info.value).startswith(f"{tmp_path / 'f.py'}:3:") and "\n" not in str(info.value)


def test_bad_decorator_values_name_the_line(tmp_path):
    for base, words in (
        ('@pypi_base(packages={"a b": "1"})', "is not a package name"),
        ("@pypi_base(packages=PKGS)", "must be a literal"),
        ('@pypi_base(python="three")', "is not a version"),
        ('@pypi_base(packages={"x": "1; rm"})', "not a version specifier"),
        ('@pypi_base(channels=["x"])', "has no argument"),
    ):
        with pytest.raises(FlowError) as info:
            step_packages(_graph(tmp_path, "", base), "start")
        assert words in str(info.value) and ":3:" in str(info.value), base


def test_disabled_drops_the_base(tmp_path):
    g = _graph(tmp_path, "", '@pypi_base(packages={"tabulate": "0.9.0"})')
    assert step_packages(g, "start").requirements == ("tabulate==0.9.0",)
    path = tmp_path / "f.py"
    path.write_text(
        path.read_text().replace("    @step\n    def end", "    @pypi(disabled=True)\n    @step\n    def end")
    )
    assert not step_packages(load_graph(path), "end").declared


def test_project_requirements_and_workbench_itself(tmp_path):
    (tmp_path / "requirements.txt").write_text("tabulate==0.9.0\nworkbench\n")
    assert project_requirements(tmp_path) == (["tabulate==0.9.0"], "requirements.txt")
    # workbench's own checkout: its pyproject lists the front end (textual, kubernetes...), not a project's
    assert project_requirements(REPO) == ([], "no requirements")
    project = PackageSet({"tabulate": "tabulate==0.9.0"}, None, "requirements.txt")
    assert merge(project, PackageSet({"tabulate": "tabulate==0.8.10"}, None, "@pypi")).requirements == (
        "tabulate==0.8.10",
    )


# ------------------------------------------------------------------------------------- uv plumbing


def test_uv_uses_the_index_pip_is_configured_with(monkeypatch, tmp_path):
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\nextra-index-url = file:///x/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    for var in (
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "UV_INDEX_URL",
        "UV_DEFAULT_INDEX",
        "UV_INDEX",
        "UV_EXTRA_INDEX_URL",
        "UV_FIND_LINKS",
    ):
        monkeypatch.delenv(var, raising=False)
    args, _ = index_arguments()
    assert args[args.index("--default-index") + 1] == "https://mirror.example/simple"
    assert "file:///x/simple" in args and "unsafe-best-match" in args
    monkeypatch.setenv("UV_INDEX_URL", "https://other/simple")  # uv's own settings win
    assert "--default-index" not in index_arguments()[0]


def test_uv_failure_is_one_sentence():
    stderr = (
        "  × No solution found when resolving dependencies:\n"
        "  ╰─▶ Because zz9 was not found in the package registry and you require zz9, we can\n"
        "      conclude that your requirements are unsatisfiable.\n"
    )
    assert uv_failure_line(stderr) == "zz9 was not found in the package index"


def test_wheel_choice_for_a_target():
    t = Target("3.11", "x86_64-manylinux_2_36")
    assert wheel_rank("a-1-py3-none-any.whl", t) is not None
    assert (
        wheel_rank("n-2-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl", t)
        > wheel_rank("n-2-cp311-cp311-manylinux2014_x86_64.whl", t)
        > wheel_rank("a-1-py3-none-any.whl", t)
    )
    assert wheel_rank("n-2-cp312-cp312-manylinux_2_28_x86_64.whl", t) is None
    assert wheel_rank("n-2-cp311-cp311-manylinux_2_39_x86_64.whl", t) is None  # newer glibc than the target
    assert wheel_rank("n-2-cp311-cp311-manylinux_2_28_aarch64.whl", t) is None
    assert wheel_rank("n-2-cp39-abi3-manylinux_2_17_x86_64.whl", t) is not None


# ----------------------------------------------------------------------------- version-mismatch guard


class _Local:  # a class from a module that is not a distribution: never a requirement
    pass


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_modules_without_unpickling(protocol):
    np = pytest.importorskip("numpy")
    import collections

    data = pickle.dumps(
        {"a": np.arange(3), "b": collections.OrderedDict(x=1), "c": np.float64(2), "d": [np.int32(1)] * 3},
        protocol=protocol,
    )
    assert pickle_modules(data) == {"numpy"}
    assert pickle_modules(pickle.dumps([1, "numpy", {"x": 2.0}], protocol=protocol)) == set()
    evil = b"cos\nsystem\n(S'echo hacked'\ntR."  # would run a command if unpickled; here only read
    assert pickle_modules(evil) == set()  # os is stdlib: no package needed (and nothing ran)
    assert pickle_modules(b"\x80\x04garbage") == set()


def test_artifact_requirements_record_versions():
    np = pytest.importorskip("numpy")
    from workbench.environment_guard import artifact_requirements

    assert artifact_requirements(pickle.dumps(np.zeros(2))) == {"numpy": np.__version__}


def test_mismatch_refused_in_one_line():
    recorded = {"features": {"numpy": "2.1.3"}, "labels": {}}
    check_inputs(recorded, {"numpy": "2.1.0"}, step="fit", target="image x")  # same minor: fine
    with pytest.raises(EnvironmentMismatch) as info:
        check_inputs(recorded, {"numpy": "1.24.2"}, step="fit", target="image workbench-base:bookworm")
    msg = str(info.value)
    assert "\n" not in msg and "numpy 2.1.3" in msg and "numpy 1.24.2" in msg and "features" in msg
    assert "@pypi(packages={'numpy': '2.1.3'})" in msg
    with pytest.raises(EnvironmentMismatch, match="does not have numpy"):
        check_inputs(recorded, {}, step="fit", target="image y")


# ---------------------------------------------------------------------------------------- images


@pytest.mark.docker
def test_image_build_installs_offline_on_a_base_without_pip(project, capsys):
    from tests.support.engine import base_image, docker_client_or_skip

    client = docker_client_or_skip()
    image = base_image(client)
    (project / "workbench.toml").write_text(
        f'[project]\nname = "envtest-{uuid.uuid4().hex[:8]}"\n\n[docker]\nimage = "{image}"\nnetwork = "none"\n'
    )
    (project / "requirements.txt").write_text("tabulate==0.9.0\n")
    tag = f"wbtest-env-{uuid.uuid4().hex[:8]}:1"
    for old in client.images.list():  # an interrupted run of this test leaves its image as a cache hit
        if any(t.startswith("wbtest-env-") for t in old.tags):
            client.images.remove(old.id, force=True)
    try:
        assert main(["image", "build", "--tag", tag]) == 0  # built with no network at all
        out = capsys.readouterr().out
        assert "\x1b" not in out and "built " + tag in out and "tabulate==0.9.0" in out
        assert "textual" not in out and "kubernetes" not in out
        version = (
            client.containers.run(
                tag, ["python3", "-c", "import tabulate; print(tabulate.__version__)"], remove=True, network_mode="none"
            )
            .decode()
            .strip()
        )
        assert version == "0.9.0"
        assert main(["image", "build", "--tag", tag]) == 0
        assert f"{tag} is up to date" in capsys.readouterr().out
        other = tag.replace(":1", ":2")
        assert main(["image", "build", "--tag", other]) == 0
        assert "from the cache" in capsys.readouterr().out
        assert client.images.get(other).id == client.images.get(tag).id
    finally:
        for name in (tag, tag.replace(":1", ":2")):
            try:
                client.images.remove(name, force=True)
            except Exception:  # noqa: BLE001 - not built
                pass


@pytest.mark.docker
def test_image_build_with_requirements_on_a_base_without_pip_installs_them(project, capsys):
    """Moved from test_docker_backend.py, where it asserted the old failure ("the base image has no
    pip"): the same project now builds, offline, and the image has the numpy the lock chose."""
    from tests.support.engine import base_image, docker_client_or_skip

    client = docker_client_or_skip()
    image = base_image(client)
    name = f"envtest-{uuid.uuid4().hex[:8]}"
    (project / "workbench.toml").write_text(
        f'[project]\nname = "{name}"\n\n[docker]\nimage = "{image}"\nnetwork = "none"\n'
    )
    (project / "requirements.txt").write_text("numpy\n")
    assert (
        client.containers.run(
            image, ["sh", "-c", "python3 -m pip --version || echo no-pip"], remove=True, network_mode="none"
        )
        .decode()
        .strip()
        .endswith("no-pip")
    )
    assert main(["image", "build"]) == 0
    out = capsys.readouterr().out
    tag = next(w for w in out.split() if w.startswith(f"workbench-{name}:"))
    try:
        locked = next(ln for ln in out.splitlines() if "+ numpy==" in ln).split("==")[1].strip()
        got = (
            client.containers.run(
                tag, ["python3", "-c", "import numpy; print(numpy.__version__)"], remove=True, network_mode="none"
            )
            .decode()
            .strip()
        )
        assert got == locked
    finally:
        client.images.remove(tag, force=True)


# ------------------------------------------------------------- remote/container install and the guard


def test_environment_archive_is_content_addressed(project):
    from workbench.environment_remote import pack_environment
    from workbench.environment_uv import ensure_wheelhouse, environment_for

    env = ensure_wheelhouse(environment_for(EnvironmentSpec(("tabulate==0.9.0",))))
    first = pack_environment(env, project / "packages")
    again = pack_environment(env, project / "other")
    assert first.name == again.name and first.read_bytes() == again.read_bytes()
    import tarfile

    with tarfile.open(first) as tar:
        assert sorted(tar.getnames()) == ["requirements.lock", "uv", "wheels/tabulate-0.9.0-py3-none-any.whl"]


@pytest.mark.docker
def test_host_numpy_pickle_in_a_container_with_another_numpy(project):
    """The issue's scenario on the real engine: the base image has Debian's numpy 1.x, the host numpy 2.x.
    Unpickling the host's artifact there really fails; the guard refuses it first in one line; and the
    same lock shipped as an environment archive and installed offline (no network) makes it readable."""
    np = pytest.importorskip("numpy")
    from tests.support.engine import base_image, docker_client_or_skip
    from workbench.environment_guard import artifact_requirements, host_version_requirements
    from workbench.environment_remote import pack_environment
    from workbench.environment_uv import environment_for
    from workbench.image import image_target, image_versions

    client = docker_client_or_skip()
    image = base_image(client)
    theirs = image_versions(client, image).get("numpy")
    if not theirs or theirs.split(".")[0] == np.__version__.split(".")[0]:
        pytest.skip(f"the base image's numpy ({theirs}) is not another major version than the host's")
    blob = project / "inputs" / "features.pkl"
    blob.parent.mkdir()
    blob.write_bytes(pickle.dumps(np.arange(6).reshape(2, 3)))
    recorded = {"features": artifact_requirements(blob.read_bytes())}
    assert recorded == {"features": {"numpy": np.__version__}}

    read = "import pickle; a = pickle.load(open('/inputs/features.pkl', 'rb')); print(int(a.sum()))"
    mounts = {str(blob.parent): {"bind": "/inputs", "mode": "ro"}}
    container = client.containers.run(
        image, ["python3", "-c", read], volumes=mounts, network_mode="none", detach=True, labels={"wbtest": "env-guard"}
    )
    try:
        assert container.wait()["StatusCode"] != 0
        assert "numpy._core" in container.logs().decode()  # the failure the guard exists for
    finally:
        container.remove(force=True)
    with pytest.raises(EnvironmentMismatch) as info:
        check_inputs(recorded, image_versions(client, image), step="fit", target=f"image {image}")
    assert f"numpy {np.__version__}" in str(info.value) and f"numpy {theirs}" in str(info.value)

    # the host's versions, resolved for the image's Python and installed offline at container start
    spec = EnvironmentSpec(host_version_requirements(recorded))
    env = environment_for(spec, image_target(client, image, client.images.get(image).id))
    archive = pack_environment(env, project / "packages")
    script = (
        "import sys; sys.path.insert(0, '/workbench'); from pathlib import Path; "
        "from workbench.environment_remote import install_offline, activate; "
        f"activate(install_offline(Path('/packages/{archive.name}'), Path('/tmp/envs'), sys.executable)); "
        + read.replace("print(", "import numpy; print(numpy.__version__, ")
    )
    out = client.containers.run(
        image,
        ["python3", "-c", script],
        network_mode="none",
        remove=True,
        volumes={
            **mounts,
            str(archive.parent): {"bind": "/packages", "mode": "ro"},
            str(REPO / "workbench"): {"bind": "/workbench/workbench", "mode": "ro"},
        },
    )
    assert out.decode().split() == [np.__version__, "15"]
