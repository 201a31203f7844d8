"""Metaflow's cloud tutorials (05-hello-cloud, 06-statistics-redux, then 07-worldview's notebook over them) played as
their READMEs say, against a cloud on this machine: the Kubernetes API emulator (tests/k8s_emulator; each pod a
container on the local Docker engine) and moto's S3 as the datastore. Full matrix only (``WORKBENCH_CONFORMANCE=all``):
it needs Docker and takes a minute or more.

"After configuring Metaflow to run in the cloud" (the READMEs' prerequisite) is, for workbench, a workbench.toml in
the metaflow-tutorials directory: an S3 datastore and a [kubernetes] section. Nothing in the tutorials changes but
their import line.
"""

from __future__ import annotations

import os
import re
import textwrap
from types import SimpleNamespace

import pytest
from tutorial_player import copy_tutorials, flow_env, matplotlib_venv, movies, play

from tests.support.engine import base_image, docker_client_or_skip
from tests.support.moto_server import aws, moto_server  # noqa: F401  (fixtures)

MODE = os.environ.get("WORKBENCH_CONFORMANCE", "ci").lower()
pytestmark = [
    pytest.mark.skipif(MODE != "all", reason="the cloud tutorials run in the full matrix (WORKBENCH_CONFORMANCE=all)"),
    pytest.mark.docker,
    pytest.mark.slow,
]

# the cluster's side of the credentials for moto (a real cluster would use IRSA or [kubernetes] secrets)
JOB_TEMPLATE = textwrap.dedent("""
    apiVersion: batch/v1
    kind: Job
    spec:
      template:
        spec:
          containers:
            - name: task
              env: [{name: AWS_ACCESS_KEY_ID, value: testing}, {name: AWS_SECRET_ACCESS_KEY, value: testing}]
""").lstrip()


@pytest.fixture
def cloud(aws, tmp_path, monkeypatch):  # noqa: F811  (the aws fixture, imported above)
    """The tutorials in a directory configured for the cloud: S3 on moto, Kubernetes on the emulator."""
    pytest.importorskip("kubernetes")
    from tests.k8s_emulator.server import KubeEmulator

    docker = docker_client_or_skip()
    image = base_image(docker)
    emu = KubeEmulator(
        node_capacity={"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "0"},
        docker_client=docker,
        grace_period_cap=2.0,
        backoff_seconds=0.5,
    ).start()
    try:
        root = copy_tutorials(tmp_path)
        emu.write_kubeconfig(root / "kubeconfig")
        (root / "job-template.yaml").write_text(JOB_TEMPLATE)
        (root / "workbench.toml").write_text(
            textwrap.dedent(f"""
                [project]
                name = "metaflow-tutorials"

                [datastore]
                root = "s3://{aws.bucket()}/metaflow"
                endpoint_url = "{aws.endpoint}"
                region = "us-east-1"

                [kubernetes]
                kubeconfig = "kubeconfig"
                image = "{image}"
                namespace = "default"
                template = "job-template.yaml"
            """).lstrip()
        )
        for key in [k for k in os.environ if k.startswith("WORKBENCH_") and k != "WORKBENCH_CONFORMANCE"]:
            monkeypatch.delenv(key)
        monkeypatch.chdir(root)
        yield SimpleNamespace(root=root, emu=emu, env=flow_env(WORKBENCH_K8S_POLL="0.2"))
    finally:
        emu.stop()
    assert emu.containers() == []  # every pod's container is gone


# the client warns before unpickling what a pod wrote (a user sees it once per artifact; here it is expected)
@pytest.mark.filterwarnings("ignore:loading .* unpickles a blob written on Kubernetes")
def test_05_06_07_on_kubernetes_and_s3(cloud, tmp_path_factory):
    hello_run, hello_notebook = play(cloud.root, "05-hello-cloud", env=cloud.env)
    assert hello_run.code == 0, hello_run
    assert "Metaflow says: Hi from the cloud!" in hello_run.out, hello_run  # printed in the pod, streamed home
    assert "Using metadata provider: local@s3://" in hello_run.out, hello_run

    from workbench import Flow, namespace

    namespace(None)
    hello = Flow("HelloCloudFlow").latest_successful_run
    assert hello["hello"].task.data.message == "Hi from the cloud!"
    assert hello_notebook.code == 0, hello_notebook
    assert f"Using run: Run('HelloCloudFlow/{hello.id}')" in hello_notebook.out, hello_notebook
    assert hello_notebook.out.rstrip().endswith("Hi from the cloud!"), hello_notebook

    (stats_run,) = play(cloud.root, "06-statistics-redux", env=cloud.env, steps=slice(1))
    assert stats_run.code == 0, stats_run
    stats = Flow("MovieStatsFlow").latest_successful_run
    genres = {g for m in movies(cloud.root, "02-statistics") for g in m["genres"].split("|")}
    assert {t.data.genre for t in stats["compute_statistics"].tasks()} == genres
    assert set(stats.data.genre_stats) == {g.lower() for g in genres}

    (worldview,) = play(cloud.root, "07-worldview", env=cloud.env)
    assert worldview.code == 0, worldview
    listed = re.findall(r"^(\S+)\s+Last run: .+ Successful: (True|False)$", worldview.out, re.M)
    assert listed == [("HelloCloudFlow", "True"), ("MovieStatsFlow", "True")], worldview
    assert f"Run id: {hello.id}, Successful: True" in worldview.out, worldview

    # 06's notebook plots with matplotlib (skipped, after the rest was checked, when it cannot be installed)
    python = matplotlib_venv(tmp_path_factory.mktemp("notebook"))
    (stats_notebook,) = play(cloud.root, "06-statistics-redux", env=cloud.env, python=python, steps=slice(1, None))
    assert stats_notebook.code == 0, stats_notebook
    last_line = (cloud.root / "02-statistics" / "movies.csv").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert f"The best movie ever made:\n{last_line}\n" in stats_notebook.out, stats_notebook
