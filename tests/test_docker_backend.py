"""The docker backend against a real Docker engine (see tests/support/engine.py): what is specific to it.
Success, failure, @timeout, OOM, cancel leaving no container, live logs, identical artifacts and on_exit once per
attempt are checked for every backend by the contract suite (tests/contract).

Every test project lives in tmp_path with its own workbench.toml (``[docker] image`` = the locally
built base image) and a unique project name; a fixture removes whatever container carries that
project's label, and several tests assert that the backend itself left none behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support.engine import base_image, count_containers, docker_client_or_skip
from workbench import events as ev
from workbench.backends.base import TaskSpec
from workbench.config import load_config
from workbench.datastore import FlowDatastore
from workbench.errors import ConfigError, EngineUnreachable, ResourceError
from workbench.graph import load_graph
from workbench.parameters import resolve_parameters
from workbench.runtime import Runtime
from workbench.settings import StepSettings

FLOWS = Path(__file__).parent / "support" / "flows_docker"
REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024

pytestmark = pytest.mark.docker


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def engine():
    client = docker_client_or_skip()
    return client, base_image(client)


def _write_project(root: Path, name: str, image: str, extra: str = "") -> None:
    (root / "flows").mkdir(exist_ok=True)
    for src in FLOWS.glob("*.py"):
        shutil.copy(src, root / "flows" / src.name)
    (root / "workbench.toml").write_text(
        f'[project]\nname = "{name}"\nbackend = "docker"\n\n[docker]\nimage = "{image}"\n{extra}'
    )


@pytest.fixture
def project(tmp_path, engine, monkeypatch):
    client, image = engine
    name = f"wbtest-{uuid.uuid4().hex[:8]}"
    _write_project(tmp_path, name, image)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_DATASTORE", raising=False)
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    yield tmp_path
    for labels in ({"workbench.project": name}, {"wbtest": name}):
        for c in client.containers.list(all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]}):
            c.remove(force=True)


def run_flow(root: Path, ref: str, *, backend=None, params=None, on_event=None, **kwargs):
    path, _, cls = ref.partition(":")
    config = load_config(root)
    graph = load_graph(root / path, cls or None)
    events: list = []

    def sink(e):
        events.append((time.time(), e))
        if on_event is not None:
            on_event(e)

    values = resolve_parameters(graph.parameters, params or {})
    rt = Runtime(graph, config, params=values, backend=backend, sink=sink, **kwargs)
    result = rt.run()
    return result, [e for _, e in events], events, rt


def finished(events, step) -> ev.TaskFinished:
    return next(e for e in events if isinstance(e, ev.TaskFinished) and e.step == step)


def artifacts_by_task(root: Path, flow: str, run_id: str) -> dict:
    ds = FlowDatastore(load_config(root).datastore_url, flow)
    out = {}
    for step in ds.list_steps(run_id):
        for task_id in ds.list_tasks(run_id, step):
            doc = ds.read_task(run_id, step, task_id)
            key = (step, tuple(f["index"] for f in doc.foreach_stack))
            out[key] = {name: a["sha"] for name, a in doc["artifacts"].items()}
    return out


def task_docs(root: Path, flow: str, run_id: str) -> list[dict]:
    ds = FlowDatastore(load_config(root).datastore_url, flow)
    return [ds.read_task(run_id, s, t) for s in ds.list_steps(run_id) for t in ds.list_tasks(run_id, s)]


# ---------------------------------------------------------------------------------------------- pure parts


def _spec(**settings) -> TaskSpec:
    return TaskSpec(
        flow="F",
        run_id="123",
        step="train",
        task_id="7",
        attempt=0,
        settings=StepSettings(backend="docker", **settings),
        datastore_url="/data/store",
        project_root="/home/me/proj",
        flow_file="flows/f.py",
        class_name="F",
        labels={
            "workbench.flow": "F",
            "workbench.run": "123",
            "workbench.step": "train",
            "workbench.task": "7",
            "workbench.project": "proj",
        },
    )


def test_create_kwargs_for_gpu_cpu_memory_shm():
    docker = pytest.importorskip("docker")
    from workbench.backends.docker import USAGE_SCRIPT, container_config

    spec = _spec(cpu=2.0, memory=8192, gpu=1, shared_memory=1024, env={"A": "1"})
    cfg = container_config(
        spec, image="img:1", network="none", user="1000:1000", owner="h:1:2", pkg_dir="/opt/src/workbench"
    )
    hc = cfg["host_config"]
    assert hc["nano_cpus"] == 2_000_000_000
    assert hc["mem_limit"] == 8 * 1024 * MIB
    assert hc["memswap_limit"] == hc["mem_limit"]  # swap off
    assert hc["shm_size"] == 1024 * MIB
    (req,) = hc["device_requests"]
    assert isinstance(req, docker.types.DeviceRequest)
    assert req["Count"] == 1 and req["Capabilities"] == [["gpu"]]
    assert hc["network_mode"] == "none"
    assert hc["binds"] == {
        "/home/me/proj": {"bind": "/home/me/proj", "mode": "ro"},
        "/opt/src/workbench": {"bind": "/opt/src/workbench", "mode": "ro"},
        "/data/store": {"bind": "/data/store", "mode": "ro"},
    }  # outputs: a per-task outbox
    assert cfg["image"] == "img:1"
    assert cfg["user"] == "1000:1000"
    assert cfg["working_dir"] == "/home/me/proj"
    assert cfg["command"][:4] == ["/bin/sh", "-c", USAGE_SCRIPT, "workbench-task"]
    assert cfg["command"][4:] == spec.command(python="python3")
    assert cfg["environment"]["PYTHONPATH"] == "/opt/src"
    assert cfg["environment"]["A"] == "1"
    assert cfg["labels"]["workbench.run"] == "123" and cfg["labels"]["workbench.owner"] == "h:1:2"
    assert {"workbench.project", "workbench.flow", "workbench.step", "workbench.task"} <= set(cfg["labels"])

    # what the SDK turns that into, field by field, as the engine's API receives it
    sent = docker.types.HostConfig(version="1.41", **hc)
    assert sent["NanoCpus"] == 2_000_000_000
    assert sent["Memory"] == sent["MemorySwap"] == 8 * 1024 * MIB
    assert sent["ShmSize"] == 1024 * MIB
    assert sent["DeviceRequests"] == [
        {"Driver": "", "Count": 1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]
    assert sent["NetworkMode"] == "none"
    assert sorted(sent["Binds"]) == [
        "/data/store:/data/store:ro",
        "/home/me/proj:/home/me/proj:ro",
        "/opt/src/workbench:/opt/src/workbench:ro",
    ]


def test_defaults_and_refusals():
    pytest.importorskip("docker")
    from workbench.backends.docker import container_config

    cfg = container_config(_spec(), image="i", pkg_dir="/home/me/proj/workbench")
    hc = cfg["host_config"]
    assert hc["network_mode"] == "host"
    assert "device_requests" not in hc and "shm_size" not in hc
    assert hc["mem_limit"] == 4096 * MIB and hc["nano_cpus"] == 1_000_000_000
    # compiled bytecode comes from a cache the runtime fills; tasks only read it (no planted .pyc)
    cfg = container_config(_spec(), image="i", pycache="/home/me/.cache/workbench/pycache")
    assert cfg["host_config"]["binds"]["/home/me/.cache/workbench/pycache"]["mode"] == "ro"
    assert cfg["environment"]["PYTHONPYCACHEPREFIX"] == "/home/me/.cache/workbench/pycache"
    with pytest.raises(ConfigError, match="never a bridge"):
        container_config(_spec(), image="i", network="bridge")
    # an S3 datastore is not mounted
    spec = _spec()
    spec.datastore_url = "s3://bucket/prefix"
    assert "s3://bucket/prefix" not in container_config(spec, image="i")["host_config"]["binds"]


def test_exit_words():
    from workbench.backends.docker import classify_exit, owner_alive, owner_id, parse_usage

    oom = classify_exit({"ExitCode": 137, "OOMKilled": True}, None, 64, {})
    assert (oom.status, oom.reason) == ("oom", "killed: out of memory (limit 64M)")
    assert oom.usage["peak_memory_mib"] == 64.0
    assert classify_exit({"ExitCode": 0}, None, 64, {}).status == "succeeded"
    assert classify_exit({"ExitCode": 2}, None, 64, {}).reason == "exited with code 2"
    assert classify_exit({"ExitCode": 3}, None, 64, {}).status == "timeout"
    assert "SIGKILL" in classify_exit({"ExitCode": 137}, None, 64, {}).reason
    assert classify_exit({"ExitCode": 137}, "timed out after 5s", 64, {}, timeout=True).status == "timeout"
    assert classify_exit({"ExitCode": 137}, "cancelled", 64, {}).status == "cancelled"
    assert parse_usage("\x1eworkbench-usage 10485760 2500000000") == {"peak_memory_mib": 10.0, "cpu_seconds": 2.5}
    assert owner_alive(owner_id()) is True
    host = owner_id().rsplit(":", 2)[0]
    assert owner_alive(f"{host}:999999999:1") is False
    assert owner_alive("some-other-host:1:1") is None


def test_engine_unreachable_is_one_clear_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("docker")
    from workbench.backends.docker import DockerBackend
    from workbench.cli import main

    dead = tmp_path / "dead.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{dead}")
    _write_project(tmp_path, "wbtest-dead", "workbench-base:bookworm")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EngineUnreachable, match="start-docker.sh") as info:
        DockerBackend(load_config(tmp_path)).check(StepSettings(backend="docker"))
    assert str(dead) in str(info.value) and "\n" not in str(info.value)
    code = main(["run", "flows/behaviour_flow.py:MixedFlow"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no Docker engine answers" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------- real engine


def test_parity_local_and_docker(project):
    params = {"alpha": "3", "name": "par"}
    local, *_ = run_flow(project, "flows/parity_flow.py", backend="local", params=params)
    docker_, events, *_ = run_flow(project, "flows/parity_flow.py", backend="docker", params=params)
    assert local.status == "succeeded", local.message
    assert docker_.status == "succeeded", docker_.message
    assert {e.backend for e in events if isinstance(e, ev.TaskStarted)} == {"docker"}
    a = artifacts_by_task(project, "ParityFlow", local.run_id)
    b = artifacts_by_task(project, "ParityFlow", docker_.run_id)
    assert len(a) == 11  # start, left, right, fan, spread, 4 x each, gather, end (keyed by foreach index)
    assert a == b
    assert count_containers(docker_client_or_skip(), {"workbench.run": docker_.run_id}) == 0


def test_mixed_run_per_workbench_toml(project):
    toml = project / "workbench.toml"
    toml.write_text(
        toml.read_text().replace('backend = "docker"', 'backend = "local"')
        + '\n[flows.MixedFlow.steps.boxed]\nbackend = "docker"\n'
    )
    result, events, *_ = run_flow(project, "flows/behaviour_flow.py:MixedFlow")
    assert result.status == "succeeded", result.message
    started = {e.step: e.backend for e in events if isinstance(e, ev.TaskStarted)}
    assert started == {"start": "local", "boxed": "docker", "end": "local"}
    ds = FlowDatastore(load_config(project).datastore_url, "MixedFlow")
    doc = ds.read_task(result.run_id, "boxed", ds.list_tasks(result.run_id, "boxed")[0])
    assert ds.load_artifact(doc["artifacts"]["in_container"]["sha"]) is True
    assert ds.load_artifact(doc["artifacts"]["where"]["sha"]) == ["start", "boxed"]
    end = ds.read_task(result.run_id, "end", ds.list_tasks(result.run_id, "end")[0])
    assert ds.load_artifact(end["artifacts"]["here_in_container"]["sha"]) is False


def test_logs_stream_live_and_usage_is_recorded(project, capsys):
    from workbench.cli import main

    seen: list = []
    result, events, timed, _ = run_flow(
        project, "flows/behaviour_flow.py:LiveFlow", on_event=lambda e: seen.append((time.time(), e))
    )
    assert result.status == "succeeded", result.message
    logs = [(t, e) for t, e in seen if isinstance(e, ev.LogLine) and "/start/" in e.pathspec]
    done = next(t for t, e in seen if isinstance(e, ev.TaskFinished) and e.step == "start")
    # each stream in order, kept apart (the engine copies the two pipes independently)
    assert [e.text for _, e in logs if e.stream == "stdout"] == ["first line", "second line"]
    assert [e.text for _, e in logs if e.stream == "stderr"] == ["to stderr"]
    first = next(t for t, e in logs if e.text == "first line")
    assert done - first > 1.5, "the first line arrived only when the task ended"
    # the files a task writes are the user's, the code runs from the project root
    ds = FlowDatastore(load_config(project).datastore_url, "LiveFlow")
    doc = ds.read_task(result.run_id, "start", ds.list_tasks(result.run_id, "start")[0])
    assert ds.load_artifact(doc["artifacts"]["uid"]["sha"]) == os.getuid()
    assert ds.load_artifact(doc["artifacts"]["cwd"]["sha"]) == str(project.resolve())
    log_lines = list(ds.read_log(result.run_id, "start", doc["task_id"]))
    assert any("first line" in str(x) for x in log_lines)
    assert not any("workbench-usage" in str(x) for x in log_lines)
    # usage: peak memory and cpu from the container's cgroup, shown by `workbench show --usage`
    usage = {d["step"]: d["usage"] for d in task_docs(project, "LiveFlow", result.run_id)}
    assert usage["start"]["peak_memory_mib"] > 1 and usage["start"]["cpu_seconds"] > 0
    assert usage["end"]["peak_memory_mib"] > 48  # the 48M string it built
    assert usage["end"]["peak_memory_mib"] > usage["start"]["peak_memory_mib"]
    capsys.readouterr()
    assert main(["show", "flows/behaviour_flow.py:LiveFlow", "--usage"]) == 0
    out = capsys.readouterr().out
    assert "measured on docker: peak memory" in out and "suggested: --memory" in out


def test_oom_is_reported_with_its_limit(project):
    result, events, *_ = run_flow(project, "flows/behaviour_flow.py:OomFlow")
    assert result.status == "failed"
    start = finished(events, "start")
    assert start.status == "oom"
    assert start.reason == "killed: out of memory (limit 64M)"
    doc = next(d for d in task_docs(project, "OomFlow", result.run_id) if d["step"] == "start")
    assert doc["status"] == "oom" and doc["usage"]["peak_memory_mib"] >= 60
    assert count_containers(docker_client_or_skip(), {"workbench.run": result.run_id}) == 0


def test_hard_timeout_kills_the_container(project, monkeypatch):
    import workbench.runtime

    monkeypatch.setattr(workbench.runtime, "HARD_TIMEOUT_GRACE", 1.0)
    t0 = time.time()
    result, events, *_ = run_flow(project, "flows/behaviour_flow.py:StubbornFlow")
    assert time.time() - t0 < 20
    start = finished(events, "start")
    assert (start.status, start.reason) == ("timeout", "timed out after 2s")
    assert count_containers(docker_client_or_skip(), {"workbench.run": result.run_id}) == 0


def _cli(args: list[str], cwd: Path) -> subprocess.Popen:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), PYTHONUNBUFFERED="1"
    )
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from workbench.cli import main; sys.exit(main())", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(proc: subprocess.Popen, text: str, count: int, timeout: float = 60) -> list[str]:
    """Read the CLI's output until ``text`` was seen ``count`` times (bounded by a reader thread)."""
    lines: list[str] = []
    seen = threading.Event()

    def reader():
        for line in proc.stdout:
            lines.append(line)
            if sum(text in x for x in lines) >= count:
                seen.set()

    threading.Thread(target=reader, daemon=True).start()
    assert seen.wait(timeout), f"never saw {text!r} x{count}: {''.join(lines)[-2000:]}"
    return lines


def test_ctrl_c_removes_the_runs_containers(project, engine):
    client, _ = engine
    name = load_config(project).model.project.name
    proc = _cli(["run", "flows/behaviour_flow.py:CancelFlow", "--max-workers", "2"], project)
    try:
        _wait_for(proc, "waiting", 2)
        assert count_containers(client, {"workbench.project": name}) == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        proc.kill()
    assert count_containers(client, {"workbench.project": name}) == 0


def test_a_new_run_removes_what_a_crashed_run_left_behind(project, engine):
    client, _ = engine
    name = load_config(project).model.project.name
    proc = _cli(["run", "flows/behaviour_flow.py:CancelFlow", "--max-workers", "2"], project)
    try:
        _wait_for(proc, "waiting", 2)
    finally:
        proc.kill()  # SIGKILL: no cleanup at all
        proc.wait(10)
    assert count_containers(client, {"workbench.project": name}) == 2
    result, events, *_ = run_flow(project, "flows/behaviour_flow.py:MixedFlow")
    assert result.status == "succeeded", result.message
    assert count_containers(client, {"workbench.project": name}) == 0
    assert any(isinstance(e, ev.RunWarning) and "removed 2 container(s)" in e.message for e in events)


def test_image_not_found_fails_the_task_in_words(project):
    toml = project / "workbench.toml"
    toml.write_text(toml.read_text().replace('image = "', 'image = "workbench-missing-', 1))
    result, events, *_ = run_flow(project, "flows/behaviour_flow.py:MixedFlow")
    assert result.status == "failed"
    start = finished(events, "start")
    assert start.status == "failed"
    assert "image workbench-missing-" in start.reason and "not found" in start.reason
    assert "workbench image build" in start.reason
    # a missing image is pulled once per run (here no registry answers: it is reported, not retried)
    assert "not pulled" in start.reason
    assert sum(isinstance(e, ev.RunWarning) and "pulling it" in e.message for e in events) == 1


def test_gpu_request_on_an_engine_without_gpus_fails_in_words(project, engine):
    client, _ = engine
    if any("nvidia" in r for r in (client.info().get("Runtimes") or {})):
        pytest.skip("this engine may have GPUs")
    toml = project / "workbench.toml"
    toml.write_text(toml.read_text() + "\n[flows.MixedFlow.steps.start]\ngpu = 1\n")
    result, events, *_ = run_flow(project, "flows/behaviour_flow.py:MixedFlow")
    start = finished(events, "start")
    assert result.status == "failed" and start.status == "failed"
    assert start.reason.startswith("docker could not start the container")
    assert "gpu=1" in start.reason
    assert count_containers(client, {"workbench.run": result.run_id}) == 0


def test_check_refuses_more_than_the_engine_has(project):
    from workbench.backends.docker import DockerBackend

    backend = DockerBackend(load_config(project))
    with pytest.raises(ResourceError, match=r"cpu=4096 but the Docker engine has \d+ CPUs"):
        backend.check(StepSettings(backend="docker", cpu=4096))
    with pytest.raises(ResourceError, match=r"memory=1024G but the Docker engine has"):
        backend.check(StepSettings(backend="docker", memory=1024 * 1024))
    backend.check(StepSettings(backend="docker", cpu=1, memory=128))


def test_new_run_reaps_containers_of_a_dead_run_only(project, engine):
    client, image = engine
    from workbench.backends.docker import owner_id

    host = owner_id().rsplit(":", 2)[0]
    name = load_config(project).model.project.name
    with open("/proc/1/stat") as f:
        live = f"{host}:1:{f.read().rsplit(')', 1)[1].split()[19]}"
    dead = client.containers.create(
        image, ["sleep", "60"], network_mode="none", labels={"workbench.owner": f"{host}:999999999:1", "wbtest": name}
    )
    alive = client.containers.create(
        image, ["sleep", "60"], network_mode="none", labels={"workbench.owner": live, "wbtest": name}
    )
    result, events, *_ = run_flow(project, "flows/behaviour_flow.py:MixedFlow")
    assert result.status == "succeeded", result.message
    ids = {c.id for c in client.containers.list(all=True, filters={"label": f"wbtest={name}"})}
    assert dead.id not in ids and alive.id in ids
    assert any(isinstance(e, ev.RunWarning) and "left behind" in e.message for e in events)


def test_image_build_once_then_up_to_date(project, engine, capsys):
    client, image = engine
    from workbench.cli import main

    (project / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["workbench>=0.1"]\n')
    assert main(["image", "build"]) == 0
    out = capsys.readouterr().out
    assert "built workbench-wbtest-" in out
    tag = next(w for w in out.split() if w.startswith("workbench-wbtest-"))
    try:
        labels = client.images.get(tag).labels
        assert len(labels["workbench.inputs"]) == 64
        assert main(["image", "build"]) == 0
        assert f"{tag} is up to date" in capsys.readouterr().out
        # the built image runs tasks
        toml = project / "workbench.toml"
        toml.write_text(toml.read_text().replace(f'image = "{image}"', f'image = "{tag}"'))
        result, *_ = run_flow(project, "flows/behaviour_flow.py:MixedFlow")
        assert result.status == "succeeded", result.message
    finally:
        client.images.remove(tag, force=True)


def test_requirements_are_read_and_workbench_is_not_installed(tmp_path):
    from workbench.image import default_tag, inputs_hash, project_requirements

    assert project_requirements(tmp_path) == ([], "no requirements")
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["numpy>=1.24", "Workbench[x]", "rich"]\n')
    assert project_requirements(tmp_path)[0] == ["numpy>=1.24", "rich"]
    (tmp_path / "requirements.txt").write_text("# pinned\npandas==2.0  # data\n\nworkbench\n")
    assert project_requirements(tmp_path) == (["pandas==2.0"], "requirements.txt")
    h1, h2 = inputs_hash("T", "sha:1", ["a"]), inputs_hash("T", "sha:1", ["b"])
    assert h1 != h2 and h1 == inputs_hash("T", "sha:1", ["a"])
    assert default_tag("My Project", h1) == f"workbench-my-project:{h1[:12]}"
