"""Switch, recursive switch (with resume), @parallel gangs, @catch of a task that never started and
@secrets, each a tiny flow in tests/flows/ run through the real CLI (`python -m workbench.cli`)."""

import json
import os
import subprocess
import sys

from workbench.client import Flow, namespace

from .conftest import copy_test_flow
from .support.moto_server import aws, moto_server  # noqa: F401  (fixtures)


def wb(project, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        cwd=project,
        env={**os.environ, **(env or {})},
        timeout=180,
    )


def latest(flow_name):
    namespace(None)
    return Flow(flow_name).latest_run


def task_steps(run):
    return {step.name: list(step) for step in run}


def test_only_the_chosen_case_runs_loops_pass_and_the_record_names_the_case(project):
    copy_test_flow(project, "switches.py")
    p = wb(project, "run", "flows/switches.py", "--mode", "skip")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "count 4 sides [] passes [2, 3, 1]" in p.stdout
    run = latest("SwitchFlow")
    steps = task_steps(run)
    assert "process_branch" not in steps and "p1" not in steps and len(steps["skip_path"]) == 1
    assert len(steps["loop"]) == 4 and len(steps["body"]) == 2 + 3 + 1
    p = wb(project, "run", "flows/switches.py")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "count 4 sides ['p1', 'p2'] passes [2, 3, 1]" in p.stdout
    steps = task_steps(latest("SwitchFlow"))
    assert "skip_path" not in steps and "p2b" not in steps and len(steps["p2a"]) == 1
    dot = wb(project, "show", "flows/switches.py", "--dot").stdout
    assert '"start" -> "skip_path" [label="skip"' in dot and '"loop" -> "loop" [label="again"' in dot


def test_resume_of_a_loop_starts_from_the_failed_pass(project):
    copy_test_flow(project, "switches.py")
    p = wb(project, "run", "flows/switches.py", "--fail_at", "3", "--loops", "5")
    assert p.returncode == 1 and "failing on pass 3" in p.stdout
    origin = latest("SwitchFlow").id
    p = wb(project, "resume", "flows/switches.py", env={"SWITCH_NO_FAIL": "1"})
    assert p.returncode == 0, p.stdout + p.stderr
    assert "count 5 sides" in p.stdout
    reused = [line for line in p.stdout.splitlines() if "[loop/" in line and "reused from" in line]
    ran = [line for line in p.stdout.splitlines() if "[loop/" in line and "started on" in line]
    assert len(reused) == 2 and len(ran) == 3, p.stdout
    run = latest("SwitchFlow")
    assert run.id != origin and len(list(run["loop"])) == 5


def test_a_parallel_gang_runs_together_and_its_join_sees_every_node(project):
    copy_test_flow(project, "gang.py")
    p = wb(project, "run", "flows/gang.py", "--nodes", "3", "--max-workers", "1")
    assert p.returncode == 0, p.stdout + p.stderr
    data = latest("GangFlow").data
    control = data.nodes_seen[0][3]
    assert data.nodes_seen == [(i, 3, "127.0.0.1", control) for i in range(3)]
    assert control == latest("GangFlow")["train"].task.id or control in [t.id for t in latest("GangFlow")["train"]]
    assert data.pids == 3 and data.spread < 5.0  # N processes, started together despite --max-workers 1


def test_one_failing_node_fails_the_gang_at_once(project):
    copy_test_flow(project, "gang.py")
    p = wb(project, "run", "flows/gang.py", "--fail_node", "1")
    assert p.returncode == 1
    assert p.stdout.count("node 1 of the gang failed: RuntimeError: node 1 fails") == 2, p.stdout
    assert "[join/" not in p.stdout


def test_catch_covers_a_task_whose_image_does_not_exist(project):
    from .support.engine import docker_client_or_skip

    docker_client_or_skip()
    copy_test_flow(project, "unstartable.py")
    p = wb(project, "run", "flows/unstartable.py")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "problem metaflow.plugins.catch_decorator.FailureHandledByCatch | Task execution kept failing" in p.stdout
    assert "before 1" in p.stdout
    fragile = latest("UnstartableFlow")["fragile"].task
    assert fragile.data.problem.type == "metaflow.plugins.catch_decorator.FailureHandledByCatch"
    assert "workbench-no-such-image:never" in fragile.data.problem.exception


def test_secrets_from_a_local_file_and_aws_reach_the_step_and_no_record(project, aws, tmp_path):  # noqa: F811
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "db.env").write_text("DB_PASSWORD=hunter2\n")
    aws.client("secretsmanager").create_secret(
        Name="prod/api", SecretString=json.dumps({"API_TOKEN": "tok-123", "api-user": "bob"})
    )
    copy_test_flow(project, "secretive.py")
    p = wb(project, "run", "flows/secretive.py", env={"WORKBENCH_SECRETS_DIR": str(folder)})
    assert p.returncode == 0, p.stdout + p.stderr
    assert "local True cloud True leaked False" in p.stdout
    stored = b"".join(f.read_bytes() for f in (project / ".workbench").rglob("*") if f.is_file())
    assert b"hunter2" not in stored and b"tok-123" not in stored


def test_a_missing_secret_fails_the_step_in_one_line(project, aws, tmp_path):  # noqa: F811
    copy_test_flow(project, "secretive.py")
    p = wb(project, "run", "flows/secretive.py", env={"WORKBENCH_SECRETS_DIR": str(tmp_path)})
    assert p.returncode == 1
    assert f"@secrets: cannot read secret 'db' (local-file): no db.json or db.env in {tmp_path}" in p.stdout
    assert "Traceback" not in p.stdout
