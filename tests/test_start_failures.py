"""A task that cannot start says why: in its task record, its log (`workbench logs`) and the client."""

import subprocess
import sys

from tests.support.engine import base_image, docker_client_or_skip

from .conftest import write_flow

FLOW = """
from workbench import FlowSpec, step

class MissingImageFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_missing_image_reason_in_record_log_and_client(project):
    client = docker_client_or_skip()
    base_image(client)
    write_flow(project, "missing.py", FLOW)
    (project / "workbench.toml").write_text(
        '[project]\nname = "t"\n\n[docker]\nimage = "workbench-no-such-image:nope"\n'
    )
    p = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "run", "flows/missing.py", "--backend", "docker"],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=120,
    )
    assert p.returncode == 1, p.stdout + p.stderr
    from workbench.client import Flow, namespace

    namespace(str(project / ".workbench"))
    task = Flow("MissingImageFlow").latest_run["start"].task
    assert task.status == "failed"
    assert "workbench-no-such-image:nope" in task.reason
    assert task.exception is not None and "workbench-no-such-image:nope" in str(task.exception)
    logs = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "logs", f"{task.pathspec.split('/')[1]}/start"],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=60,
    )
    assert "workbench-no-such-image:nope" in logs.stdout + logs.stderr
    assert task.reason in logs.stderr
