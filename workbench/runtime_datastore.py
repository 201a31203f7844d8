"""The driver's datastore helpers: blobs moved between the home datastore and a remote task's stage
(checked against their hashes on the way home), the steps a resume re-runs, the latest run, and the
per-step summaries a viewer reads instead of every task record. :mod:`workbench.runtime` re-exports them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import events as ev
from .datastore import FlowDatastore
from .datastore.records import RunRecord, TaskRecord, TaskStatus
from .errors import UsageError
from .graph import FlowGraph
from .step_summary import StepSummaryBuilder

if TYPE_CHECKING:
    from .scheduler_messages import Instruction

SUMMARY_INTERVAL = 1.0  # seconds between rewrites of a busy step's summary.json


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


class StepSummaryWriter:
    """Keeps each step's :class:`~workbench.datastore.records.StepSummaryRecord` from the instructions the
    driver carries out (tasks started, retrying, written) and writes it: at most every
    :data:`SUMMARY_INTERVAL` seconds while the step is busy, at the end of the driver's batch in which it
    was left with nothing in flight, and a last time, final, when the run ends. A write that fails is
    reported once and never stops the run."""

    def __init__(
        self,
        ds: FlowDatastore,
        flow: str,
        run_id: str,
        *,
        warn: Callable[[str], None] = lambda message: None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = SUMMARY_INTERVAL,
    ):
        self.ds, self.flow, self.run_id = ds, flow, run_id
        self.warn, self.clock, self.interval = warn, clock, interval
        self.steps: dict[str, StepSummaryBuilder] = {}
        self.dirty: set[str] = set()
        self.last_write: dict[str, float] = {}
        self.failed = False

    def _builder(self, step: str) -> StepSummaryBuilder:
        if step not in self.steps:
            self.steps[step] = StepSummaryBuilder(self.flow, self.run_id, step)
        return self.steps[step]

    def take(self, instruction: "Instruction") -> None:
        """Fold one instruction the driver is about to carry out."""
        from .scheduler_messages import Emit, WriteTask

        if isinstance(instruction, WriteTask):
            step = instruction.record.step
            self._builder(step).add(instruction.record)
        elif isinstance(instruction, Emit) and isinstance(instruction.event, ev.TaskStarted):
            step = instruction.event.step
            self._builder(step).started(instruction.event.pathspec, instruction.event.ts)
        elif isinstance(instruction, Emit) and isinstance(instruction.event, ev.TaskRetrying):
            step = instruction.event.step
            self._builder(step).retrying_again(instruction.event.pathspec)
        else:
            return
        self.dirty.add(step)

    def flush(self) -> None:
        """After each batch the driver handled: write the steps that changed and either have nothing left in
        flight (a step that ended is said at once) or were last written at least an interval ago."""
        now = self.clock()
        for step in sorted(self.dirty):
            idle = not self.steps[step].in_flight
            if idle or now - self.last_write.get(step, -1e18) >= self.interval:
                self._write(step)

    def close(self) -> None:
        """The run ended: every step's summary once more, marked final."""
        for step in self.steps:
            self._write(step, final=True)

    def _write(self, step: str, final: bool = False) -> None:
        self.dirty.discard(step)
        self.last_write[step] = self.clock()
        try:
            self.ds.write_step_summary(self.steps[step].record(updated_at=time.time(), final=final))
        except Exception as exc:  # noqa: BLE001 - a viewer's convenience must never stop a run
            if not self.failed:
                self.failed = True
                self.warn(f"could not write the summary of step {step}: {exc}")


# ---------------------------------------------------------------------- parameters, resume
def save_parameters(
    ds: FlowDatastore, params: dict[str, Any], graph: FlowGraph, configs: dict[str, Any]
) -> tuple[dict[str, str], list[str]]:
    """Store each parameter value as an artifact; those computed in start stay unresolved. A config is an
    artifact of every task, as a parameter is."""
    from .graph import Unresolved

    refs: dict[str, str] = {}
    unresolved: list[str] = []
    for attr, value in params.items():
        if isinstance(value, Unresolved):
            unresolved.append(attr)
            continue
        refs[attr], _ = ds.save_artifact(value)
    for config in graph.configs:
        if config.name in configs:
            refs[config.attr], _ = ds.save_artifact(configs[config.name])
    return refs, unresolved


def load_origin(ds: FlowDatastore, flow: str, origin: str, envs: Any) -> list[TaskRecord]:
    """The succeeded tasks of the run a resume clones from (``envs`` learns what their artifacts were
    pickled with, for the environment guard)."""
    if ds.read_run(origin) is None:
        raise UsageError(f"no run {origin} of flow {flow} in {ds.url}")
    records = []
    for step in ds.list_steps(origin):
        for task_id in ds.list_tasks(origin, step):
            record = ds.read_task(origin, step, task_id)
            if record is not None and record.status is TaskStatus.SUCCEEDED:
                records.append(record)
                if envs is not None:
                    envs.learn(record.artifacts)
    return records


def short_value(value: Any) -> Any:
    """A parameter's value as the run record shows it: numbers as they are, text cut at 200 characters."""
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "..."
