"""The Kubernetes API server emulator, driven only through the official `kubernetes` client.

Every container runs on the local Docker engine (image workbench-base:bookworm, network_mode=host).
Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from decimal import Decimal

import pytest

from .quantity import QuantityError, canonical, parse_quantity

K8S_VERSION = "1.31"


def wait_for(fn, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    """Poll fn() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def job_manifest(name: str, command: list[str], image: str, validate: bool = True, **extra) -> dict:
    """A batch/v1 Job manifest; checked against the official OpenAPI schema (kubernetes-validate)."""
    container = {"name": "main", "image": image, "command": command}
    container.update(extra.pop("container", {}))
    pod_spec = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": [container]}
    pod_spec.update(extra.pop("pod", {}))
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "k8s-emulator-test"}},
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"labels": {"app": "k8s-emulator-test"}}, "spec": pod_spec},
        },
    }
    manifest["spec"].update(extra)
    if validate:
        import kubernetes_validate

        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    return manifest


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def job_condition(kube, name: str, ctype: str):
    job = kube.batch.read_namespaced_job(name, kube.namespace)
    for cond in job.status.conditions or []:
        if cond.type == ctype and cond.status == "True":
            return cond
    return None


def job_pods(kube, name: str):
    return kube.core.list_namespaced_pod(kube.namespace, label_selector=f"job-name={name}").items


def only_pod(kube, name: str):
    pods = wait_for(lambda: job_pods(kube, name), 20, what=f"a pod of job {name}")
    assert len(pods) == 1
    return pods[0]


def containers_of(kube, pod_name: str):
    return kube.docker.containers.list(
        all=True, filters={"label": ["k8s-emulator=1", f"io.kubernetes.pod.name={pod_name}"]}
    )


# ----------------------------------------------------------------------------- no docker needed
@pytest.mark.parametrize(
    "text,value",
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("16Gi", Decimal(16 * 2**30)),
        ("512M", Decimal(512 * 10**6)),
        ("1e3", Decimal(1000)),
        ("1.5", Decimal("1.5")),
        ("100Ki", Decimal(102400)),
        ("1E", Decimal(10**18)),
        ("250u", Decimal("0.00025")),
        ("3k", Decimal(3000)),
        ("2E-3", Decimal("0.002")),
    ],
)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "given,served",
    [
        ("0.5", "500m"),
        ("1000m", "1"),
        ("1500m", "1500m"),
        ("2000", "2k"),
        ("1024Mi", "1Gi"),
        ("0.5Gi", "512Mi"),
        ("512M", "512M"),
        ("1e3", "1e3"),
        (2, "2"),
        ("16Gi", "16Gi"),
    ],
)
def test_quantities_are_served_canonical(given, served):
    assert canonical(given) == served


@pytest.mark.parametrize("text", ["", "Gi", "1.2.3", "5 Gi", "1ii", "abc"])
def test_parse_quantity_rejects(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_manifest_schema_check_catches_typos():
    import kubernetes_validate

    manifest = job_manifest("x", ["true"], "img")
    manifest["spec"]["template"]["spec"]["containers"][0]["comand"] = ["typo"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


# ----------------------------------------------------------------------------- API surface (no Docker needed)
def test_discovery_404_409_and_422(kube_api):
    kube = kube_api
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    assert client.VersionApi(kube.api).get_code().major == "1"
    groups = client.ApisApi(kube.api).get_api_versions()
    assert "batch" in [g.name for g in groups.groups]
    with pytest.raises(ApiException) as err:
        kube.batch.read_namespaced_job("no-such-job", kube.namespace)
    assert err.value.status == 404
    status = json.loads(err.value.body)
    assert status["kind"] == "Status" and status["reason"] == "NotFound" and status["code"] == 404
    assert status["message"] == 'jobs.batch "no-such-job" not found'
    with pytest.raises(ApiException) as err:
        kube.core.read_namespaced_pod_log("no-such-pod", kube.namespace)
    assert err.value.status == 404

    name = unique("dup")
    manifest = job_manifest(name, ["true"], kube.image)
    created = kube.batch.create_namespaced_job(kube.namespace, manifest)
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": created.metadata.uid}
    with pytest.raises(ApiException) as err:
        kube.batch.create_namespaced_job(kube.namespace, manifest)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"

    bad = job_manifest(unique("bad"), ["true"], kube.image)
    del bad["spec"]["template"]["spec"]["restartPolicy"]  # defaults to Always, which a Job refuses
    with pytest.raises(ApiException) as err:
        kube.batch.create_namespaced_job(kube.namespace, bad)
    body = json.loads(err.value.body)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in body["message"]

    listed = kube.batch.list_namespaced_job(kube.namespace, label_selector="app=k8s-emulator-test")
    assert [j.metadata.name for j in listed.items] == [name]
    assert kube.batch.list_namespaced_job(kube.namespace, label_selector="app in (other,k8s-emulator-test)").items
    assert not kube.batch.list_namespaced_job(kube.namespace, label_selector="app!=k8s-emulator-test").items
    only_pod(kube, name)
    status = kube.batch.delete_namespaced_job(name, kube.namespace, propagation_policy="Background")
    assert status["status"] == "Success" and status["details"]["name"] == name  # this client returns a dict
    wait_for(lambda: not job_pods(kube, name), 20, what="pods garbage-collected")


def test_default_job_delete_orphans_pods_with_warning(kube_api):
    kube = kube_api
    name = unique("orphan")
    kube.batch.create_namespaced_job(kube.namespace, job_manifest(name, ["true"], kube.image))
    pod = only_pod(kube, name)
    _, code, headers = kube.batch.delete_namespaced_job_with_http_info(name, kube.namespace)
    assert code == 200 and "child pods are preserved by default" in headers["Warning"]
    wait_for(lambda: not kube.batch.list_namespaced_job(kube.namespace).items, 10, what="job deleted")
    pod = kube.core.read_namespaced_pod(pod.metadata.name, kube.namespace)
    assert pod.metadata.owner_references is None  # batch/v1 default policy: Orphan
    kube.core.delete_namespaced_pod(pod.metadata.name, kube.namespace, grace_period_seconds=0)
    assert not kube.core.list_namespaced_pod(kube.namespace).items


def test_list_pagination_and_too_old_watch(kube_api):
    import collections

    from kubernetes import watch
    from kubernetes.client.rest import ApiException

    kube = kube_api
    for i in range(3):
        kube.core.create_namespace({"metadata": {"name": f"ns-{i}"}})
    page = kube.core.list_namespace(limit=2)
    assert len(page.items) == 2 and page.metadata._continue and page.metadata.remaining_item_count == 5
    rest = kube.core.list_namespace(limit=10, _continue=page.metadata._continue)
    names = [n.metadata.name for n in page.items + rest.items]
    assert len(names) == 7 and {"default", "ns-0", "ns-1", "ns-2"} <= set(names)
    # an expired resourceVersion answers a watch with an ERROR event carrying a 410 Status
    kube.emulator.store.history = collections.deque(list(kube.emulator.store.history)[-3:], maxlen=3)
    for i in range(3, 8):
        kube.core.create_namespace({"metadata": {"name": f"ns-{i}"}})
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(kube.core.list_namespace, resource_version="1", timeout_seconds=2):
            pass
    assert err.value.status == 410 and "Expired" in err.value.reason


# ----------------------------------------------------------------------------- jobs on docker
def test_job_completes_logs_follow_live(kube):
    from kubernetes import watch

    name = unique("echo")
    script = "echo line-1; sleep 0.3; echo to-stderr >&2; sleep 3; echo line-2; echo line-3"
    created = kube.batch.create_namespaced_job(kube.namespace, job_manifest(name, ["sh", "-c", script], kube.image))
    pod = only_pod(kube, name)
    labels = pod.metadata.labels
    assert labels["job-name"] == name and labels["batch.kubernetes.io/job-name"] == name
    assert labels["controller-uid"] == created.metadata.uid
    assert pod.metadata.owner_references[0].kind == "Job" and pod.metadata.owner_references[0].controller
    assert pod.metadata.name.startswith(name + "-") and len(pod.metadata.name) == len(name) + 6
    for selector in (f"batch.kubernetes.io/job-name={name}", f"controller-uid={created.metadata.uid}"):
        assert [
            p.metadata.name for p in kube.core.list_namespaced_pod(kube.namespace, label_selector=selector).items
        ] == [pod.metadata.name]

    pod_name = pod.metadata.name
    wait_for(
        lambda: kube.core.read_namespaced_pod(pod_name, kube.namespace).status.phase == "Running",
        30,
        what="pod Running",
    )
    t0 = time.monotonic()
    resp = kube.core.read_namespaced_pod_log(
        pod_name, kube.namespace, follow=True, _preload_content=False, _request_timeout=30
    )
    seen = b""
    first_line_at = None
    for chunk in resp.stream(amt=None, decode_content=False):
        seen += chunk
        if first_line_at is None and b"line-1\n" in seen:
            first_line_at = time.monotonic() - t0
            live = kube.core.read_namespaced_pod(pod_name, kube.namespace)
            assert live.status.phase == "Running", "the first line must arrive while the container still runs"
            assert live.status.container_statuses[0].state.running is not None
    resp.release_conn()
    assert seen.decode() == "line-1\nto-stderr\nline-2\nline-3\n"
    assert first_line_at is not None and first_line_at < 2.5

    events = []
    w = watch.Watch()
    for ev in w.stream(
        kube.batch.list_namespaced_job, kube.namespace, field_selector=f"metadata.name={name}", timeout_seconds=30
    ):
        events.append(ev["type"])
        if any(c.type == "Complete" for c in ev["object"].status.conditions or []):
            w.stop()
    assert events[0] == "ADDED"
    job = kube.batch.read_namespaced_job_status(name, kube.namespace)
    assert job.status.succeeded == 1 and not job.status.failed and not job.status.active
    assert job.status.start_time and job.status.completion_time
    pod = kube.core.read_namespaced_pod(pod_name, kube.namespace)
    assert pod.status.phase == "Succeeded"
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 0 and term.reason == "Completed" and term.started_at <= term.finished_at
    assert kube.core.read_namespaced_pod_log(pod_name, kube.namespace) == "line-1\nto-stderr\nline-2\nline-3\n"
    assert kube.core.read_namespaced_pod_log(pod_name, kube.namespace, tail_lines=1) == "line-3\n"
    stamped = kube.core.read_namespaced_pod_log(pod_name, kube.namespace, timestamps=True, container="main")
    assert stamped.splitlines()[0].split(" ", 1)[1] == "line-1" and stamped.startswith("20")
    reasons = [
        e.reason
        for e in kube.core.list_namespaced_event(kube.namespace, field_selector=f"involvedObject.name={pod_name}").items
    ]
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(reasons)
    lines = list(watch.Watch().stream(kube.core.read_namespaced_pod_log, pod_name, kube.namespace, follow=True))
    assert lines == ["line-1", "to-stderr", "line-2", "line-3"]


def test_failing_command_fails_job(kube):
    name = unique("fail")
    kube.batch.create_namespaced_job(kube.namespace, job_manifest(name, ["sh", "-c", "echo boom; exit 3"], kube.image))
    cond = wait_for(lambda: job_condition(kube, name, "Failed"), 30, what="job Failed")
    assert cond.reason == "BackoffLimitExceeded"
    job = kube.batch.read_namespaced_job(name, kube.namespace)
    assert job.status.failed == 1 and not job.status.succeeded and job.status.completion_time is None
    pod = only_pod(kube, name)  # backoffLimit 0: no retry
    assert pod.status.phase == "Failed"
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 3 and term.reason == "Error"
    assert kube.core.read_namespaced_pod_log(pod.metadata.name, kube.namespace) == "boom\n"


def test_memory_hog_is_oom_killed(kube):
    name = unique("oom")
    manifest = job_manifest(
        name,
        ["python3", "-c", "x = b'a' * (512 * 1024 * 1024); print(len(x))"],
        kube.image,
        container={"resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}},
    )
    kube.batch.create_namespaced_job(kube.namespace, manifest)
    wait_for(lambda: job_condition(kube, name, "Failed"), 60, what="job Failed")
    pod = only_pod(kube, name)
    assert pod.spec.containers[0].resources.requests == {"memory": "64Mi", "cpu": "500m"}  # defaulted from limits
    term = pod.status.container_statuses[0].state.terminated
    assert term.reason == "OOMKilled" and term.exit_code == 137
    assert pod.status.phase == "Failed"
    assert pod.status.qos_class == "Guaranteed"


def test_gpu_request_stays_pending(kube):
    name = unique("gpu")
    manifest = job_manifest(
        name, ["nvidia-smi"], kube.image, container={"resources": {"limits": {"nvidia.com/gpu": "1"}}}
    )
    kube.batch.create_namespaced_job(kube.namespace, manifest)
    pod = only_pod(kube, name)
    events = wait_for(
        lambda: (
            kube.core.list_namespaced_event(
                kube.namespace, field_selector=f"involvedObject.name={pod.metadata.name},reason=FailedScheduling"
            ).items
        ),
        20,
        what="FailedScheduling event",
    )
    assert events[0].type == "Warning" and events[0].source.component == "default-scheduler"
    assert events[0].message.startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    pod = kube.core.read_namespaced_pod(pod.metadata.name, kube.namespace)
    assert pod.status.phase == "Pending" and not pod.spec.node_name
    sched = [c for c in pod.status.conditions if c.type == "PodScheduled"][0]
    assert sched.status == "False" and sched.reason == "Unschedulable"
    assert not containers_of(kube, pod.metadata.name)
    assert kube.batch.read_namespaced_job(name, kube.namespace).status.active == 1


def test_missing_image_image_pull_backoff(kube):
    name = unique("noimg")
    image = "workbench-missing-image:does-not-exist"
    kube.batch.create_namespaced_job(kube.namespace, job_manifest(name, ["true"], image))
    pod = only_pod(kube, name)

    def waiting_reasons():
        p = kube.core.read_namespaced_pod(pod.metadata.name, kube.namespace)
        cs = (p.status.container_statuses or [None])[0]
        return cs.state.waiting if cs is not None and cs.state.waiting else None

    seen = set()

    def backoff():
        state = waiting_reasons()
        if state:
            seen.add(state.reason)
        return state if state and state.reason == "ImagePullBackOff" else None

    state = wait_for(backoff, 20, 0.05, what="ImagePullBackOff")
    assert image in state.message
    assert "ErrImagePull" in seen or any(
        e.message == "Error: ErrImagePull"
        for e in kube.core.list_namespaced_event(
            kube.namespace, field_selector=f"involvedObject.name={pod.metadata.name}"
        ).items
    )
    messages = [
        e.message
        for e in kube.core.list_namespaced_event(
            kube.namespace, field_selector=f"involvedObject.name={pod.metadata.name}"
        ).items
    ]
    assert any(m.startswith(f'Failed to pull image "{image}"') for m in messages)
    assert "Error: ImagePullBackOff" in messages
    assert kube.core.read_namespaced_pod(pod.metadata.name, kube.namespace).status.phase == "Pending"
    from kubernetes.client.rest import ApiException

    with pytest.raises(ApiException) as err:
        kube.core.read_namespaced_pod_log(pod.metadata.name, kube.namespace)
    assert err.value.status == 400 and "is waiting to start" in json.loads(err.value.body)["message"]


def test_active_deadline_exceeded(kube):
    name = unique("deadline")
    kube.batch.create_namespaced_job(
        kube.namespace, job_manifest(name, ["sleep", "60"], kube.image, activeDeadlineSeconds=2)
    )
    pod = only_pod(kube, name)
    t0 = time.monotonic()
    cond = wait_for(lambda: job_condition(kube, name, "Failed"), 30, what="job Failed")
    assert cond.reason == "DeadlineExceeded" and cond.message == "Job was active longer than specified deadline"
    assert time.monotonic() - t0 < 15
    job = kube.batch.read_namespaced_job(name, kube.namespace)
    assert job.status.failed == 1 and not job.status.active
    # The kubelet publishes the killed pod's terminal phase, then removes its containers and the pod; the job
    # controller may set Failed in between (so does Kubernetes: it waits only for pods that are not terminal).
    # What holds is that the pods it killed go away soon after, containers first.
    wait_for(lambda: not job_pods(kube, name), 10, what="the job controller to delete the pods it killed")
    assert not containers_of(kube, pod.metadata.name)


def test_pod_level_deadline_sets_status_reason(kube):
    name = unique("poddl")
    kube.batch.create_namespaced_job(
        kube.namespace, job_manifest(name, ["sleep", "60"], kube.image, pod={"activeDeadlineSeconds": 2})
    )
    pod = only_pod(kube, name)
    pod = wait_for(
        lambda: (lambda p: p if p.status.phase == "Failed" else None)(
            kube.core.read_namespaced_pod(pod.metadata.name, kube.namespace)
        ),
        30,
        what="pod Failed",
    )
    assert pod.status.reason == "DeadlineExceeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code in (137, 143)
    wait_for(lambda: job_condition(kube, name, "Failed"), 20, what="job Failed")


@pytest.mark.parametrize("policy", ["Foreground", "Background"])
def test_delete_job_with_propagation_removes_pods_and_containers(kube, policy):
    from kubernetes.client.rest import ApiException

    name = unique("del")
    kube.batch.create_namespaced_job(kube.namespace, job_manifest(name, ["sleep", "300"], kube.image))
    pod = only_pod(kube, name)
    wait_for(
        lambda: kube.core.read_namespaced_pod(pod.metadata.name, kube.namespace).status.phase == "Running",
        30,
        what="pod Running",
    )
    assert len(containers_of(kube, pod.metadata.name)) == 1
    kube.batch.delete_namespaced_job(name, kube.namespace, propagation_policy=policy)
    wait_for(lambda: not job_pods(kube, name), 20, what="pods deleted")
    wait_for(lambda: not containers_of(kube, pod.metadata.name), 20, what="docker containers removed")

    def job_gone():
        try:
            kube.batch.read_namespaced_job(name, kube.namespace)
            return False
        except ApiException as exc:
            return exc.status == 404

    wait_for(job_gone, 20, what="job deleted")
    assert (
        kube.docker.containers.list(
            all=True, filters={"label": ["k8s-emulator=1", f"k8s-emulator.instance={kube.emulator.instance}"]}
        )
        == []
    )


def test_watch_resumes_from_resource_version(kube):
    from kubernetes import watch

    rv = kube.core.list_namespaced_pod(kube.namespace).metadata.resource_version
    name = unique("watch")
    kube.batch.create_namespaced_job(
        kube.namespace, job_manifest(name, ["true"], kube.image, ttlSecondsAfterFinished=1)
    )
    phases = []
    w = watch.Watch()
    t0 = time.monotonic()
    for ev in w.stream(
        kube.core.list_namespaced_pod,
        kube.namespace,
        label_selector=f"job-name={name}",
        resource_version=rv,
        timeout_seconds=30,
    ):
        phases.append((ev["type"], ev["object"].status.phase))
        if ev["type"] == "DELETED":  # ttlSecondsAfterFinished removes the job and its pods
            w.stop()
    assert time.monotonic() - t0 < 30
    assert phases[0] == ("ADDED", "Pending")
    assert ("MODIFIED", "Running") in phases or ("MODIFIED", "Succeeded") in phases
    assert phases[-1][0] == "DELETED"
    t1 = time.monotonic()  # an idle watch ends at timeoutSeconds
    assert (
        list(
            watch.Watch().stream(
                kube.batch.list_namespaced_job, kube.namespace, label_selector="nothing=here", timeout_seconds=1
            )
        )
        == []
    )
    assert time.monotonic() - t1 < 5


def test_pod_runtime_settings(kube, tmp_path):
    name = unique("settings")
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    os.chmod(host_dir, 0o777)
    script = (
        "id -u; id -g; pwd; echo $GREETING $POD; df -k /dev/shm | tail -1 | awk '{print $2}'; "
        "echo hi > /out/result.txt; echo scratch > /scratch/f && cat /scratch/f"
    )
    manifest = job_manifest(
        name,
        ["sh", "-c", script],
        kube.image,
        container={
            "workingDir": "/tmp",
            "env": [
                {"name": "GREETING", "value": "hello"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "resources": {"limits": {"cpu": "1500m", "memory": "256Mi"}},
            "securityContext": {"runAsUser": 1234, "runAsGroup": 2345},
            "volumeMounts": [
                {"name": "shm", "mountPath": "/dev/shm"},
                {"name": "out", "mountPath": "/out"},
                {"name": "scratch", "mountPath": "/scratch"},
            ],
        },
        pod={
            "volumes": [
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "128Mi"}},
                {"name": "out", "hostPath": {"path": str(host_dir), "type": "Directory"}},
                {"name": "scratch", "emptyDir": {}},
            ]
        },
    )
    kube.batch.create_namespaced_job(kube.namespace, manifest)
    wait_for(
        lambda: job_condition(kube, name, "Complete") or job_condition(kube, name, "Failed"), 30, what="job finished"
    )
    pod = only_pod(kube, name)
    out = kube.core.read_namespaced_pod_log(pod.metadata.name, kube.namespace).splitlines()
    assert out == ["1234", "2345", "/tmp", f"hello {pod.metadata.name}", str(128 * 1024), "scratch"], out
    assert (host_dir / "result.txt").read_text() == "hi\n"
    [container] = containers_of(kube, pod.metadata.name)
    host_config = container.attrs["HostConfig"]
    assert host_config["NanoCpus"] == 1_500_000_000
    assert host_config["Memory"] == host_config["MemorySwap"] == 256 * 2**20
    assert host_config["NetworkMode"] == "host"
    assert container.labels["io.kubernetes.pod.namespace"] == kube.namespace


def test_pods_queue_for_cpu(kube):
    names = [unique(f"cpu{i}") for i in range(3)]
    for name in names:  # node has 2 CPUs: the third pod waits for one of the first two
        kube.batch.create_namespaced_job(
            kube.namespace,
            job_manifest(name, ["sleep", "2"], kube.image, container={"resources": {"requests": {"cpu": "1"}}}),
        )
    pods = [only_pod(kube, n) for n in names]
    pending = wait_for(
        lambda: kube.core.list_namespaced_event(kube.namespace, field_selector="reason=FailedScheduling").items,
        20,
        what="FailedScheduling",
    )
    assert pending[0].involved_object.name == pods[2].metadata.name
    assert pending[0].message.startswith("0/1 nodes are available: 1 Insufficient cpu.")
    for name in names:
        wait_for(lambda name=name: job_condition(kube, name, "Complete"), 30, what=f"{name} Complete")


def test_indexed_job_runs_each_index_once_and_fails_an_index_alone(kube):
    """completionMode Indexed: one pod per index (name <job>-<index>-*, the completion-index annotation and label,
    JOB_COMPLETION_INDEX), at most `parallelism` at once; with backoffLimitPerIndex 0 a failing index fails alone,
    the others run to the end, then the Job fails with reason FailedIndexes and lists it in failedIndexes."""
    name = unique("idx")
    script = 'echo "index=$JOB_COMPLETION_INDEX host=$HOSTNAME"; [ "$JOB_COMPLETION_INDEX" != 2 ]'
    manifest = job_manifest(
        name,
        ["sh", "-c", script],
        kube.image,
        validate=False,
        completionMode="Indexed",
        completions=5,
        parallelism=2,
        backoffLimitPerIndex=0,
    )
    del manifest["spec"]["backoffLimit"]  # defaults to the most an int32 holds when backoffLimitPerIndex is set
    import kubernetes_validate

    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    kube.batch.create_namespaced_job(kube.namespace, manifest)
    peak = 0

    def finished():
        nonlocal peak
        pods = job_pods(kube, name)
        peak = max(peak, sum(1 for p in pods if p.status.phase in ("Pending", "Running")))
        return job_condition(kube, name, "Failed")

    cond = wait_for(finished, 90, interval=0.05, what="indexed job Failed")
    assert cond.reason == "FailedIndexes"
    job = kube.batch.read_namespaced_job(name, kube.namespace)
    assert job.status.completed_indexes == "0-1,3-4" and job.status.failed_indexes == "2"
    assert job.status.succeeded == 4 and job.status.failed == 1
    pods = job_pods(kube, name)
    by_index = {int(p.metadata.annotations["batch.kubernetes.io/job-completion-index"]): p for p in pods}
    assert sorted(by_index) == [0, 1, 2, 3, 4] and len(pods) == 5  # index 2 was not retried
    assert peak <= 2
    for i, pod in by_index.items():
        assert pod.metadata.name.startswith(f"{name}-{i}-")
        assert pod.metadata.labels["batch.kubernetes.io/job-completion-index"] == str(i)
        log = kube.core.read_namespaced_pod_log(pod.metadata.name, kube.namespace)
        assert log.startswith(f"index={i} ")
        assert pod.status.phase == ("Failed" if i == 2 else "Succeeded")
    kube.batch.delete_namespaced_job(name, kube.namespace, propagation_policy="Background")
    wait_for(lambda: not job_pods(kube, name), 20, what="pods deleted")


def test_indexed_job_deleting_one_index_pod_fails_that_index_only(kube):
    name = unique("idxdel")
    manifest = job_manifest(
        name,
        ["sh", "-c", "sleep 2"],
        kube.image,
        completionMode="Indexed",
        completions=3,
        parallelism=3,
        backoffLimitPerIndex=0,
    )
    manifest["spec"]["backoffLimit"] = 3
    kube.batch.create_namespaced_job(kube.namespace, manifest)
    pods = wait_for(lambda: len(job_pods(kube, name)) == 3 and job_pods(kube, name), 20, what="3 pods")
    victim = next(p for p in pods if p.metadata.annotations["batch.kubernetes.io/job-completion-index"] == "1")
    kube.core.delete_namespaced_pod(victim.metadata.name, kube.namespace)
    cond = wait_for(lambda: job_condition(kube, name, "Failed"), 30, what="job Failed")
    job = kube.batch.read_namespaced_job(name, kube.namespace)
    assert cond.reason == "FailedIndexes" and job.status.failed_indexes == "1"
    assert job.status.completed_indexes == "0,2"
    assert len(job_pods(kube, name)) == 2  # the deleted index was not replaced
    kube.batch.delete_namespaced_job(name, kube.namespace, propagation_policy="Background")
    wait_for(lambda: not job_pods(kube, name), 20, what="pods deleted")


def test_indexed_job_validation(kube_api):
    from kubernetes.client.rest import ApiException

    bad = job_manifest(unique("bad"), ["true"], "img", validate=False, completionMode="Indexed")
    bad["spec"].pop("completions", None)
    with pytest.raises(ApiException) as err:
        kube_api.batch.create_namespaced_job(kube_api.namespace, bad)
    assert err.value.status == 422 and "spec.completions" in err.value.body
    bad = job_manifest(unique("bad"), ["true"], "img", validate=False, backoffLimitPerIndex=0)
    with pytest.raises(ApiException) as err:
        kube_api.batch.create_namespaced_job(kube_api.namespace, bad)
    assert err.value.status == 422 and "backoffLimitPerIndex" in err.value.body
