"""Logs on an S3 datastore: a running task's lines are readable (and followed) while it runs; a large log is
spooled to disk, not memory."""

import subprocess
import sys
import time

import pytest

from tests.support.moto_server import AwsTestbed, moto_server, use_moto  # noqa: F401,F811 (fixture)

from .conftest import write_flow

FLOW = """
from workbench import FlowSpec, step
import time

class SlowPrintFlow(FlowSpec):
    @step
    def start(self):
        for i in range(40):
            print("line", i, flush=True)
            time.sleep(0.5)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture
def s3_project(project, moto_server, monkeypatch):  # noqa: F811 - the fixture imported above
    pytest.importorskip("boto3")
    use_moto(monkeypatch, moto_server)
    bucket = AwsTestbed(moto_server).bucket()
    (project / "workbench.toml").write_text(f'[project]\nname = "t"\n\n[datastore]\nroot = "s3://{bucket}/wb"\n')
    return project


def test_follow_a_running_task_on_s3(s3_project):
    write_flow(s3_project, "slow.py", FLOW)
    run = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "run", "flows/slow.py"],
        cwd=s3_project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = run.stdout.readline()
        run_id = first.split("SlowPrintFlow/")[1].split()[0]
        began = time.time()
        follow = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "logs", f"{run_id}/start/1", "--follow"],
            cwd=s3_project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for line in follow.stdout:
            if line.rstrip().endswith("line 3"):
                break
        seen_after = time.time() - began
        assert run.poll() is None, "the line must arrive while the task still runs"
        assert seen_after < 12, seen_after
        rest, _ = follow.communicate(timeout=120)
        assert rest.rstrip().endswith("line 39")  # follow ends with the task, having printed every line
    finally:
        run.kill()
        run.wait()


def test_large_log_is_spooled_not_held(s3_project):
    from workbench.datastore import FlowDatastore
    from workbench.datastore.storage import open_storage
    from workbench.logs import iter_log

    storage = open_storage(f"s3://{(s3_project / 'workbench.toml').read_text().split('s3://')[1].split(chr(34))[0]}")
    ds = FlowDatastore(storage, "Big")
    key = "Big/runs/1/start/1/0.log"
    line = "2026-01-01T00:00:00.000000Z stdout " + "y" * 64 + "\n"
    for _ in range(200):
        storage.append_text(key, line * 1000)
    assert all(not isinstance(v, (str, list)) for log in storage._logs.values() for v in log.values())
    storage.flush(key)
    count = sum(1 for _ in iter_log(ds, key))
    assert count == 200_000
