"""The Kubernetes poller's view of a run (workbench.backends.k8s_listing): a round never lists the pods of tasks
that were already reported, so what it transfers does not grow with the width of a foreach.

The selectors are evaluated by the Kubernetes emulator's own selector code (tests/k8s_emulator/store.py), the
same the emulator's API server answers with; the end-to-end runs on the emulator are test_array_kubernetes.py,
test_kubernetes_backend.py and test_parallel_kubernetes.py."""

from __future__ import annotations

from types import SimpleNamespace as NS

from tests.k8s_emulator.store import parse_field_selector, parse_label_selector
from workbench.backends.k8s_listing import COMPLETION_INDEX, list_round
from workbench.backends.k8s_manifest import JOB_LABEL

RUN = "workbench.flow=f,workbench.run=1"
RUN_LABELS = {"workbench.flow": "f", "workbench.run": "1"}


def _pod(name, job, phase, index=None, label=True):
    labels = {**RUN_LABELS, JOB_LABEL: job}
    annotations = {}
    if index is not None:
        annotations[COMPLETION_INDEX] = str(index)
        if label:
            labels[COMPLETION_INDEX] = str(index)
    return NS(metadata=NS(name=name, labels=labels, annotations=annotations), status=NS(phase=phase))


class FakeCluster:
    """Jobs and pods, listed the way the API server lists them; every call and every object returned is counted."""

    def __init__(self, jobs, pods):
        self.jobs, self.pods, self.calls, self.returned = jobs, pods, [], 0

    def list_jobs(self, label_selector=None):
        self.calls.append(("jobs", label_selector, None))
        match = parse_label_selector(label_selector)
        return NS(items=[j for j in self.jobs if match(j.metadata.labels)])

    def list_pods(self, label_selector=None, field_selector=None):
        self.calls.append(("pods", label_selector, field_selector))
        lmatch, fmatch = parse_label_selector(label_selector), parse_field_selector(field_selector)
        items = [p for p in self.pods if lmatch(p.metadata.labels) and fmatch({"status": {"phase": p.status.phase}})]
        self.returned += len(items)
        return NS(items=items)


def _wide(label=True):
    """A 1,000-wide Indexed Job: 990 indexes succeeded and reported, 5 succeeded but not yet reported, 3 running,
    2 failed; and a single-task Job that just succeeded."""
    pods = [_pod(f"wide-{i}-a", "wide", "Succeeded", i, label) for i in range(995)]
    pods += [_pod(f"wide-{i}-a", "wide", "Running", i, label) for i in range(995, 998)]
    pods += [_pod(f"wide-{i}-a", "wide", "Failed", i, label) for i in range(998, 1000)]
    pods.append(_pod("single-x", "single", "Succeeded"))
    jobs = [
        NS(
            metadata=NS(name="wide", labels=dict(RUN_LABELS)),
            status=NS(completed_indexes="0-994", succeeded=995, failed_indexes=None),
        ),
        NS(metadata=NS(name="single", labels=dict(RUN_LABELS)), status=NS(completed_indexes=None, succeeded=1)),
    ]
    array = NS(name="wide")
    unreported = [NS(name=f"wide-task-{i}", array=array, index=i) for i in range(990, 1000)]
    unreported.append(NS(name="single", array=None, index=None))
    return FakeCluster(jobs, pods), unreported


def test_a_round_lists_only_pods_of_unreported_tasks_not_the_whole_foreach():
    cluster, tasks = _wide()
    view = list_round(cluster.list_jobs, cluster.list_pods, RUN, tasks)

    # every unreported task's pod is in the view, with its phase
    assert {i for (_, i) in view.indexed} == set(range(990, 1000))
    assert view.indexed[("wide", 992)][0].status.phase == "Succeeded"
    assert view.indexed[("wide", 996)][0].status.phase == "Running"
    assert view.indexed[("wide", 999)][0].status.phase == "Failed"
    assert [p.metadata.name for p in view.pods["single"]] == ["single-x"]
    # ... and nothing else: 10 pods of the Indexed Job + 1, where listing the run's pods returns 1,001
    assert cluster.returned == view.listed == 11
    assert len(cluster.calls) == 4  # jobs, pods not succeeded, the 5 just-succeeded indexes, the single Job
    assert not view.unlabelled


def test_the_succeeded_indexes_are_asked_for_in_chunks_by_their_label():
    cluster, _ = _wide()
    array = NS(name="wide")
    tasks = [NS(name=f"t{i}", array=array, index=i) for i in range(0, 250)]  # all succeeded, none reported yet
    view = list_round(cluster.list_jobs, cluster.list_pods, RUN, tasks)
    assert {i for (_, i) in view.indexed} == set(range(250)) | set(range(995, 1000))
    by_index = [c for c in cluster.calls if c[1] and COMPLETION_INDEX in c[1]]
    assert len(by_index) == 3  # 100 + 100 + 50 values per selector


def test_pods_without_the_index_label_are_noticed_and_every_pod_is_listed_then():
    cluster, tasks = _wide(label=False)  # Kubernetes < 1.28: the completion index is only an annotation
    view = list_round(cluster.list_jobs, cluster.list_pods, RUN, tasks)
    assert view.unlabelled
    assert ("wide", 992) not in view.indexed  # not found by label this round...
    again = list_round(cluster.list_jobs, cluster.list_pods, RUN, tasks, every_pod=True)
    assert ("wide", 992) in again.indexed  # ...found once the backend lists every pod
    assert again.listed == 1001


def test_a_round_reports_a_pod_that_failed_before_the_pods_killed_for_it(monkeypatch):
    """A gang's node 2 fails; the Job's controller then deletes nodes 0 and 1. When one round sees all three, node 2
    is reported first: the first node reported as failed names the gang's failure for every node."""
    import threading

    from workbench.backends import kubernetes as k8s
    from workbench.backends.remote_jobs import JobArray

    def pod(index, phase, deleting):
        return NS(
            metadata=NS(name=f"g-{index}", deletion_timestamp="2026-12-03T08:00:00Z" if deleting else None),
            status=NS(phase=phase, container_statuses=[]),
        )

    gang = JobArray([], name="g", gang=True)
    tasks = [k8s._Task(NS(), None, None, name="g", array=gang, index=i) for i in range(3)]
    gang.jobs = tasks
    seen = {
        ("g", 0): [pod(0, "Failed", True)],
        ("g", 1): [pod(1, "Running", True)],
        ("g", 2): [pod(2, "Failed", False)],
    }
    monkeypatch.setattr(
        k8s, "list_round", lambda *a, **k: NS(jobs={"g": None}, pods={}, indexed=seen, unlabelled=False)
    )
    backend = k8s.KubernetesBackend.__new__(k8s.KubernetesBackend)
    backend._lock, backend._every_pod, backend._selector = threading.RLock(), False, ""
    backend._list = lambda *a, **k: None
    order = []
    backend.update_index = lambda task, job, pods: order.append(task.index)
    backend.poll(tasks)
    assert order[0] == 2, order
