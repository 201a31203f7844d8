"""The driver's datastore helpers: blobs moved between the home datastore and a remote task's stage
(checked against their hashes on the way home), the steps a resume re-runs, and the latest run.
:mod:`workbench.runtime` re-exports them.
"""

from __future__ import annotations

from typing import Callable, Optional

from .datastore import FlowDatastore
from .datastore.records import RunRecord
from .errors import UsageError
from .graph import FlowGraph


def _copy_blobs(src: FlowDatastore, dst: FlowDatastore, shas: set[str]) -> None:
    for sha in shas:
        if not dst.has_artifact(sha):
            dst.storage.put(dst.artifact_key(sha), [src.storage.get(src.artifact_key(sha))], overwrite=False)


def _import_blobs(src: FlowDatastore, dst: FlowDatastore, shas: set[str]) -> None:
    """Copy blobs a remote task wrote into ``dst``, refusing any whose content does not hash to its name."""
    for sha in shas:
        if not dst.has_artifact(sha):
            dst.import_blob(sha, src.storage.get(src.artifact_key(sha)))


def resume_plan(graph: FlowGraph, ds: FlowDatastore, origin_run_id: str, from_step: Optional[str]) -> set[str]:
    """Steps a resume re-runs: ``from_step`` and everything after it; without it, nothing is forced
    (every task that did not succeed in the origin runs again, and so does everything after it)."""
    if from_step is None:
        return set()
    if from_step not in graph.steps:
        raise UsageError(f"--from {from_step}: flow {graph.name} has no such step (steps: {', '.join(graph.steps)})")
    return {from_step} | graph.descendants(from_step)


def latest_run_id(ds: FlowDatastore, predicate: Callable[[RunRecord], bool] = lambda record: True) -> Optional[str]:
    for run_id in reversed(ds.list_runs()):
        doc = ds.read_run(run_id)
        if doc is not None and predicate(doc):
            return run_id
    return None
