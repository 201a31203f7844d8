"""What a Metaflow user types, checked directly (the vendored suite covers the rest): the flow's own
command line, parameters from the environment, reserved names, namespaces and tags, and Runner."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

FLOW = textwrap.dedent("""
    from workbench import FlowSpec, Parameter, current, step


    class TinyFlow(FlowSpec):
        alpha = Parameter("alpha", default=1, type=int)

        @step
        def start(self):
            self.seen = (self.alpha, current.username, list(current.parameter_names))
            print("alpha is", self.alpha)
            self.next(self.end)

        @step
        def end(self):
            pass


    if __name__ == "__main__":
        TinyFlow()
""")


@pytest.fixture
def tiny(project, monkeypatch):
    (project / "flows" / "tiny.py").write_text(FLOW)
    monkeypatch.setenv("METAFLOW_USER", "alice")
    return project


def flow_cli(project, *args, env=None):
    import os

    return subprocess.run(
        [sys.executable, "flows/tiny.py", *args],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_the_flow_file_alone_prints_help(tiny):
    p = flow_cli(tiny)
    assert p.returncode == 0 and "Usage: tiny.py" in p.stdout and "resume" in p.stdout


def test_run_takes_metaflow_options_and_env_parameters(tiny):
    from workbench.client import Flow

    p = flow_cli(
        tiny,
        "--metadata=local",
        "--quiet",
        "run",
        "--run-id-file",
        "rid",
        "--tag",
        "exp 1",
        "--max-num-splits",
        "5",
        env={"METAFLOW_RUN_ALPHA": "7"},
    )
    assert p.returncode == 0, p.stderr
    run_id = (tiny / "rid").read_text()
    run = Flow("TinyFlow")[run_id]
    assert run["start"].task.data.seen == (7, "alice", ["alpha"])
    assert run["start"].task.stdout == "alpha is 7\n"
    assert run.user_tags == {"exp 1"} and "user:alice" in run.system_tags
    run.replace_tag("exp 1", "exp 2")
    assert run.user_tags == {"exp 2"}


def test_namespaces_decide_what_the_client_finds(tiny):
    from workbench.client import Flow, default_namespace, get_namespace, namespace
    from workbench.exception import MetaflowNamespaceMismatch

    assert flow_cli(tiny, "run", "--run-id-file", "rid").returncode == 0
    run_id = (tiny / "rid").read_text()
    assert get_namespace() == "user:alice"
    namespace("user:bob")
    try:
        with pytest.raises(MetaflowNamespaceMismatch):
            Flow("TinyFlow")[run_id]
        assert Flow("TinyFlow").latest_run is None
        namespace(None)
        assert Flow("TinyFlow")[run_id].successful
    finally:
        default_namespace()


def test_a_reserved_parameter_name_is_refused_in_one_line(project):
    (project / "flows" / "bad.py").write_text(FLOW.replace('Parameter("alpha"', 'Parameter("params"'))
    p = subprocess.run([sys.executable, "flows/bad.py", "run"], capture_output=True, text=True, cwd=project, timeout=60)
    assert p.returncode != 0
    assert "Parameter name 'params' is a reserved word" in p.stderr


def test_with_names_a_backend_and_nothing_else():
    from workbench.cli.flow import _backend_from_with
    from workbench.errors import UsageError

    assert _backend_from_with(["batch"]) == "batch"
    assert _backend_from_with(["kubernetes:cpu=2"]) == "kubernetes"
    with pytest.raises(UsageError, match="--with retry"):
        _backend_from_with(["retry"])


def test_runner_returns_the_run(tiny):
    from workbench import Runner

    result = Runner("flows/tiny.py", show_output=False, cwd=str(tiny)).run(alpha=3)
    assert result.returncode == 0 and result.status == "successful"
    assert result.run["start"].task.data.seen[0] == 3
    assert result["start"].task.data.seen[0] == 3 and result.successful  # it stands in for the Run


WIDE = textwrap.dedent("""
    from workbench import FlowSpec, step


    class WideFlow(FlowSpec):
        @step
        def start(self):
            self.items = list(range(5))
            self.next(self.each, foreach="items")

        @step
        def each(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass


    if __name__ == "__main__":
        WideFlow()
""")


def test_max_num_splits_fails_a_wider_foreach_in_metaflows_words(project):
    (project / "flows" / "wide.py").write_text(WIDE)
    run = [sys.executable, "flows/wide.py", "run", "--max-num-splits"]
    narrow = subprocess.run([*run, "3"], capture_output=True, text=True, cwd=project, timeout=120)
    assert narrow.returncode != 0
    assert "Foreach in step start yielded 5 child steps which is more than the current maximum of 3" in (
        narrow.stdout + narrow.stderr
    )
    wide_enough = subprocess.run([*run, "5"], capture_output=True, text=True, cwd=project, timeout=120)
    assert wide_enough.returncode == 0, wide_enough.stderr
