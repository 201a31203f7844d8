"""core/v1 Services in the emulator (services.py), driven only through the official `kubernetes` client: the API
verbs and their validation, and the names a headless Service gives an Indexed Job's pods (resolvable from inside
their containers, which share the host network: every name is 127.0.0.1)."""

from __future__ import annotations

import pytest

from .test_emulator import K8S_VERSION, job_condition, job_manifest, job_pods, unique, wait_for


def headless(name: str, selector: dict, labels: dict | None = None) -> dict:
    import kubernetes_validate

    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels or {"app": "k8s-emulator-test"}},
        "spec": {"clusterIP": "None", "selector": selector, "publishNotReadyAddresses": True},
    }
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    return manifest


def test_service_create_list_get_delete_and_validation(kube_api):
    from kubernetes.client.rest import ApiException

    core, ns = kube_api.core, kube_api.namespace
    name = unique("svc")
    made = core.create_namespaced_service(ns, headless(name, {"job-name": "x"}, {"run": "r1"}))
    assert made.spec.cluster_ip == "None" and made.spec.type == "ClusterIP" and made.metadata.uid
    assert [s.metadata.name for s in core.list_namespaced_service(ns, label_selector="run=r1").items] == [name]
    assert core.read_namespaced_service(name, ns).spec.selector == {"job-name": "x"}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_service(ns, headless(name, {"job-name": "x"}))
    assert err.value.status == 409
    plain = core.create_namespaced_service(
        ns, {"metadata": {"name": unique("plain")}, "spec": {"ports": [{"port": 80}]}}
    )
    assert plain.spec.cluster_ip.startswith("10.96.") and plain.spec.ports[0].target_port == 80
    for bad, field in (
        ({"metadata": {"name": "9starts-with-a-digit"}, "spec": {}}, "metadata.name"),
        ({"metadata": {"name": unique("np")}, "spec": {"type": "NodePort"}}, "spec.type"),
    ):
        with pytest.raises(ApiException) as err:
            core.create_namespaced_service(ns, bad)
        assert err.value.status == 422 and field in err.value.body
    gone = core.delete_namespaced_service(name, ns)
    assert gone.metadata.name == name  # the API server answers with the deleted Service
    with pytest.raises(ApiException) as err:
        core.read_namespaced_service(name, ns)
    assert err.value.status == 404


def test_headless_service_names_an_indexed_jobs_pods(kube):
    """<job>-<i>.<service> (and its longer forms) resolve in every pod of the Job once the Service exists; a pod
    whose subdomain has no Service resolves nothing."""
    name = unique("gang")
    script = (
        "import os, socket\n"
        "job = os.environ['JOB']\n"
        "for host in (f'{job}-0.{job}', f'{job}-1.{job}.default.svc.cluster.local', f'{job}-0.nosuchsvc'):\n"
        "    try:\n"
        "        print(host, socket.gethostbyname(host), flush=True)\n"
        "    except OSError:\n"
        "        print(host, 'unresolved', flush=True)\n"
    )
    kube.core.create_namespaced_service(kube.namespace, headless(name, {"job-name": name}))
    manifest = job_manifest(
        name,
        ["python3", "-c", script],
        kube.image,
        validate=False,
        container={"env": [{"name": "JOB", "value": name}]},
        pod={"subdomain": name},
        completionMode="Indexed",
        completions=2,
        parallelism=2,
        backoffLimitPerIndex=0,
    )
    del manifest["spec"]["backoffLimit"]
    import kubernetes_validate

    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    kube.batch.create_namespaced_job(kube.namespace, manifest)
    wait_for(lambda: job_condition(kube, name, "Complete"), 90, what="indexed job Complete")
    for pod in job_pods(kube, name):
        assert pod.spec.subdomain == name and pod.spec.hostname.startswith(f"{name}-")
        log = kube.core.read_namespaced_pod_log(pod.metadata.name, kube.namespace).splitlines()
        assert log == [
            f"{name}-0.{name} 127.0.0.1",
            f"{name}-1.{name}.default.svc.cluster.local 127.0.0.1",
            f"{name}-0.nosuchsvc unresolved",
        ], log
    kube.batch.delete_namespaced_job(name, kube.namespace, propagation_policy="Background")
    kube.core.delete_namespaced_service(name, kube.namespace)
    wait_for(lambda: not job_pods(kube, name), 20, what="pods deleted")
