"""The task boundary on the real Docker engine (and moto for S3): a hostile step cannot rewrite an
earlier run's blob, plant bytecode, or smuggle files into the store; a running task's container holds
no credential that `docker inspect` shows."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from workbench.config import load_config
from workbench.datastore import FlowDatastore

from .support.moto_server import aws, moto_server  # noqa: F401 - fixtures
from .test_docker_backend import engine, run_flow  # noqa: F401 - fixtures and helpers

pytestmark = pytest.mark.docker

HOSTILE = """
import os, sys
from workbench import FlowSpec, Parameter, step

def attempt(action):
    try:
        action()
        return "done"
    except OSError as exc:
        return "refused: " + (exc.strerror or str(exc))

class HostileFlow(FlowSpec):
    victim = Parameter("victim", default="")

    @step
    def start(self):
        self.prefix = sys.pycache_prefix or ""
        if not self.victim:
            self.treasure = "the honest value " * 10
            self.next(self.end)
            return
        store = os.path.dirname(os.path.dirname(os.path.dirname(self.victim)))
        def rewrite():
            with open(self.victim, "r+b") as f:
                f.write(b"EVIL")
        def plant():
            import workbench.errors as target
            src_dir = os.path.dirname(os.path.abspath(target.__file__))
            pyc = os.path.join(self.prefix + src_dir, "errors.cpython-%d%d.pyc" % sys.version_info[:2])
            os.makedirs(os.path.dirname(pyc), exist_ok=True)
            with open(pyc, "wb") as f:
                f.write(b"planted")
        def new_file():
            with open(os.path.join(store, "planted.txt"), "w") as f:
                f.write("x")
        self.results = {"rewrite": attempt(rewrite), "plant": attempt(plant), "new_file": attempt(new_file)}
        # what a step can write: its outbox. Forge a blob under a name it does not hash to, and a record
        outbox = os.environ["WORKBENCH_OUTBOX"]
        name = os.path.basename(self.victim)
        fake = os.path.join(outbox, "HostileFlow", "data", "ab", "ab" + name[2:])
        os.makedirs(os.path.dirname(fake), exist_ok=True)
        with open(fake, "wb") as f:
            f.write(b"WBA2 garbage")
        other = os.path.join(outbox, "HostileFlow", "runs", "1", "start", "1", "task.json")
        os.makedirs(os.path.dirname(other), exist_ok=True)
        with open(other, "w") as f:
            f.write("{}")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture
def hostile_project(tmp_path, engine, monkeypatch):  # noqa: F811
    client, image = engine
    name = f"wbsec-{uuid.uuid4().hex[:8]}"
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hostile.py").write_text(HOSTILE)
    (tmp_path / "workbench.toml").write_text(
        f'[project]\nname = "{name}"\nbackend = "docker"\n\n[docker]\nimage = "{image}"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_DATASTORE", raising=False)
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    yield tmp_path
    for c in client.containers.list(all=True, filters={"label": [f"workbench.project={name}"]}):
        c.remove(force=True)


def _task(root: Path, run_id: str, step: str = "start") -> dict:
    ds = FlowDatastore(load_config(root).datastore_url, "HostileFlow")
    return ds.read_task(run_id, step, ds.list_tasks(run_id, step)[0])


def test_a_hostile_step_cannot_rewrite_blobs_plant_bytecode_or_smuggle_files(hostile_project):
    root = hostile_project
    first, _, _, _ = run_flow(root, "flows/hostile.py")
    assert first.status == "succeeded", first.message
    ds = FlowDatastore(load_config(root).datastore_url, "HostileFlow")
    sha = _task(root, first.run_id)["artifacts"]["treasure"]["sha"]
    victim = Path(ds.storage.local_path(ds.artifact_key(sha)))
    before = victim.read_bytes()
    cache = _task(root, first.run_id)  # the cache the task saw (read from its own artifact below)
    prefix = ds.load_artifact(cache["artifacts"]["prefix"]["sha"])
    assert prefix, "tasks run with a bytecode cache"
    cached = {p: p.read_bytes() for p in Path(prefix).rglob("*.pyc")}
    assert cached, "the runtime filled the cache before the first task"

    second, events, _, _ = run_flow(root, "flows/hostile.py", params={"victim": str(victim)})
    assert second.status == "succeeded", second.message
    results = ds.load_artifact(_task(root, second.run_id)["artifacts"]["results"]["sha"])
    assert results["rewrite"].startswith("refused: Read-only file system"), results
    assert results["plant"].startswith("refused: Read-only file system"), results
    assert results["new_file"].startswith("refused: Read-only file system"), results
    assert victim.read_bytes() == before and ds.load_artifact(sha) == "the honest value " * 10
    assert {p: p.read_bytes() for p in Path(prefix).rglob("*.pyc")} == cached
    assert not (victim.parents[2] / "planted.txt").exists()
    # the forged blob and the foreign record were refused, named in the task's log, and the outbox is gone
    assert not ds.has_artifact("ab" + sha[2:])
    assert ds.read_task("1", "start", "1") is None
    log = "\n".join(text for _, _, text in ds.read_log(second.run_id, "start", "1"))
    assert "refused from the container's outputs: HostileFlow/data/ab/" in log and "blob refused" in log
    assert "HostileFlow/runs/1/start/1/task.json: outside the task's outputs" in log
    assert not any((Path(ds.url) / ".outbox").iterdir())
    assert any("refused" in getattr(e, "message", "") for e in events)


def test_pycache_is_per_project_and_image():
    from workbench.backends.docker_cache import cache_dir_for

    a = cache_dir_for("/p/one", "sha256:" + "1" * 64)
    assert a != cache_dir_for("/p/two", "sha256:" + "1" * 64)
    assert a != cache_dir_for("/p/one", "sha256:" + "2" * 64)


CREDS_FLOW = """
import os, stat, time
from workbench import FlowSpec, step

class CredsFlow(FlowSpec):
    @step
    def start(self):
        path = os.environ["AWS_SHARED_CREDENTIALS_FILE"]
        st = os.stat(path)
        self.creds_file = {"path": path, "mode": oct(stat.S_IMODE(st.st_mode)),
                           "key_in_env": "AWS_SECRET_ACCESS_KEY" in os.environ,
                           "step_token": os.environ.get("API_TOKEN")}
        print("waiting", flush=True)
        time.sleep(6)
        self.next(self.end)

    @step
    def end(self):
        pass
"""

SECRET = "wbSecret" + "x" * 32
TOKEN = "wbToken" + "y" * 40
KEY_ID = "AKIAWBTESTKEY0000001"
STEP_TOKEN = "step-token-" + "z" * 20


def test_docker_inspect_of_a_running_task_shows_no_credential(tmp_path, engine, aws, monkeypatch):  # noqa: F811
    client, image = engine
    name = f"wbsec-{uuid.uuid4().hex[:8]}"
    bucket = aws.bucket()
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "creds.py").write_text(CREDS_FLOW)
    (tmp_path / "workbench.toml").write_text(
        f'[project]\nname = "{name}"\nbackend = "docker"\n\n[docker]\nimage = "{image}"\n\n'
        f'[datastore]\nroot = "s3://{bucket}/wb"\nendpoint_url = "{aws.endpoint}"\n\n'
        f'[flows.CredsFlow.steps.start]\nenv = {{ API_TOKEN = "{STEP_TOKEN}", MODE = "fast" }}\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_DATASTORE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    import workbench.aws

    monkeypatch.setattr(workbench.aws, "_sessions", {})
    inspected: list[dict] = []

    def watch():
        deadline = time.time() + 60
        while time.time() < deadline and not inspected:
            for c in client.containers.list(filters={"label": [f"workbench.project={name}", "workbench.step=start"]}):
                inspected.append(client.api.inspect_container(c.id))
            time.sleep(0.3)

    t = threading.Thread(target=watch)
    t.start()
    try:
        result, events, _, _ = run_flow(tmp_path, "flows/creds.py")
    finally:
        t.join()
        for c in client.containers.list(all=True, filters={"label": [f"workbench.project={name}"]}):
            c.remove(force=True)
    assert result.status == "succeeded", result.message
    assert inspected, "the task's container was seen running"
    text = json.dumps(inspected[0])
    for secret in (SECRET, TOKEN, KEY_ID, STEP_TOKEN):
        assert secret not in text
    env = dict(e.split("=", 1) for e in inspected[0]["Config"]["Env"])
    assert not {"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"} & set(env)
    ds = FlowDatastore(load_config(tmp_path).datastore_url, "CredsFlow")
    info = ds.load_artifact(ds.read_task(result.run_id, "start", "1")["artifacts"]["creds_file"]["sha"])
    assert info["mode"] == "0o600" and not info["key_in_env"]
    # a step env value that looks like a secret: delivered, warned about, and redacted in the task record
    assert info["step_token"] == STEP_TOKEN
    assert any(
        "API_TOKEN" in str(getattr(e, "message", "")) and "@secrets" in str(getattr(e, "message", "")) for e in events
    )
    record = ds.read_task(result.run_id, "start", "1")
    assert record["settings"]["env"] == {"API_TOKEN": "<redacted>", "MODE": "fast"}
    assert ds.read_spec(result.run_id, "start", "1", 0).settings["env"]["API_TOKEN"] == "<redacted>"
    assert info["path"].startswith(("/dev/shm/", os.environ.get("XDG_RUNTIME_DIR") or "/nonexistent"))
    mounts = {m["Destination"]: m for m in inspected[0]["Mounts"]}
    assert mounts[info["path"]]["RW"] is False
    assert not os.path.exists(info["path"]), "the credentials file is removed when the run ends"
