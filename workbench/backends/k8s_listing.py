"""One poller round's view of a run on Kubernetes: its Jobs and the pods still worth reading, in a number of
calls and a number of objects that do not grow with the tasks that already ended.

Listing every pod of the run each round (what this replaced) returns every pod a 10,000-wide Indexed Job ever
made until the Job is deleted: ~10,000 V1Pod objects (tens of MB to transfer and deserialize) a round, most of
them reported long ago. Instead, per namespace:

1. the run's Jobs by label (a handful of objects: one per Indexed Job, one per single task);
2. the run's pods by label that have not succeeded (``fieldSelector status.phase!=Succeeded``): pending,
   running and failed pods, bounded by the parallelism and the failures;
3. only for tasks whose Job already counts them as succeeded but whose pod the runtime has not seen end: their
   pods, by ``job-completion-index in (...)`` for an index of an Indexed Job (the label Kubernetes >= 1.28 puts on
   each pod) and by the Job's label for a single-task Job, in chunks.

A succeeded index whose pod step 3 cannot find (a cluster older than 1.28 has only the annotation, not the label)
switches the backend to listing every pod of the run each round, as before: slower, never stuck.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .k8s_manifest import JOB_LABEL

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
NOT_SUCCEEDED = "status.phase!=Succeeded"
CHUNK = 100  # values per set-based selector (keeps the query string short)


def pod_index(pod) -> int | None:
    value = (pod.metadata.annotations or {}).get(COMPLETION_INDEX)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def index_set(ranges: str | None) -> set[int]:
    """ "0-2,4" -> {0, 1, 2, 4} (status.completedIndexes / failedIndexes)."""
    out: set[int] = set()
    for part in (ranges or "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


@dataclass
class Round:
    """What one round saw: Jobs by name, single-task pods by Job name, indexed pods by (Job name, index)."""

    jobs: dict[str, Any] = field(default_factory=dict)
    pods: dict[str, list] = field(default_factory=dict)
    indexed: dict[tuple[str, int], list] = field(default_factory=dict)
    listed: int = 0  # pod objects the API returned this round
    unlabelled: bool = False  # a succeeded index's pod could not be found by its completion-index label

    def add(self, items: Iterable) -> None:
        for pod in items:
            self.listed += 1
            owner = (pod.metadata.labels or {}).get(JOB_LABEL)
            index = pod_index(pod)
            if owner and index is not None:
                bucket = self.indexed.setdefault((owner, index), [])
            elif owner:
                bucket = self.pods.setdefault(owner, [])
            else:
                continue
            if all(p.metadata.name != pod.metadata.name for p in bucket):
                bucket.append(pod)


def _chunks(values: list, n: int = CHUNK) -> Iterable[list]:
    for i in range(0, len(values), n):
        yield values[i : i + n]


def list_round(
    list_jobs: Callable[..., Any],
    list_pods: Callable[..., Any],
    selector: str,
    tasks: list,
    *,
    every_pod: bool = False,
) -> Round:
    """The view of one namespace. ``tasks``: the unreported tasks there (``.name``, ``.array``, ``.index``).
    ``list_jobs(label_selector=)`` / ``list_pods(label_selector=, field_selector=)`` make the calls."""
    seen = Round()
    for job in list_jobs(label_selector=selector).items:
        seen.jobs[job.metadata.name] = job
    if every_pod:
        seen.add(list_pods(label_selector=selector).items)
        return seen
    seen.add(list_pods(label_selector=selector, field_selector=NOT_SUCCEEDED).items)
    wanted_indexes: dict[str, list[int]] = {}
    wanted_jobs: list[str] = []
    completed: dict[str, set[int]] = {}
    for task in tasks:
        if task.array is not None:
            job = seen.jobs.get(task.array.name)
            if job is None or job.status is None or (task.array.name, task.index) in seen.indexed:
                continue
            if task.array.name not in completed:
                completed[task.array.name] = index_set(job.status.completed_indexes)
            if task.index in completed[task.array.name]:
                wanted_indexes.setdefault(task.array.name, []).append(task.index)
        else:
            job = seen.jobs.get(task.name)
            if job is not None and job.status is not None and (job.status.succeeded or 0) > 0:
                if task.name not in seen.pods:
                    wanted_jobs.append(task.name)
    for name, indexes in sorted(wanted_indexes.items()):
        for part in _chunks(sorted(indexes)):
            values = ",".join(str(i) for i in part)
            seen.add(list_pods(label_selector=f"{selector},{JOB_LABEL}={name},{COMPLETION_INDEX} in ({values})").items)
        if any((name, i) not in seen.indexed for i in indexes):
            seen.unlabelled = True
    for part in _chunks(sorted(wanted_jobs)):
        seen.add(
            list_pods(
                label_selector=f"{selector},{JOB_LABEL} in ({','.join(part)})", field_selector="status.phase=Succeeded"
            ).items
        )
    return seen
