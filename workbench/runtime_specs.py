"""The spec records of the tasks the driver starts, written several at once.

One scheduler event may start hundreds of tasks (a foreach fans out :data:`~workbench.scheduler.DISPATCH_BATCH`
at a time). Each task's ``spec-<attempt>.json`` must be in the datastore before its backend gets it; on S3
that is one PUT each, and 500 PUTs one after the other hold the driver's loop for seconds (10,000 in a
10,000-wide foreach). :class:`SpecWriter` writes a batch on a few threads, and stages a remote task's inputs
(blobs copied from the home datastore to ``[datastore] remote``) once per blob for the whole run rather than
once per task: blobs are content-addressed, so one that is staged stays staged.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from .datastore import FlowDatastore
from .datastore.records import TaskSpecRecord
from .errors import WorkbenchError
from .redact import redact_settings
from .runtime_datastore import _copy_blobs

SPEC_WRITERS = 16  # PUTs in flight at once (S3 takes thousands a second per prefix; the loop waits for the batch)


@dataclasses.dataclass(frozen=True)
class SpecWrite:
    """One spec to write: to the home datastore, or (``staged``) to the remote stage with its inputs copied there."""

    record: TaskSpecRecord
    staged: bool = False
    input_shas: frozenset[str] = frozenset()


class SpecWriter:
    """Writes the specs of one batch of tasks; :meth:`write` answers, per spec, None or the error that stopped it."""

    def __init__(self, ds: FlowDatastore, stage: Optional[FlowDatastore], threads: int = SPEC_WRITERS):
        self.ds, self.stage, self.threads = ds, stage, threads
        self._staged: set[str] = set()  # blobs known to be in the stage (content-addressed: they stay there)
        self._redacted: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}  # id(settings) -> (settings, redacted)
        self._pool: Optional[ThreadPoolExecutor] = None

    def write(self, batch: list[SpecWrite]) -> list[Optional[WorkbenchError]]:
        errors: list[Optional[WorkbenchError]] = [None] * len(batch)
        jobs: list[tuple[int, FlowDatastore, TaskSpecRecord]] = []
        for i, item in enumerate(batch):
            ds = self.ds
            if item.staged and self.stage is not None:
                ds = self.stage
                try:
                    self._stage_inputs(item.input_shas)
                except WorkbenchError as exc:
                    errors[i] = exc
                    continue
            jobs.append((i, ds, dataclasses.replace(item.record, settings=self._redact(item.record.settings))))
        if len(jobs) > 1 and self.threads > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="spec-writer")
            results = list(self._pool.map(_write_one, jobs))
        else:
            results = [_write_one(job) for job in jobs]
        for (i, _, _), error in zip(jobs, results, strict=True):
            errors[i] = error
        return errors

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _stage_inputs(self, shas: frozenset[str]) -> None:
        assert self.stage is not None
        for sha in shas:
            if sha in self._staged:
                continue
            _copy_blobs(self.ds, self.stage, {sha})
            self._staged.add(sha)

    def _redact(self, settings: dict[str, Any]) -> dict[str, Any]:
        """``redact_settings`` once per settings dict (the scheduler shares one per step among its tasks)."""
        kept = self._redacted.get(id(settings))
        if kept is None or kept[0] is not settings:
            kept = self._redacted[id(settings)] = (settings, redact_settings(settings))
        return kept[1]


def _write_one(job: tuple[int, FlowDatastore, TaskSpecRecord]) -> Optional[WorkbenchError]:
    _, ds, record = job
    try:
        ds.write_spec(record)
    except WorkbenchError as exc:
        return exc
    return None
