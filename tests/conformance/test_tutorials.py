"""Metaflow's shipped tutorials run under workbench as their READMEs say, with only the import line changed.

tutorial_player.py copies the vendored tutorials (tutorials/, metaflow 2.19.39; see NOTICE) to a temporary
``metaflow-tutorials`` directory with their import lines swapped and plays each episode from its README's commands;
the assertions are on what the tutorial's user sees: the printed playlist, the artifacts through workbench's client,
the notebooks' output. The episodes share one directory and run in order (03 reads 02's run, 07 lists them all).

Which episodes run where, and why:

- 00-helloworld, 01-playlist, 02-statistics, 03-playlist-redux: no cloud; they run locally. 02's notebook plots with
  matplotlib, installed for it into a throw-away venv with uv (skipped with the reason when the index is unreachable).
- 04-playlist-plus: refused before it runs, in one line. Its ``@conda_base(python=get_python_version())`` is computed
  by a function and workbench reads decorators from the syntax tree without importing the flow; behind that, its
  ``@conda(libraries={"editdistance": "0.5.3"})`` exists only on conda-forge as a binary (PyPI has its source only,
  and workbench's environments install wheels), for a Python 3.9.10 this machine does not have.
- 05-hello-cloud, 06-statistics-redux: need a cloud (a Kubernetes cluster and S3). Locally their commands are refused
  in one line naming the setting to add; with ``WORKBENCH_CONFORMANCE=all`` they run for real against the Kubernetes
  API emulator (tests/k8s_emulator, pods as Docker containers) and moto's S3 (test_tutorials_cloud.py).
- 07-worldview: a notebook only: its cells run against the runs the episodes above made.
- 08-autopilot: Argo Workflows scheduling and a plotly notebook over an Argo run id: workbench has no scheduler
  integration, so its command is refused in one line.

The full matrix also runs 02 with Metaflow itself (from PyPI, on PYTHONPATH only) and compares the statistics.
After the episodes, each fix the tutorials needed is checked on its own with a tiny flow.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tutorial_player import (
    COMMAND_TIMEOUT,
    VENDORED,
    Played,
    copy_tutorials,
    flow_env,
    matplotlib_venv,
    movies,
    only_line,
    play,
    printed_picks,
    readme_steps,
)

MODE = os.environ.get("WORKBENCH_CONFORMANCE", "ci").lower()
pytestmark = pytest.mark.skipif(MODE in ("0", "off", "none"), reason="WORKBENCH_CONFORMANCE=0")


@pytest.fixture(scope="module")
def tutorials(tmp_path_factory) -> Path:
    return copy_tutorials(tmp_path_factory.mktemp("tutorials"))


@pytest.fixture
def no_workbench_settings(monkeypatch) -> None:
    """The client in this process sees what a tutorial user's shell has: no WORKBENCH_* settings."""
    for key in [k for k in os.environ if k.startswith("WORKBENCH_") and k != "WORKBENCH_CONFORMANCE"]:
        monkeypatch.delenv(key)


@pytest.fixture
def in_tutorials(tutorials, no_workbench_settings, monkeypatch) -> Path:
    """The client reads from where the tutorial user stands."""
    monkeypatch.chdir(tutorials)
    return tutorials


def test_readme_steps_are_read_from_each_readme():
    """The commands below come from the READMEs themselves; this pins what was read."""
    assert readme_steps("00-helloworld") == [
        "cd metaflow-tutorials",
        "python 00-helloworld/helloworld.py show",
        "python 00-helloworld/helloworld.py run",
    ]
    assert readme_steps("01-playlist")[-2:] == [
        "python 01-playlist/playlist.py run --genre comedy",
        "jupyter-notebook 01-playlist/playlist.ipynb",
    ]
    assert readme_steps("05-hello-cloud") == [
        "cd metaflow-tutorials",
        "python 05-hello-cloud/hello-cloud.py run",
        "jupyter-notebook 05-hello-cloud/hello-cloud.ipynb",
    ]
    assert readme_steps("06-statistics-redux") == [
        "python 02-statistics/stats.py run --with kubernetes --max-workers 4",
        "06-statistics-redux/stats.ipynb",
    ]
    assert readme_steps("07-worldview") == ["07-worldview/worldview.ipynb"]


def test_00_helloworld(in_tutorials):
    show, run = play(in_tutorials, "00-helloworld")
    assert show.code == 0 and "HelloFlow" in show.out, show
    assert re.findall(r"^  (\w+) +(?:start|linear|end) ", show.out, re.M) == ["start", "hello", "end"], show
    assert run.code == 0, run
    assert "HelloFlow is starting." in run.out and "Metaflow says: Hi!" in run.out, run
    assert "HelloFlow is all done." in run.out, run

    from workbench import Flow

    latest = Flow("HelloFlow").latest_successful_run
    assert {s.id for s in latest.steps()} == {"start", "hello", "end"}


def test_01_playlist(in_tutorials):
    show, sci_fi, comedy, notebook = play(in_tutorials, "01-playlist")
    for played in (show, sci_fi, comedy):
        assert played.code == 0, played
    assert "--genre = 'Sci-Fi'" in show.out and "--recommendations = 5" in show.out, show

    from workbench import Flow

    runs = [r for r in Flow("PlayListFlow").runs() if r.successful]
    assert len(runs) == 2
    newest, first = runs
    catalogue = movies(in_tutorials, "01-playlist")
    genres_of = {m["movie_title"]: m["genres"] for m in catalogue}
    # the IncludeFile's default is computed by a function (script_path("movies.csv")): the step sees the file
    assert newest.data.movie_data == (in_tutorials / "01-playlist" / "movies.csv").read_text(encoding="utf-8")
    assert (first.data.genre, newest.data.genre, newest.data.recommendations) == ("Sci-Fi", "comedy", 5)
    for run, played, genre in ((first, sci_fi, "sci-fi"), (newest, comedy, "comedy")):
        playlist = run.data.playlist
        assert sorted(playlist) == sorted(m["movie_title"] for m in catalogue if genre in m["genres"].lower())
        assert printed_picks(played.out) == playlist[:5], played
        title, genres = run.data.bonus
        assert genres_of[title] == genres and genre not in genres.lower()
        assert f"Bonus Pick: '{title}' from '{genres}'" in played.out, played

    # the notebook opens in 01-playlist/ and finds the runs made one folder up (as Metaflow finds its .metaflow)
    assert notebook.code == 0, notebook
    assert "UserWarning" not in notebook.err, notebook  # reading a run's parameters warns about nothing
    out = notebook.out
    assert f"Current metadata provider: local@{in_tutorials / '.workbench'}" in out, notebook
    assert f"Using run: Run('PlayListFlow/{newest.id}')" in out, notebook
    assert f"Playlist generated on {newest.finished_at}" in out, notebook
    assert printed_picks(out)[:5] == newest.data.playlist[:5], notebook
    assert re.findall(r"Top Pick: '(.*)'", out) == [newest.data.playlist[0], first.data.playlist[0]], notebook


def test_02_statistics(in_tutorials, tmp_path_factory):
    show, run = play(in_tutorials, "02-statistics", steps=slice(2))
    assert show.code == 0 and "compute_statistics" in show.out, show
    assert run.code == 0, run

    from workbench import Flow

    latest = Flow("MovieStatsFlow").latest_successful_run
    catalogue = movies(in_tutorials, "02-statistics")
    genres = {g for m in catalogue for g in m["genres"].split("|")}
    assert len(list(latest["compute_statistics"].tasks())) == len(genres)  # one task per genre (foreach)
    stats = latest.data.genre_stats
    assert set(stats) == {g.lower() for g in genres}
    sci_fi = stats["sci-fi"]
    assert all("Sci-Fi" in g for g in sci_fi["dataframe"]["genres"])
    assert sci_fi["dataframe"]["gross"] == sorted(sci_fi["dataframe"]["gross"])
    assert sci_fi["quartiles"] == sorted(sci_fi["quartiles"]) and len(sci_fi["quartiles"]) == 3

    # the notebook plots with matplotlib (skipped, after the run was checked, when it cannot be installed)
    python = matplotlib_venv(tmp_path_factory.mktemp("notebook"))
    probe = "\nprint('x labels:', [t.get_text() for t in plt.gca().get_xticklabels()])\n"
    (notebook,) = play(in_tutorials, "02-statistics", steps=slice(2, None), python=python, notebook_probe=probe)
    assert notebook.step == "jupyter-notebook 02-statistics/stats.ipynb"
    assert notebook.code == 0, notebook
    assert f"Using run: Run('MovieStatsFlow/{latest.id}')" in notebook.out, notebook
    top5 = [g for g, _ in sorted(((g, s["quartiles"][1]) for g, s in stats.items()), key=lambda p: p[1])][-5:]
    assert f"x labels: {top5!r}" in notebook.out, notebook  # the bar chart: the five genres with the top medians


def test_03_playlist_redux(in_tutorials):
    show, run = play(in_tutorials, "03-playlist-redux")
    assert show.code == 0, show
    assert run.code == 0, run

    from workbench import Flow

    stats_run = Flow("MovieStatsFlow").latest_successful_run
    assert f"Using metadata provider: local@{in_tutorials / '.workbench'}" in run.out, run
    assert f"Using analysis from 'Run('MovieStatsFlow/{stats_run.id}')'" in run.out, run
    latest = Flow("PlayListFlow").latest_successful_run
    assert latest["start"].task.data.genre_stats == stats_run.data.genre_stats  # the join drops it (as in Metaflow)
    sci_fi = stats_run.data.genre_stats["sci-fi"]
    top_quartile = {
        t
        for t, g in zip(sci_fi["dataframe"]["movie_title"], sci_fi["dataframe"]["gross"], strict=True)
        if g >= sci_fi["quartiles"][2]
    }
    assert latest.data.playlist and set(latest.data.playlist) == top_quartile
    assert printed_picks(run.out) == latest.data.playlist[:5], run
    assert "sci-fi" not in latest.data.bonus[1].lower()


def test_04_playlist_plus_is_refused_in_one_line(in_tutorials):
    """@conda_base(python=get_python_version()) needs the flow imported to be known: one line, no traceback."""
    steps = play(in_tutorials, "04-playlist-plus")
    assert [p.step for p in steps] == [
        "python 04-playlist-plus/playlist.py --environment=conda show",
        "python 04-playlist-plus/playlist.py --environment=conda run",
        'python 04-playlist-plus/playlist.py --environment=conda run --hint "Data Science Strikes Back"',
    ]
    for played in steps:
        line = only_line(played)
        assert "04-playlist-plus/playlist.py:20" in line, played  # the decorator's line in the vendored file
        assert "@conda_base(python=get_python_version()) must be a literal value" in line, played


def test_04_playlist_plus_conda_library_has_no_wheel_on_pypi(in_tutorials, tmp_path, monkeypatch):
    """The second obstacle: @conda(libraries={"editdistance": "0.5.3"}) maps to PyPI's editdistance==0.5.3, which
    ships only its source there (conda-forge has the binaries); workbench's environments install wheels and say so."""
    from workbench.environment_spec import merge, step_package_set
    from workbench.environment_uv import EnvironmentBuildError, ensure_locked, environment_for
    from workbench.graph import load_graph

    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    graph = load_graph(str(in_tutorials / "04-playlist-plus" / "playlist.py"))
    packages = step_package_set(graph, "bonus_movie")
    assert packages is not None and packages.requirements == {"editdistance": "editdistance==0.5.3"}
    with pytest.raises(EnvironmentBuildError) as refused:
        ensure_locked(environment_for(merge(packages)), what="step bonus_movie")
    if "has no wheel" not in str(refused.value):  # the index could not be asked
        pytest.skip(f"the package index is not reachable: {refused.value}")
    assert str(refused.value).startswith("step bonus_movie: editdistance 0.5.3 has no wheel for Python 3.")


def test_05_and_06_without_a_cloud_say_what_to_configure(in_tutorials):
    """Both need a cluster and S3; without them, one line says which setting to add (they run for real in
    test_tutorials_cloud.py under WORKBENCH_CONFORMANCE=all)."""
    (hello,) = play(in_tutorials, "05-hello-cloud", steps=slice(1))
    (stats,) = play(in_tutorials, "06-statistics-redux", steps=slice(1))
    for played in (hello, stats):
        line = only_line(played)
        assert "run on kubernetes, which needs an S3 datastore" in line and "[datastore]" in line, played
    assert "step(s) hello run on kubernetes" in only_line(hello)


def test_07_worldview(in_tutorials):
    """The notebook lists every flow's latest run; its HelloCloudFlow cell needs episode 05 (a cloud)."""
    (notebook,) = play(in_tutorials, "07-worldview", skip_cells_naming="HelloCloudFlow")
    assert notebook.code == 0, notebook
    from workbench import Flow

    listed = re.findall(r"^(\S+)\s+Last run: (.+) Successful: (True|False)$", notebook.out, re.M)
    assert [name for name, _, _ in listed] == ["HelloFlow", "MovieStatsFlow", "PlayListFlow"], notebook
    for name, finished, ok in listed:
        assert (finished, ok) == (str(Flow(name).latest_run.finished_at), "True")


def test_08_autopilot_is_refused_in_one_line(in_tutorials):
    """Argo Workflows is a scheduler workbench does not drive; its commands are refused in one line."""
    steps = play(in_tutorials, "08-autopilot", steps=slice(2))  # the third opens a notebook over an Argo run id
    assert [p.step for p in steps] == [
        "python 02-statistics/stats.py --with kubernetes argo-workflows create --max-workers 4",
        "python 02-statistics/stats.py argo-workflows trigger",
    ]
    for played in steps:
        assert "no command 'argo-workflows'" in only_line(played), played


# ---------------------------------------------------------------------------------------------------------------------
# What the tutorials found, each checked on its own (small flows, no tutorial data)

TINY = """
from workbench import FlowSpec, Parameter, step{extra_import}


class TinyFlow(FlowSpec):
    greeting = Parameter("greeting", default="hi")

    @step
    def start(self):
        self.next(self.end)
{decorator}
    @step
    def end(self):
        self.said = self.greeting.upper()  # not the parameter's own value (blobs are shared by content)


if __name__ == "__main__":
    TinyFlow()
"""


def _tiny(folder: Path, kubernetes: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.py"
    path.write_text(
        TINY.format(
            extra_import=", kubernetes" if kubernetes else "", decorator="    @kubernetes(cpu=1)" if kubernetes else ""
        )
    )
    return path


def _python(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=flow_env(), capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )


def test_with_after_the_command_chooses_the_backend(tmp_path, no_workbench_settings, monkeypatch):
    _tiny(tmp_path)
    refused = _python(tmp_path, "tiny.py", "run", "--with", "retry")
    assert "--with retry: workbench takes --with batch|kubernetes|docker|local" in only_line(Played("", refused))
    ran = _python(tmp_path, "tiny.py", "run", "--with", "local", "--greeting", "hello")
    assert ran.returncode == 0, ran.stderr
    monkeypatch.chdir(tmp_path)
    from workbench import Flow

    assert Flow("TinyFlow").latest_successful_run.data.said == "HELLO"


def test_the_client_finds_the_datastore_in_a_folder_above(tmp_path, no_workbench_settings, monkeypatch):
    """Without a workbench.toml, as Metaflow finds its .metaflow: the nearest .workbench up from the cwd."""
    _tiny(tmp_path / "episode")
    assert _python(tmp_path, "episode/tiny.py", "run").returncode == 0
    monkeypatch.chdir(tmp_path / "episode")  # where a notebook in that folder starts its kernel
    from workbench import Flow, get_metadata

    assert get_metadata() == f"local@{tmp_path.resolve() / '.workbench'}"
    assert Flow("TinyFlow").latest_successful_run.data.said == "HI"
    assert not (tmp_path / "episode" / ".workbench").exists()


def test_a_run_refused_at_start_is_no_run(tmp_path, no_workbench_settings, monkeypatch):
    """`python flow.py run` records the run's tags before the runtime checks the run; a run refused then (here: a
    @kubernetes step without an S3 datastore) leaves nothing behind, as in Metaflow, where the flow then does not
    exist. A run that is starting (tags, no record yet) is not listed either, and Metaflow() lists the flows that
    have a run in the namespace (Metaflow's rule), so `flow.latest_run` is never None there."""
    _tiny(tmp_path, kubernetes=True)
    assert "needs an S3 datastore" in only_line(Played("", _python(tmp_path, "tiny.py", "run")))
    assert not any((tmp_path / ".workbench" / "TinyFlow" / "runs").iterdir())
    monkeypatch.chdir(tmp_path)
    from workbench import Flow, Metaflow, default_namespace, namespace
    from workbench.config import load_config
    from workbench.datastore import FlowDatastore
    from workbench.exception import MetaflowNotFound
    from workbench.run_tags import write_run_tags

    with pytest.raises(MetaflowNotFound):
        Flow("TinyFlow")
    write_run_tags(FlowDatastore(load_config().datastore_url, "TinyFlow"), "1", None, [])  # a run starting
    namespace(None)
    try:
        assert Flow("TinyFlow").runs() == [] and Flow("TinyFlow").latest_run is None
        assert [f.id for f in Metaflow()] == []
    finally:
        default_namespace()


def test_a_run_parameter_loads_without_a_provenance_warning(tmp_path, no_workbench_settings, monkeypatch):
    """The runtime stores a run's parameters (no task's record claims them): loading one warns about nothing."""
    import warnings

    _tiny(tmp_path)
    assert _python(tmp_path, "tiny.py", "run").returncode == 0
    monkeypatch.chdir(tmp_path)
    from workbench import Flow

    run = Flow("TinyFlow").latest_successful_run
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run["start"].task.data.greeting == "hi"
        assert run.data.greeting == "hi"


METAFLOW_VERSION = "2.19.39"  # the version the tutorials were vendored from (NOTICE)


@pytest.mark.skipif(MODE != "all", reason="Metaflow side by side runs in the full matrix (WORKBENCH_CONFORMANCE=all)")
def test_02_statistics_gives_what_metaflow_itself_gives(in_tutorials, tmp_path):
    """The same tutorial, unchanged, run by Metaflow (from PyPI into a folder on PYTHONPATH, never installed here)
    and by workbench: the statistics the later episodes build on are equal."""
    from workbench.environment_uv import index_arguments, uv_binary

    target = tmp_path / "metaflow-pkg"
    index, extra_env = index_arguments()
    proc = subprocess.run(
        [uv_binary(), "pip", "install", "--quiet", "--no-deps", "--target", str(target), *index]
        + ["--python", sys.executable, f"metaflow=={METAFLOW_VERSION}"],
        env={**os.environ, **extra_env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode:
        pytest.skip(f"metaflow {METAFLOW_VERSION} cannot be fetched: {proc.stderr.strip()[-300:]}")
    original = tmp_path / "metaflow-tutorials"
    shutil.copytree(VENDORED, original)
    env = {**flow_env(), "PYTHONPATH": str(target), "METAFLOW_USER": "tester"}
    ran = subprocess.run(
        [sys.executable, "02-statistics/stats.py", "run"],
        cwd=original,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    dump = (
        "import pickle, sys\nfrom metaflow import Flow\n"
        "pickle.dump(Flow('MovieStatsFlow').latest_successful_run.data.genre_stats, sys.stdout.buffer)\n"
    )
    read = subprocess.run([sys.executable, "-c", dump], cwd=original, env=env, capture_output=True, timeout=300)
    assert read.returncode == 0, read.stderr[-3000:]
    from workbench import Flow

    metaflows = pickle.loads(read.stdout)
    assert Flow("MovieStatsFlow").latest_successful_run.data.genre_stats == metaflows
