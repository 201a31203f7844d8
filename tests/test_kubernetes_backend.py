"""The Kubernetes backend end to end: the Kubernetes API server emulator (tests/k8s_emulator, pods run as real
containers on the local Docker engine), moto's S3 as the datastore, and the workbench runtime. Every wait is
bounded; failure reasons are asserted in words. OOM with the memory limit in words, cancel leaving no Job, pod or
container, live logs and on_exit once per attempt are checked for every backend by the contract suite
(tests/contract); this file keeps what is Kubernetes' own."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.support.engine import base_image, docker_client_or_skip  # noqa: E402
from tests.support.moto_server import aws, moto_server  # noqa: E402,F401  (fixtures)
from tests.support.remote_projects import fast_kube_polling  # noqa: E402
from workbench.config import ProjectConfig, load_config  # noqa: E402
from workbench.settings import StepSettings  # noqa: E402

pytest.importorskip("kubernetes")
pytest.importorskip("boto3")

FLOW = textwrap.dedent("""
    import os
    import sys
    import time
    from workbench import FlowSpec, step

    class KubeDemoFlow(FlowSpec):
        @step
        def start(self):
            self.x = 21
            self.where_start = os.environ.get("WORKBENCH_KUBERNETES_POD", "local")
            self.next(self.train)

        @step
        def train(self):
            print("hello from kubernetes", self.x)
            print("to stderr", file=sys.stderr)
            mode = os.environ.get("DEMO_MODE", "ok")
            if mode == "sleep":
                sys.stdout.flush()
                time.sleep(120)
            if mode == "deaf":  # ignores the task's own timer: only the Job's activeDeadlineSeconds stops it
                import signal
                signal.signal(signal.SIGALRM, signal.SIG_IGN)
                sys.stdout.flush()
                time.sleep(120)
            self.y = self.x * 2
            self.where_train = os.environ.get("WORKBENCH_KUBERNETES_POD", "local")
            self.from_template = os.environ.get("FROM_TEMPLATE")
            self.next(self.end)

        @step
        def end(self):
            self.z = self.y + 1
""").lstrip()


def _kube_emulator(capacity: dict, docker_client):
    from tests.k8s_emulator.server import KubeEmulator

    return KubeEmulator(
        node_capacity=capacity, docker_client=docker_client, grace_period_cap=2.0, backoff_seconds=0.5
    ).start()


@pytest.fixture
def kube(tmp_path, monkeypatch):
    """A started emulator (2 CPUs, 4Gi, no GPU) and its kubeconfig; at teardown nothing of it may be left."""
    client = docker_client_or_skip()
    image = base_image(client)
    emu = _kube_emulator({"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "0"}, client)
    fast_kube_polling(monkeypatch, "0.2")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    try:
        yield SimpleNamespace(
            emu=emu, kubeconfig=emu.write_kubeconfig(tmp_path / "kubeconfig"), image=image, docker=client
        )
    finally:
        emu.stop()
    assert emu.containers() == []


TEMPLATE = textwrap.dedent("""
    # a user's Job template ([kubernetes] template): the base that workbench fills in
    apiVersion: batch/v1
    kind: Job
    metadata:
      annotations: {from-template: "yes"}
    spec:
      template:
        spec:
          containers:
            - name: task
              # dummy credentials for moto only (the cluster's side, not a step's env: a step env that looks
              # like a secret is warned about and redacted); on a real cluster use IRSA or [kubernetes] secrets
              env: [{name: FROM_TEMPLATE, value: "yes"}, {name: AWS_ACCESS_KEY_ID, value: testing},
                    {name: AWS_SECRET_ACCESS_KEY, value: testing}]
""").lstrip()


@pytest.fixture(autouse=True)
def validated_manifests(monkeypatch):
    """Every Job the backend submits in these tests is checked against the official schema first."""
    kv = pytest.importorskip("kubernetes_validate")
    from workbench.backends.kubernetes import KubernetesBackend

    made = []
    original = KubernetesBackend.manifest_for

    def manifest_for(self, spec):
        manifest = original(self, spec)
        kv.validate(manifest, "1.31", strict=True)
        made.append(manifest)
        return manifest

    monkeypatch.setattr(KubernetesBackend, "manifest_for", manifest_for)
    return made


@pytest.fixture
def kube_project(aws, kube, tmp_path, monkeypatch):
    bucket = aws.bucket()
    (tmp_path / "job-template.yaml").write_text(TEMPLATE)
    import workbench.client

    monkeypatch.setattr(workbench.client, "_datastore_url", None)  # another test may have pointed it elsewhere

    def make(
        mode: str = "ok", memory: str = "512M", gpu: int = 0, image: str | None = None, extra: str = ""
    ) -> ProjectConfig:
        (tmp_path / "flows").mkdir(exist_ok=True)
        (tmp_path / "flows" / "kube_demo.py").write_text(FLOW)
        (tmp_path / ".gitignore").write_text(".workbench/\nkubeconfig\n")
        (tmp_path / "workbench.toml").write_text(
            textwrap.dedent(f'''
            [project]
            name = "kt"

            [datastore]
            root = "s3://{bucket}/wb"
            endpoint_url = "{aws.endpoint}"
            region = "us-east-1"

            [kubernetes]
            kubeconfig = "kubeconfig"
            image = "{image or kube.image}"
            namespace = "default"
            template = "job-template.yaml"

            [flows.KubeDemoFlow.steps.train]
            backend = "kubernetes"
            cpu = 1
            memory = "{memory}"
            gpu = {gpu}
            {extra}
            env = {{ DEMO_MODE = "{mode}" }}
        ''').lstrip()
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("WORKBENCH_DATASTORE", raising=False)
        monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
        return load_config(tmp_path)

    return make


def _run(config, events=None, runtime_hook=None):
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    graph = load_graph(str(config.root / "flows" / "kube_demo.py"))
    rt = Runtime(graph, config, sink=(events.append if events is not None else None))
    if runtime_hook:
        runtime_hook(rt)
    return rt, rt.run()


def _left_over(kube, timeout: float = 20.0):
    """(jobs, pods, containers) still there after up to ``timeout`` seconds."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=kube.kubeconfig, client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        deadline = time.time() + timeout
        while True:
            jobs = [j.metadata.name for j in batch.list_namespaced_job("default").items]
            pods = [p.metadata.name for p in core.list_namespaced_pod("default").items]
            containers = [c.name for c in kube.emu.containers()]
            if not (jobs or pods or containers) or time.time() > deadline:
                return jobs, pods, containers
            time.sleep(0.3)


def _log(rt, step="train", task="2"):
    return [text for _, _, text in rt.ds.read_log(rt.run_id, step, task)]


def _warnings(events):
    return [e.message for e in events if type(e).__name__ == "RunWarning"]


def test_end_to_end_local_kubernetes_local(kube_project, kube, validated_manifests):
    config = kube_project()
    events = []
    t0 = time.perf_counter()
    rt, result = _run(config, events)
    took = time.perf_counter() - t0
    task = rt.ds.read_task(rt.run_id, "train", "2")
    assert result.status == "succeeded", "\n".join([result.message, *_warnings(events), str(task), *_log(rt)])
    print(f"\nkubernetes end to end (local -> kubernetes -> local): {took:.1f}s")
    lines = _log(rt)
    assert "hello from kubernetes 21" in lines
    assert "to stderr" in lines  # Kubernetes merges stderr into the pod log
    assert any(type(e).__name__ == "LogLine" and e.text == "hello from kubernetes 21" for e in events)
    from workbench import Flow

    run = Flow("KubeDemoFlow").latest_run
    assert run.successful
    assert run["end"].task.data.z == 43
    assert run["train"].task.data.y == 42
    assert run["train"].task.data.where_train.startswith("wb-kubedemoflow-train-2-0-")  # ran in the pod
    assert run["start"].task.data.where_start == "local"
    assert run["train"].task.data.from_template == "yes"
    assert task["attempts"][-1]["usage"]["job"].startswith("wb-kubedemoflow-train-2-0-")
    assert _left_over(kube) == ([], [], [])
    assert len(validated_manifests) == 1
    assert validated_manifests[0]["metadata"]["annotations"] == {"from-template": "yes"}
    assert _warnings(events) == []


def test_gpu_request_on_a_node_without_gpus_is_reported_unschedulable(kube_project, kube, monkeypatch):
    monkeypatch.setenv("WORKBENCH_K8S_PENDING_TIMEOUT", "2")
    config = kube_project(gpu=1)
    events = []
    rt, result = _run(config, events)
    assert result.status == "failed"
    task = rt.ds.read_task(rt.run_id, "train", "2")
    assert task["status"] == "failed"
    print(f"\nreason: {task['reason']}\nwarning: {_warnings(events)}")
    assert "unschedulable: insufficient nvidia.com/gpu: requested 1" in task["reason"], task["reason"]
    assert "0/1 nodes are available" in task["reason"]
    warned = [w for w in _warnings(events) if "cannot start" in w]
    assert len(warned) == 1 and "insufficient nvidia.com/gpu: requested 1" in warned[0]
    assert rt.ds.read_task(rt.run_id, "end", "3") is None
    assert _left_over(kube) == ([], [], [])


def test_missing_image_is_reported_with_its_name(kube_project, kube, monkeypatch):
    monkeypatch.setenv("WORKBENCH_K8S_PENDING_TIMEOUT", "1.5")
    config = kube_project(image="no-such-image:1")
    rt, result = _run(config)
    assert result.status == "failed"
    reason = rt.ds.read_task(rt.run_id, "train", "2")["reason"]
    print(f"\nreason: {reason}")
    assert "image no-such-image:1 cannot be pulled" in reason and "Image" in reason, reason
    assert _left_over(kube) == ([], [], [])


def test_capacity_check_and_unreachable_api(tmp_path):
    from workbench.backends.kubernetes import KubernetesBackend
    from workbench.errors import ConfigError, EngineUnreachable

    client = docker_client_or_skip()
    emu = _kube_emulator({"cpu": "8", "memory": "30Gi", "nvidia.com/gpu": "2"}, client)
    try:
        path = emu.write_kubeconfig(tmp_path / "kubeconfig")
        config = ProjectConfig(root=tmp_path)
        config.model.kubernetes.kubeconfig = "kubeconfig"
        config.model.kubernetes.image = "img"
        backend = KubernetesBackend(config)
        cap = backend.capacity()
        assert (cap.cpu, cap.memory, cap.gpu) == (8.0, 30 * 1024, 2)
        assert emu.url in cap.source
        backend.check(StepSettings(backend="kubernetes", cpu=1, memory=512))
        url = emu.url
        # without [kubernetes] kubeconfig, KUBECONFIG is read
        plain = ProjectConfig(root=tmp_path)
        plain.model.kubernetes.image = "img"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("KUBECONFIG", path)
            assert KubernetesBackend(plain).capacity().gpu == 2
    finally:
        emu.stop()
    # the API server gone: one line naming its URL, and capacity unknown
    backend = KubernetesBackend(config)
    with pytest.raises(EngineUnreachable) as err:
        backend.check(StepSettings(backend="kubernetes"))
    msg = str(err.value)
    assert url in msg and "kubeconfig" in msg and "\n" not in msg
    assert backend.capacity() is None
    # no image, no kubeconfig: clear configuration errors
    config.model.kubernetes.image = None
    with pytest.raises(ConfigError, match="needs an image"):
        KubernetesBackend(config).check(StepSettings(backend="kubernetes"))
    config.model.kubernetes.image = "img"
    config.model.kubernetes.kubeconfig = str(Path(path).with_name("nope"))
    with pytest.raises(ConfigError, match="does not exist"):
        KubernetesBackend(config).check(StepSettings(backend="kubernetes"))


def test_deadline_exceeded_is_a_timeout(kube_project, kube, monkeypatch):
    import workbench.backends.kubernetes as k8s

    monkeypatch.setattr(k8s, "DEADLINE_GRACE", 1)
    config = kube_project(mode="deaf", extra="timeout = 1")
    t0 = time.time()
    rt, result = _run(config)
    assert result.status == "failed" and time.time() - t0 < 25  # the runtime's own backstop is 31 s away
    task = rt.ds.read_task(rt.run_id, "train", "2")
    assert task["status"] == "timeout", task
    assert "DeadlineExceeded" in task["reason"] and "1s timeout + 1s grace" in task["reason"]
    assert _left_over(kube) == ([], [], [])


# ---------------------------------------------------------------------------------------- faults, injected


def _fake_task(settings=None):
    from workbench.backends.base import TaskSpec
    from workbench.backends.k8s_manifest import JobOptions
    from workbench.backends.kubernetes import _Task

    s = settings or StepSettings(backend="kubernetes", cpu=2, memory=1024, timeout=60)
    spec = TaskSpec(
        flow="F",
        run_id="1",
        step="train",
        task_id="2",
        attempt=0,
        settings=s,
        datastore_url="s3://b",
        project_root="/p",
        flow_file="f.py",
        class_name="F",
    )
    return _Task(spec, lambda *a: None, lambda e: None, "wb-f-train-2-0-x", "default", JobOptions())


def _pod(phase="Failed", reason=None, message=None, terminated=None, waiting=None, node="node-1", conditions=None):
    from kubernetes import client as k

    state = k.V1ContainerState(
        terminated=k.V1ContainerStateTerminated(**terminated) if terminated else None,
        waiting=k.V1ContainerStateWaiting(**waiting) if waiting else None,
    )
    cs = k.V1ContainerStatus(name="task", image="img:1", image_id="", ready=False, restart_count=0, state=state)
    return k.V1Pod(
        metadata=k.V1ObjectMeta(name="wb-f-train-2-0-x-abcde", namespace="default"),
        spec=k.V1PodSpec(containers=[], node_name=node),
        status=k.V1PodStatus(
            phase=phase, reason=reason, message=message, container_statuses=[cs], conditions=conditions
        ),
    )


def _condition(ctype, reason="", message=""):
    from kubernetes import client as k

    return k.V1JobCondition(type=ctype, status="True", reason=reason, message=message)


def test_reasons_in_words_from_job_and_pod_status():
    from workbench.backends.kubernetes import KubernetesBackend

    backend = KubernetesBackend(ProjectConfig(root=Path("/tmp")))
    task = _fake_task()
    task.pod = _pod()

    evicted = backend._exit_of(task, None, _pod(reason="Evicted", message="The node was low on resource: memory."))
    assert evicted.status == "failed" and evicted.reason.startswith("evicted from node node-1: The node was low")
    deadline = backend._exit_of(
        task,
        _condition("Failed", "DeadlineExceeded", "Job was active longer"),
        _pod(terminated={"exit_code": 143, "reason": "Error"}),
    )
    assert deadline.status == "timeout" and "DeadlineExceeded" in deadline.reason
    oom = backend._exit_of(
        task,
        _condition("FailureTarget", "PodFailurePolicy"),
        _pod(terminated={"exit_code": 137, "reason": "OOMKilled"}),
    )
    assert oom.status == "oom" and "memory limit of 1Gi" in oom.reason
    assert oom.ended_at is None  # the pod did not say when
    import datetime as dt

    at = dt.datetime(2026, 12, 3, 10, 0, 5, tzinfo=dt.timezone.utc)
    ended = backend._exit_of(
        task,
        _condition("FailureTarget", "PodFailurePolicy"),
        _pod(terminated={"exit_code": 137, "reason": "OOMKilled", "finished_at": at}),
    )
    assert ended.ended_at == at.timestamp()  # when the container ended: a gang's culprit is chosen by time
    crash = backend._exit_of(
        task, _condition("Failed", "BackoffLimitExceeded"), _pod(terminated={"exit_code": 7, "reason": "Error"})
    )
    assert (crash.status, crash.exit_code, crash.reason) == ("failed", 7, "exited with code 7 (Error)")
    own_timer = backend._exit_of(
        task, _condition("Failed", "BackoffLimitExceeded"), _pod(terminated={"exit_code": 3, "reason": "Error"})
    )
    assert own_timer.status == "timeout"
    ok = backend._exit_of(task, _condition("Complete"), _pod("Succeeded", terminated={"exit_code": 0}))
    assert ok.status == "succeeded" and ok.usage["pod"] == "wb-f-train-2-0-x-abcde" and ok.usage["node"] == "node-1"
    # cancel and timeout requested by the runtime
    task.requested, task.requested_timeout = "timed out after 60s", True
    assert backend._requested_exit(task).status == "timeout"
    task.requested, task.requested_timeout = "cancelled", False
    assert backend._requested_exit(task).status == "cancelled"


def test_stuck_pods_are_explained():
    from workbench.backends.kubernetes import KubernetesBackend, unschedulable_reason

    backend = KubernetesBackend(ProjectConfig(root=Path("/tmp")))
    backend._event_message = lambda pod, reason, prefix="": None  # no API: the pod's own status is used
    task = _fake_task()
    pulling = _pod("Pending", waiting={"reason": "ImagePullBackOff", "message": 'Back-off pulling image "img:1"'})
    assert backend._stuck_reason(task, pulling).startswith("image img:1 cannot be pulled (ImagePullBackOff)")
    config = _pod("Pending", waiting={"reason": "CreateContainerConfigError", "message": 'secret "aws" not found'})
    assert backend._stuck_reason(task, config) == (
        'the container cannot be created (CreateContainerConfigError): secret "aws" not found'
    )
    assert backend._stuck_reason(task, _pod("Pending", waiting={"reason": "ContainerCreating"})) is None
    s = StepSettings(backend="kubernetes", cpu=64, memory=512 * 1024, gpu=2)
    msg = (
        "0/3 nodes are available: 1 Insufficient cpu, 2 Insufficient memory, 3 Insufficient nvidia.com/gpu. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    words = unschedulable_reason(msg, s, "nvidia", {})
    assert words.startswith(
        "unschedulable: insufficient cpu: requested 64; insufficient memory: requested 512Gi; "
        "insufficient nvidia.com/gpu: requested 2 (scheduler: 0/3 nodes"
    )
    sel = unschedulable_reason(
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.", s, "nvidia", {"pool": "gpu"}
    )
    assert "no node matches the node selector pool=gpu" in sel


def test_a_pod_that_fits_an_empty_node_waits_for_room_instead_of_failing(monkeypatch):
    from kubernetes import client as k

    from workbench.backends.k8s_manifest import JobOptions
    from workbench.backends.kubernetes import KubernetesBackend

    monkeypatch.setenv("WORKBENCH_K8S_PENDING_TIMEOUT", "0")
    backend = KubernetesBackend(ProjectConfig(root=Path("/tmp")))
    backend._event_message = lambda pod, reason, prefix="": None
    backend._delete_job = lambda name, namespace: None
    warnings = []
    backend._ctx = SimpleNamespace(warn=warnings.append)
    backend._nodes = (time.time(), [({"pool": "cpu"}, {"cpu": 4.0, "memory": 16.0 * 2**30, "nvidia.com/gpu": 0.0})])
    assert backend.fits_some_node(StepSettings(cpu=4, memory=8192), JobOptions()) is True
    assert backend.fits_some_node(StepSettings(cpu=4, memory=8192, gpu=1), JobOptions()) is False
    assert backend.fits_some_node(StepSettings(cpu=1, memory=1024), JobOptions(node_selector={"pool": "gpu"})) is False

    def unschedulable(what):
        cond = k.V1PodCondition(
            type="PodScheduled",
            status="False",
            reason="Unschedulable",
            message=f"0/1 nodes are available: 1 Insufficient {what}.",
        )
        return _pod("Pending", waiting={"reason": "ContainerCreating"}, conditions=[cond], node=None)

    job = k.V1Job(metadata=k.V1ObjectMeta(name="wb-f-train-2-0-x"), status=k.V1JobStatus())
    queued = _fake_task(StepSettings(backend="kubernetes", cpu=2, memory=1024))
    for _ in range(3):
        backend._update(queued, job, [unschedulable("cpu")])
    assert queued.outcome is None
    assert len(warnings) == 1 and "waits for room on the cluster" in warnings[0]
    impossible = _fake_task(StepSettings(backend="kubernetes", cpu=1, memory=1024, gpu=1))
    backend._update(impossible, job, [unschedulable("nvidia.com/gpu")])
    assert impossible.outcome.status == "failed"
    assert impossible.outcome.reason.startswith("unschedulable: insufficient nvidia.com/gpu: requested 1")
    assert len(warnings) == 2 and "cannot start" in warnings[1]


FAN_FLOW = textwrap.dedent("""
    import time
    from workbench import FlowSpec, step

    class KubeFanFlow(FlowSpec):
        @step
        def start(self):
            self.items = [1, 2, 3]
            self.next(self.work, foreach="items")

        @step
        def work(self):
            time.sleep(2)
            print("item", self.input)
            self.out = self.input * 10
            self.next(self.join)

        @step
        def join(self, inputs):
            self.total = sum(i.out for i in inputs)
            self.next(self.end)

        @step
        def end(self):
            pass
""").lstrip()


def test_a_foreach_wider_than_the_cluster_queues_instead_of_failing(kube_project, kube, tmp_path, monkeypatch):
    """3 pods of 1 CPU on a 2-CPU node: the third is Unschedulable (Insufficient cpu) until one ends, and must
    wait for room, not fail after the (here 1 s) pending timeout."""
    monkeypatch.setenv("WORKBENCH_K8S_PENDING_TIMEOUT", "1")
    kube_project()
    (tmp_path / "flows" / "kube_fan.py").write_text(FAN_FLOW)
    with open(tmp_path / "workbench.toml", "a") as fh:
        fh.write(
            '\n[flows.KubeFanFlow.steps.work]\nbackend = "kubernetes"\ncpu = 1\nmemory = "256M"\n'
            'env = { AWS_ACCESS_KEY_ID = "testing", AWS_SECRET_ACCESS_KEY = "testing" }\n'
        )
    config = load_config(tmp_path)
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    events = []
    rt = Runtime(load_graph(str(tmp_path / "flows" / "kube_fan.py")), config, sink=events.append)
    result = rt.run()
    assert result.status == "succeeded", (result.message, _warnings(events))
    from workbench import Flow

    assert Flow("KubeFanFlow").latest_run["join"].task.data.total == 60
    assert any(
        "waits for room on the cluster" in w and "insufficient cpu: requested 1" in w for w in _warnings(events)
    ), _warnings(events)
    assert _left_over(kube) == ([], [], [])


def test_ctrl_c_mid_run_deletes_the_runs_jobs(kube_project, kube):
    """A KeyboardInterrupt in the runtime's loop (what Ctrl-C raises) ends the run as cancelled, and end_run
    leaves no Job, pod or container of it."""
    config = kube_project(mode="sleep")
    fired = []

    def sink(event):
        if type(event).__name__ == "LogLine" and event.text == "hello from kubernetes 21" and not fired:
            fired.append(time.time())
            raise KeyboardInterrupt

    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    rt = Runtime(load_graph(str(config.root / "flows" / "kube_demo.py")), config, sink=sink)
    result = rt.run()
    assert fired and result.status == "cancelled"
    assert time.time() - fired[0] < 30
    assert rt.ds.read_task(rt.run_id, "train", "2")["status"] == "cancelled"
    assert _left_over(kube, timeout=5) == ([], [], [])


def test_single_step_rerun_on_kubernetes_reproduces_the_full_runs_artifacts(kube_project, kube):
    """`workbench run FLOW --step train`: the step again, in a pod, with the inputs of the last run."""
    from workbench import Flow
    from workbench.graph import load_graph
    from workbench.runtime import Runtime

    config = kube_project()
    _, full = _run(config, [])
    assert full.status == "succeeded", full.message
    graph = load_graph(str(config.root / "flows" / "kube_demo.py"))
    single = Runtime(graph, config, origin_run_id=full.run_id, rerun_steps={"train"}, only_step="train").run()
    assert single.status == "succeeded", single.message
    a, b = Flow("KubeDemoFlow")[full.run_id], Flow("KubeDemoFlow")[single.run_id]
    assert b["train"].task.artifacts["y"]["sha"] == a["train"].task.artifacts["y"]["sha"]
    assert b["train"].task.data.where_train.startswith("wb-kubedemoflow-train-")
    assert "end" not in b and b.origin_run_id == full.run_id
    assert _left_over(kube) == ([], [], [])
