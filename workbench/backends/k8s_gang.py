"""@parallel gangs on Kubernetes: one Indexed Job and one headless Service per gang (a mixin of
:class:`workbench.backends.kubernetes.KubernetesBackend`, and the pure builders of their manifests).

- The Job: completionMode Indexed, completions = parallelism = N (every node runs at once), index ``i`` runs
  node ``i``'s task (found through the array manifest, :mod:`workbench.arrays`, by JOB_COMPLETION_INDEX); the
  pod template's ``subdomain`` is the Service, so (as Kubernetes names Indexed Job pods ``<job>-<index>``) node
  0 is ``<job>-0.<service>`` to every node: ``WORKBENCH_GANG_MAIN_HOST``, which the task resolves into
  ``current.parallel.main_ip`` (:mod:`workbench.gang_address`). ``backoffLimitPerIndex`` 0 with
  ``maxFailedIndexes`` 0: the first node that fails fails the Job, and Kubernetes stops the other pods even if
  workbench is gone (all or nothing in the cluster too; the runtime also cancels the gang).
- The Service: headless (clusterIP None), selecting the Job's pods, ``publishNotReadyAddresses`` so node 0's
  record exists as soon as its pod has an address (no readiness probe needed). Created first, so the pods'
  names resolve when they start; it carries the run's labels, so the end-of-run sweep finds it.
- Each node stays a task: its pod, its log, its status, as for a foreach's Indexed Job (k8s_indexed).
- Stop: any node cancelled stops the gang (remote_gang): delete the Job (its pods go) and the Service.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import WorkbenchError
from .k8s_indexed import ARRAY_LABEL
from .k8s_manifest import CONTAINER, JOB_LABEL, indexed_job_manifest, job_name
from .remote_jobs import JobArray, RemoteJob

MAIN_HOST_ENV = "WORKBENCH_GANG_MAIN_HOST"
GANG_LABEL = "workbench.gang"


def gang_job_manifest(single: dict[str, Any], *, name: str, nodes: int, array_ref: str) -> dict[str, Any]:
    """The Indexed Job of a gang of ``nodes`` tasks, from the manifest of node 0's task alone (``single``)."""
    job = indexed_job_manifest(
        single,
        name=name,
        completions=nodes,
        parallelism=nodes,  # a gang runs whole or not at all: never fewer pods than nodes
        array_ref=array_ref,
        array_labels={ARRAY_LABEL: name, GANG_LABEL: name},
    )
    spec = job["spec"]
    spec["maxFailedIndexes"] = 0
    pod = spec["template"]["spec"]
    pod["subdomain"] = name  # with the Indexed Job's pod hostname <job>-<index>: <job>-<index>.<service>
    container = next(c for c in pod["containers"] if c.get("name") == CONTAINER)
    env = [e for e in container.get("env") or [] if e.get("name") != MAIN_HOST_ENV]
    container["env"] = env + [{"name": MAIN_HOST_ENV, "value": f"{name}-0.{name}"}]
    return job


def headless_service_manifest(job: dict[str, Any]) -> dict[str, Any]:
    """The headless Service that gives a gang's pods their DNS names (same name as the Job, its labels)."""
    meta = job["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": meta["name"],
            **({"namespace": meta["namespace"]} if meta.get("namespace") else {}),
            "labels": copy.deepcopy(meta.get("labels") or {}),
        },
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_LABEL: meta["name"]},
            "publishNotReadyAddresses": True,
        },
    }


class GangJobs:
    """Gangs for :class:`KubernetesBackend` (which provides api, manifest_for, _ctx, _warn, _delete_job, ...)."""

    def submit_gang(self, jobs: list[RemoteJob]) -> None:
        from ..arrays import manifest_name, write_manifest

        first = jobs[0]
        spec = first.spec
        namespace = first.namespace  # type: ignore[attr-defined]
        array_ref = write_manifest(
            self._ctx.datastore,  # type: ignore[attr-defined]
            spec.run_id,
            manifest_name(spec.step, spec.attempt, spec.task_id),
            [j.spec.ref for j in jobs],
        )
        name = job_name(spec.flow, spec.step, f"{spec.task_id}g{len(jobs)}", spec.attempt, spec.run_id)
        manifest = gang_job_manifest(self.manifest_for(spec), name=name, nodes=len(jobs), array_ref=array_ref)  # type: ignore[attr-defined]
        service = headless_service_manifest(manifest)
        api = self.api  # type: ignore[attr-defined]
        self.calls["create_namespaced_service"] += 1  # type: ignore[attr-defined]
        api.call(f"create service {name}", api.client("core").create_namespaced_service, namespace, service)
        try:
            self.calls["create_namespaced_job"] += 1  # type: ignore[attr-defined]
            api.call(f"create job {name}", api.client("batch").create_namespaced_job, namespace, manifest)
        except Exception:
            self._delete_service(name, namespace)
            raise
        gang = first.array
        assert gang is not None and gang.gang
        gang.name, gang.manifest, gang.namespace = name, array_ref, namespace

    def terminate_gang(self, gang: JobArray) -> None:
        """Delete the gang's Job (its pods go with it) and its Service; the poller reports each node."""
        try:
            self._delete_job(gang.name, gang.namespace)  # type: ignore[attr-defined]
        except WorkbenchError as exc:
            self._warn(f"kubernetes: could not delete job {gang.name}: {exc}")  # type: ignore[attr-defined]
            for task in gang.unreported():
                self.conclude(task, self._requested_exit(task, f" (the Job could not be deleted: {exc})"))  # type: ignore[attr-defined]
        self._delete_service(gang.name, gang.namespace)
        self._wake.set()  # type: ignore[attr-defined]

    def after_gang_report(self, gang: JobArray) -> None:
        """Once every node is reported: delete the Job and the Service (unless the stop did already)."""
        if gang.unreported() or gang.terminated:
            return
        import time

        gang.terminated = time.time()
        try:
            self._delete_job(gang.name, gang.namespace)  # type: ignore[attr-defined]
        except WorkbenchError:
            pass  # end_run sweeps the run's Jobs and Services by label
        self._delete_service(gang.name, gang.namespace)

    def _delete_service(self, name: str, namespace: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.calls["delete_service"] += 1  # type: ignore[attr-defined]
            self.api.client("core").delete_namespaced_service(name, namespace, _request_timeout=30)  # type: ignore[attr-defined]
        except ApiException as exc:
            if exc.status != 404:
                self._warn(f"kubernetes: could not delete service {name}: {exc.reason}")  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001
            self._warn(f"kubernetes: could not delete service {name}: {exc}")  # type: ignore[attr-defined]

    def sweep_services(self, namespace: str, selector: str) -> None:
        """End of run: delete the run's Services (gangs' leftovers) by label."""
        api = self.api  # type: ignore[attr-defined]
        for svc in api.call(
            "list services", api.client("core").list_namespaced_service, namespace, label_selector=selector
        ).items:
            self._delete_service(svc.metadata.name, namespace)
