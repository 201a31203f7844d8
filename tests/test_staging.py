"""A project whose datastore is a local directory can still run steps remotely: with
``[datastore] remote = "s3://..."`` a remote task's inputs are copied there before it starts and its
outputs come home after it ends. Tested on moto's real S3 server with a backend that is remote in every
respect (its tasks see only the S3 staging area) but runs its processes on this machine."""

import textwrap

import pytest

from workbench import backends
from workbench.backends.local import LocalBackend
from workbench.client import Flow, namespace
from workbench.config import load_config
from workbench.datastore import FlowDatastore
from workbench.errors import UsageError
from workbench.graph import load_graph
from workbench.parameters import resolve_parameters
from workbench.runtime import Runtime

from .support.moto_server import aws, moto_server  # noqa: F401 - fixtures

FLOW = """
from workbench import FlowSpec, Parameter, step

class StageFlow(FlowSpec):
    n = Parameter("n", default=3, type=int)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.blob = b"x" * 100_000
        self.next(self.remote)

    @step
    def remote(self):
        self.squares = [i * i for i in self.items]
        self.size = len(self.blob)
        print("remote sees", self.squares)
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.squares)
"""


class RemoteProcesses(LocalBackend):
    """Remote as far as the runtime is concerned: needs S3, gets its own datastore URL."""

    name = "batch"
    remote = True


@pytest.fixture
def staged_project(project, aws, monkeypatch):  # noqa: F811
    bucket = aws.bucket()
    (project / "flows" / "stage.py").write_text(textwrap.dedent(FLOW))
    (project / "workbench.toml").write_text(
        textwrap.dedent(f"""
        [project]
        name = "staged"
        [datastore]
        root = ".workbench"
        remote = "s3://{bucket}/stage"
        [flows.StageFlow.steps.remote]
        backend = "batch"
    """)
    )
    monkeypatch.setitem(backends.REGISTRY, "batch", "tests.test_staging:RemoteProcesses")
    return project, bucket


def test_remote_step_with_a_local_datastore_round_trips_through_s3(staged_project, aws):  # noqa: F811
    project, bucket = staged_project
    graph = load_graph(project / "flows" / "stage.py")
    config = load_config()
    result = Runtime(graph, config, params=resolve_parameters(graph.parameters, {"n": "4"})).run()
    assert result.status == "succeeded", result.message
    namespace(config.datastore_url)
    run = Flow("StageFlow").latest_run
    assert run["end"].task.data.total == 14 and run["remote"].task.data.size == 100_000
    assert "remote sees [0, 1, 4, 9]" in run["remote"].task.stdout
    # the remote task really worked in S3: its spec, attempt and output blob are there
    stage = FlowDatastore(config.remote_url, "StageFlow")
    assert stage.read_attempt(result.run_id, "remote", "2", 0)["status"] == "succeeded"
    squares_sha = run["remote"].task.artifacts["squares"]["sha"]
    assert stage.has_artifact(squares_sha)
    # ...and nothing the local steps made that the remote one did not need went up
    total_sha = run["end"].task.artifacts["total"]["sha"]
    assert not stage.has_artifact(total_sha)


def test_single_step_rerun_remote_with_previous_local_inputs(staged_project, aws, monkeypatch):  # noqa: F811
    project, _ = staged_project
    graph = load_graph(project / "flows" / "stage.py")
    config = load_config()
    # the first run entirely local
    first = Runtime(graph, config, backend="local").run()
    assert first.status == "succeeded", first.message
    rerun = Runtime(graph, config, origin_run_id=first.run_id, rerun_steps={"remote"}, only_step="remote").run()
    assert rerun.status == "succeeded", rerun.message
    namespace(config.datastore_url)
    r = Flow("StageFlow")[rerun.run_id]
    assert r["remote"].task.data.squares == [0, 1, 4] and "end" not in r
    assert r.origin_run_id == first.run_id
    assert r["remote"].task._doc["attempts"][-1]["backend"] == "batch"


def test_remote_step_without_s3_says_what_to_configure(project, monkeypatch):
    (project / "flows" / "stage.py").write_text(textwrap.dedent(FLOW))
    (project / "workbench.toml").write_text('[flows.StageFlow.steps.remote]\nbackend = "batch"\n')
    monkeypatch.setitem(backends.REGISTRY, "batch", "tests.test_staging:RemoteProcesses")
    graph = load_graph(project / "flows" / "stage.py")
    with pytest.raises(
        UsageError,
        match=r"step\(s\) remote run on batch, which needs an S3 datastore: .*"
        r'\[datastore\] remote = "s3://bucket/prefix"',
    ):
        Runtime(graph, load_config()).run()
