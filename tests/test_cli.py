"""The headless CLI as a user (or CI) drives it: exit codes, output modes, inspection commands."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from workbench.cli import main

from .conftest import REPO, copy_test_flow, write_flow


def wb(*args, cwd=None, env=None):
    """Run the real console entry point in a subprocess (not a TTY, so plain output)."""
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.fixture
def hello(project):
    (project / "flows" / "hello.py").write_text((REPO / "flows" / "hello.py").read_text())
    return project


def test_run_plain_output_and_exit_code(hello):
    p = wb("run", "flows/hello.py", "--name", "ci", cwd=hello)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "run HelloFlow/" in lines[0] and lines[0].endswith("started")
    assert any(line.endswith("[start/1] | hello, ci") for line in lines)
    assert "succeeded in" in lines[-1]


def test_run_by_flow_name_json_and_junit(hello):
    p = wb("run", "HelloFlow", "--json", "--junit-xml", "report.xml", cwd=hello)
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in p.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished" and events[-1]["status"] == "succeeded"
    assert kinds.count("TaskFinished") == 3
    suite = ET.parse(hello / "report.xml").getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.findall("testcase")] == ["start/1", "count/2", "end/3"]


def test_failed_step_exit_1_and_junit_traceback(project):
    copy_test_flow(project, "behaviours.py")
    p = wb("run", "flows/behaviours.py", "--mode", "fail", "--junit-xml", "r.xml", cwd=project)
    assert p.returncode == 1
    assert "step work failed" in p.stdout.splitlines()[-1]
    failure = ET.parse(project / "r.xml").getroot().find(".//failure")
    assert "ValueError: item 2 is bad" in failure.get("message") and "Traceback" in failure.text


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "flows/hello.py", "--nope", "1"], "unknown parameter --nope (this flow takes: --name)"),
        (["run", "flows/missing.py"], "no flow file flows/missing.py"),
        (["run", "NoSuchFlow"], "no flow file or flow named NoSuchFlow"),
        (["run", "flows/hello.py", "stray"], "unexpected argument 'stray'"),
        (["run", "flows/hello.py", "--step", "bogus"], "flow HelloFlow has no step bogus"),
    ],
)
def test_usage_errors_exit_2_with_one_line(hello, args, message):
    p = wb(*args, cwd=hello)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.strip().splitlines() == [f"error: {message}"] or message in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_wrong_parameter_type_and_broken_flow_exit_2(project):
    write_flow(
        project,
        "typed.py",
        """
        from workbench import FlowSpec, Parameter, step
        class T(FlowSpec):
            n = Parameter("n", default=1, type=int)
            @step
            def start(self):
                self.next(self.end)
            @step
            def end(self):
                pass
    """,
    )
    p = wb("run", "flows/typed.py", "--n", "abc", cwd=project)
    assert p.returncode == 2 and p.stderr.strip() == "error: --n: 'abc' is not an integer"
    write_flow(project, "broken.py", "from workbench import FlowSpec\nclass B(FlowSpec):\n    def x(self:\n")
    p = wb("run", "flows/broken.py", cwd=project)
    assert p.returncode == 2 and "flows/broken.py:3: syntax error" in p.stderr


def test_malformed_workbench_toml_exit_2(hello):
    (hello / "workbench.toml").write_text('[project]\nname = "t"\n[datastore]\nroots = "x"\n')
    p = wb("run", "flows/hello.py", cwd=hello)
    assert p.returncode == 2
    assert "workbench.toml:4: unknown key datastore.roots" in p.stderr


def test_check_show_runs_logs_artifacts(hello):
    copy_test_flow(hello, "branchy.py")
    write_flow(
        hello,
        "bad.py",
        """
        from workbench import FlowSpec, step
        class Bad(FlowSpec):
            @step
            def start(self):
                self.next(self.nowhere)
            @step
            def end(self):
                pass
    """,
    )
    p = wb("check", cwd=hello)
    assert p.returncode == 1
    assert "error " in p.stdout and "bad.py:5: step start transitions to unknown step nowhere" in p.stdout
    assert "ok    flows/hello.py: HelloFlow (3 steps)" in p.stdout
    (hello / "flows" / "bad.py").unlink()
    assert wb("check", cwd=hello).returncode == 0

    show = wb("show", "flows/branchy.py", cwd=hello)
    assert show.returncode == 0 and "fan" in show.stdout and "(foreach rows)" in show.stdout
    data = json.loads(wb("show", "BranchyFlow", "--json", cwd=hello).stdout)
    assert {s["name"]: s["kind"] for s in data["steps"]}["cell_join"] == "join"
    assert data["steps"][0]["settings"]["backend"] == "local"
    assert (
        '"row" -> "cell" [label="foreach input", style=dashed];' in wb("show", "BranchyFlow", "--dot", cwd=hello).stdout
    )

    assert wb("run", "flows/hello.py", "--name", "logs", cwd=hello).returncode == 0
    runs = wb("runs", "--json", cwd=hello)
    run_id = json.loads(runs.stdout)[0]["run_id"]  # newest first
    assert "HelloFlow" in wb("runs", cwd=hello).stdout
    logs = wb("logs", f"{run_id}/start", cwd=hello)
    assert logs.returncode == 0 and logs.stdout.rstrip().endswith("hello, logs")
    all_logs = wb("logs", f"HelloFlow/{run_id}", cwd=hello).stdout
    assert all_logs.index("start/1") < all_logs.index("count/2") < all_logs.index("end/3")
    arts = wb("artifacts", f"{run_id}/count", cwd=hello)
    assert "letters" in arts.stdout and "greeting" in arts.stdout
    one = wb("artifacts", f"{run_id}/count/2", "letters", cwd=hello)
    assert one.stdout.strip() == "9"
    missing = wb("artifacts", f"{run_id}/count/2", "nope", cwd=hello)
    assert missing.returncode == 2 and "has no artifact nope" in missing.stderr
    usage = wb("show", "HelloFlow", "--usage", cwd=hello)
    assert "measured on local: peak memory" in usage.stdout and "suggested: --memory" in usage.stdout


def test_single_step_rerun_uses_previous_inputs(hello):
    assert wb("run", "flows/hello.py", "--name", "first", cwd=hello).returncode == 0
    p = wb("run", "flows/hello.py", "--step", "count", cwd=hello)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[start/1] reused from HelloFlow/" in p.stdout and "[count/2] | 10 letters" in p.stdout
    assert "end/" not in p.stdout


def test_init_scaffolds_a_runnable_project(tmp_path):
    target = tmp_path / "newproj"
    assert main(["init", str(target)]) == 0
    assert (target / "workbench.toml").exists() and (target / "flows" / "hello.py").exists()
    assert 'name = "newproj"' in (target / "workbench.toml").read_text()
    assert main(["init", str(target)]) == 2  # never overwrites
    p = wb("run", "flows/hello.py", cwd=target)
    assert p.returncode == 0, p.stderr


def test_promote_and_demote_round_trip(hello):
    toml = hello / "workbench.toml"
    original = "# keep this comment\n" + toml.read_text()
    toml.write_text(original)
    p = wb("promote", "count", "--to", "docker", "--memory", "2G", "--cpu", "2", cwd=hello)
    assert p.returncode == 0, p.stderr
    assert "+[flows.HelloFlow.steps.count]" in p.stdout and '+memory = "2G"' in p.stdout
    assert toml.read_text().startswith(original)
    assert "docker cpu=2 memory=2G" in wb("show", "HelloFlow", cwd=hello).stdout
    for bad, msg in (
        (["--gpu", "-1"], "must be a whole number of GPUs"),
        (["--gpu", "0.5"], "whole number"),
        (["--memory", "12Q"], "is not a size"),
        (["--gpu", "64"], "no machine has more than 16"),
    ):
        r = wb("promote", "count", *bad, cwd=hello)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = wb("promote", "nostep", "--gpu", "1", cwd=hello)
    assert r.returncode == 2 and "no flow in" in r.stderr
    assert wb("demote", "count", cwd=hello).returncode == 0
    assert toml.read_text() == original
