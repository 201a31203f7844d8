"""The read side over past runs for the CLI commands (runs, logs, artifacts, show --usage), the TUI (runs,
DAG statuses, inspector) and promote: records and summaries, never an unpickled value (except ``load``).
Part of the client (``workbench.client`` re-exports it); Metaflow's object API is in :mod:`workbench.client`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Optional

from .datastore import FlowDatastore
from .datastore.records import RunRecord, StepSummaryRecord, TaskRecord
from .errors import UsageError

if TYPE_CHECKING:
    from .client import Flow
    from .progress import RunProgress

# What the CLI commands (runs, logs, artifacts, show --usage), the TUI (runs, DAG statuses, inspector)
# and promote read about past runs: records and summaries, never an unpickled value (except load()).


class PastRuns:
    """One flow's past runs as records. Failure-tolerant: a broken or half-written run directory reads as
    absent (a viewer must never crash on one), and nothing here unpickles an artifact but :meth:`load`."""

    def __init__(self, ds: FlowDatastore):
        self.ds = ds

    @classmethod
    def of(cls, flow: str, datastore: Optional[str] = None) -> "PastRuns":
        from .client import _url

        return cls(FlowDatastore(datastore or _url(), flow))

    def runs(self) -> list[str]:
        """Run ids, oldest first."""
        try:
            return self.ds.list_runs()
        except Exception:  # noqa: BLE001 - unreadable store: nothing to show
            return []

    def latest_run(self) -> Optional[str]:
        runs = self.runs()
        return runs[-1] if runs else None

    def run_record(self, run_id: str) -> Optional[RunRecord]:
        try:
            return self.ds.read_run(run_id)
        except Exception:  # noqa: BLE001
            return None

    def steps(self, run_id: str) -> list[str]:
        try:
            return self.ds.list_steps(run_id)
        except Exception:  # noqa: BLE001
            return []

    def task_ids(self, run_id: str, step: str) -> list[str]:
        try:
            return self.ds.list_tasks(run_id, step)
        except Exception:  # noqa: BLE001
            return []

    def tasks(self, run_id: str, step: Optional[str] = None) -> list[TaskRecord]:
        """The finished (or cloned) tasks' records, of one step or of the whole run."""
        out: list[TaskRecord] = []
        for name in [step] if step else self.steps(run_id):
            for task_id in self.task_ids(run_id, name):
                try:
                    doc = self.ds.read_task(run_id, name, task_id)
                except Exception:  # noqa: BLE001
                    doc = None
                if doc:
                    out.append(doc)
        return out

    def task_records(self, run_id: str, step: str, task_ids: list[str]) -> list[TaskRecord]:
        """The records of the given tasks of a step (a page of a big step), in that order; absent ones skipped."""
        out: list[TaskRecord] = []
        for task_id in task_ids:
            try:
                doc = self.ds.read_task(run_id, step, task_id)
            except Exception:  # noqa: BLE001
                doc = None
            if doc:
                out.append(doc)
        return out

    def step_summary(self, run_id: str, step: str, *, fold: bool = True) -> Optional[StepSummaryRecord]:
        """The step's tasks at a glance: the summary the runtime wrote, one small read however many tasks
        the step has. A run written before summaries existed has none: with ``fold`` its task records are
        read and folded the same way (tasks of a running run without a record yet count as running)."""
        try:
            record = self.ds.read_step_summary(run_id, step)
        except Exception:  # noqa: BLE001 - a half-written summary: fold the records instead
            record = None
        if record is not None or not fold:
            return record
        from .step_summary import summarize_records

        docs = self.tasks(run_id, step)
        run = self.run_record(run_id)
        running = len(self.task_ids(run_id, step)) - len(docs) if run is not None and run.status == "running" else 0
        return summarize_records(self.ds.flow, run_id, step, docs, max(0, running)) if docs or running else None

    def steps_in_order(self, run_id: str) -> list[str]:
        """The run's steps in the order their first tasks were numbered (roughly the order they ran)."""
        first: dict[str, int] = {}
        for step in self.steps(run_id):
            tasks = self.task_ids(run_id, step)
            first[step] = int(tasks[0]) if tasks and tasks[0].isdigit() else 0
        return sorted(first, key=lambda s: first[s])

    def progress(self, run_id: Optional[str]) -> "RunProgress":
        """The run's per-step progress by the same rule as a live run's (:mod:`workbench.progress`)."""
        from .progress import RunProgress, events_from_tasks, reduce_events

        return reduce_events(events_from_tasks(self.tasks(run_id))) if run_id else RunProgress()

    def task_counts(self, run_id: Optional[str]) -> dict[str, int]:
        """Step -> tasks the run has of it (running ones included)."""
        return {step: len(self.task_ids(run_id, step)) for step in self.steps(run_id)} if run_id else {}

    def usage(self, step: str) -> Optional[dict[str, Any]]:
        """The step's measured usage by the one rule of :mod:`workbench.usage`."""
        from .usage import usage_by_step

        return usage_by_step(self.ds, [step]).get(step)

    def logs(self, run_id: str, step: str, task_id: str, attempt: Optional[int] = None) -> list[tuple[str, str, str]]:
        """(timestamp, stream, text) lines of a task's attempt (the last one by default)."""
        return list(self.ds.read_log(run_id, step, task_id, attempt))

    def log_lines(self, run_id: str) -> list[tuple[str, str]]:
        """(pathspec, text) of every task's log in the run, task by task."""
        lines: list[tuple[str, str]] = []
        for doc in self.tasks(run_id):
            try:
                for _ts, _stream, text in self.ds.read_log(run_id, doc.step, doc.task_id):
                    lines.append((doc.pathspec, text))
            except Exception:  # noqa: BLE001
                continue
        return lines

    def load(self, sha: str) -> Any:
        """Unpickle one blob: runs code a step stored. Only for explicit requests (``artifacts --load``)."""
        return self.ds.load_artifact(sha)

    def resolve_tasks(self, parts: list[str]) -> list[tuple[str, str, str]]:
        """(run, step, task) for RUN[/STEP[/TASK]] split into parts; a named step must have tasks."""
        run_id = parts[0]
        steps = [parts[1]] if len(parts) > 1 else self.steps_in_order(run_id)
        out: list[tuple[str, str, str]] = []
        for step in steps:
            tasks = [parts[2]] if len(parts) > 2 else self.ds.list_tasks(run_id, step)
            if len(parts) > 1 and not tasks:
                raise UsageError(
                    f"run {run_id} has no tasks of step {step} (steps: {', '.join(self.ds.list_steps(run_id))})"
                )
            out.extend((run_id, step, t) for t in tasks)
        return out


def run_records(datastore: str, flows: Optional[list[str]] = None) -> list[RunRecord]:
    """Every run of the given flows (default: every flow in the datastore), newest first, as the TUI lists them."""
    import dataclasses

    from .datastore import list_flows
    from .datastore.storage import open_storage

    storage = open_storage(datastore)
    rows: list[RunRecord] = []
    for flow in flows if flows is not None else list_flows(storage):
        ds = FlowDatastore(storage, flow)
        for run_id in ds.list_runs():
            doc = ds.read_run(run_id) or RunRecord()
            rows.append(dataclasses.replace(doc, flow=flow, run_id=run_id))
    rows.sort(key=lambda d: (d.started_at or 0, d.run_id), reverse=True)
    return rows


class Metaflow:
    """Every flow in the datastore: ``Metaflow().flows``."""

    @property
    def flows(self) -> list["Flow"]:
        """As Metaflow documents it: the flows with at least one run in the current namespace (so
        ``flow.latest_run`` is never None; a flow whose only run was refused before it started is not one)."""
        from .client import Flow, _url
        from .datastore.storage import open_storage

        storage = open_storage(_url())
        found = []
        for name in sorted(storage.list("")):
            try:
                flow = Flow(name)
            except Exception:  # noqa: BLE001 - not a flow's directory
                continue
            if next(flow._iter_runs(), None) is not None:  # one run is enough to list it
                found.append(flow)
        return found

    def __iter__(self) -> Iterator["Flow"]:
        return iter(self.flows)
