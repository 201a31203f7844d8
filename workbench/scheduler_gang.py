"""@parallel gangs in the scheduler: ``self.next(self.train, num_parallel=N)`` starts N tasks of ``train``
together, all or nothing. One node failing cancels the others and fails (or retries) the whole gang;
the gang's tasks are recorded only when every node has answered, so the join after it sees all N or
none. Every Submit of a gang carries ``spec.parallel`` ({gang, node_index, num_nodes,
control_task_id}) and the Submits of one gang come out together, so a remote backend can launch them
as one multi-node job.
"""

from __future__ import annotations

import dataclasses
import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from .backends.base import TaskExit
from .datastore.records import AttemptRecord, TaskStatus

if TYPE_CHECKING:  # pragma: no cover
    from .scheduler_tasks import _Task


@dataclass
class _Gang:
    members: list = field(default_factory=list)
    results: dict[str, tuple] = field(default_factory=dict)  # task id -> (exit, report), in the order they came
    arrived: dict[str, float] = field(default_factory=dict)  # task id -> when its exit reached the scheduler
    failing: Optional[str] = None  # why the gang fails (the first node's failure, then the culprit's)
    culprit: Optional[str] = None  # the task id of the node named in ``failing``, once all have answered


def _rank(status: TaskStatus, result: TaskExit, report: Optional[AttemptRecord]) -> int:
    """What a node's failure says: 0 its own report says it failed (and when), 1 it ended by itself
    without a report (crashed, OOM-killed, its pod gone), 2 it was stopped from outside (cancelled,
    SIGTERM: exit 143 with no report), 3 it succeeded."""
    if status is TaskStatus.SUCCEEDED:
        return 3
    if report is not None and report.status in (TaskStatus.FAILED, TaskStatus.TIMEOUT):
        return 0
    if status is TaskStatus.CANCELLED or (result.exit_code == 143 and report is None):
        return 2
    return 1


class GangMixin:
    """The gang half of :class:`workbench.scheduler.Scheduler` (kept apart to keep each file small)."""

    _gangs: dict[str, _Gang]
    _running: dict[str, Any]
    _failed: list
    _delayed: list
    phase: str

    def _start_gang(self, parent: "_Task", node: Any, now: float, out: list) -> None:
        """Fan a num_parallel transition out into one gang of N tasks, each a frame of a foreach of N."""
        n = parent.num_splits or int(node.num_parallel)  # the task's own count (num_parallel=self.n)
        gang_id = f"{parent.step}/{parent.task_id}"
        gang = self._gangs[gang_id] = _Gang()
        for i in range(n):
            frame = {"step": parent.step, "var": None, "index": i, "num_splits": n}
            member = self._new_task(node.out[0], parent.foreach_stack + [frame], [parent])  # type: ignore[attr-defined]
            gang.members.append(member)
        for i, member in enumerate(gang.members):
            member.parallel = {
                "gang": gang_id,
                "node_index": i,
                "num_nodes": n,
                "control_task_id": gang.members[0].task_id,
            }
        for member in gang.members:
            self._enqueue(member, now, out)  # type: ignore[attr-defined]

    def _gang_member_exited(
        self, task: "_Task", result: TaskExit, report: Optional[AttemptRecord], now: float, out: list
    ) -> None:
        """Hold a node's outcome until the whole gang has answered; a failure cancels the other nodes."""
        from .scheduler import Cancel

        assert task.parallel is not None  # only gang members come here
        gang = self._gangs[task.parallel["gang"]]
        self._running.pop(task.task_id, None)
        gang.results[task.task_id] = (result, report)
        gang.arrived[task.task_id] = now
        status, reason = self._reconcile(result, report)  # type: ignore[attr-defined]
        if status is not TaskStatus.SUCCEEDED and gang.failing is None:
            gang.failing = f"node {task.parallel['node_index']} of the gang failed: {reason or status}"
            for member in gang.members:
                if member.task_id in self._running:
                    out.append(Cancel(member.task_id, gang.failing))
        if any(m.task_id in self._running for m in gang.members):
            return
        if gang.failing is not None:
            gang.failing = self._gang_culprit(gang)
        if gang.failing is None:
            for member in gang.members:
                self._running[member.task_id] = member  # _finish takes it off again
                self._finish(member, *gang.results[member.task_id], now, out)  # type: ignore[attr-defined]
            return
        settings = gang.members[0].settings
        retry = gang.members[0].attempt < settings.retries and self.phase == "running"
        if not retry and self._gang_catch_fallback(gang, now, out):
            return
        for member in gang.members:
            failed, m_report = self._member_exit(gang, member), gang.results[member.task_id][1]
            if retry:  # the whole gang starts again, together
                self._record(member, TaskStatus.RETRYING, failed, m_report, now, out, final=False)  # type: ignore[attr-defined]
                member.attempt += 1
                member.status = TaskStatus.PENDING
                self._seq += 1  # type: ignore[attr-defined]
                heapq.heappush(self._delayed, (now + settings.retry_delay, self._seq, member))  # type: ignore[attr-defined]
            else:
                self._record(member, TaskStatus.parse(failed.status), failed, m_report, now, out)  # type: ignore[attr-defined]
                self._failed.append(member)
        gang.results.clear()
        gang.arrived.clear()
        gang.failing = gang.culprit = None

    def _member_exit(self, gang: _Gang, member: "_Task") -> TaskExit:
        """A node's outcome as recorded: the culprit in its own words (also when the backend says it was
        cancelled), every other node with the gang's reason."""
        result, report = gang.results[member.task_id]
        status, reason = self._reconcile(result, report)  # type: ignore[attr-defined]
        if member.task_id == gang.culprit and _rank(status, result, report) == 0:
            assert report is not None  # rank 0: its own report says it failed
            status, reason = report.status, report.reason or reason
        elif member.task_id != gang.culprit:  # it failed with the gang (its own words stay in its attempt and log)
            status, reason = TaskStatus.FAILED, gang.failing or "the gang failed"
        return TaskExit(status, result.exit_code, reason, result.usage)

    def _gang_culprit(self, gang: _Gang) -> str:
        """Why the gang failed, named after the node that failed first on its own; sets ``gang.culprit``.
        The first failure to arrive is not always that node: a platform that fails the gang stops the other
        nodes (SIGTERM: exit 143, or their pods deleted), and those may reach the runtime before the node
        that caused it, whose exit waits for its logs. So, once every node has answered, leaving out the
        nodes stopped from outside (cancelled, or exit 143 without a report), the node that failed first:
        by its own report's clock when it wrote one (reports are written as the failure happens), else by
        when the platform says its container ended (``TaskExit.ended_at``: a pod's ``finishedAt``, a Batch
        job's ``stoppedAt``), else by when its exit arrived (no later than it happened). If every node was
        stopped from outside, the first to arrive."""
        order = {task_id: i for i, task_id in enumerate(gang.results)}
        nodes = []  # (0 failed on its own / 2 stopped from outside, when, arrival order, member, status, reason)
        for member in gang.members:
            result, report = gang.results[member.task_id]
            status, reason = self._reconcile(result, report)  # type: ignore[attr-defined]
            rank = _rank(status, result, report)
            if rank == 3:
                continue
            when = gang.arrived.get(member.task_id, float("inf"))
            if rank == 0 and report is not None:
                reason = report.reason or reason  # its own words, also when the backend says it was cancelled
                when = min(when, report.finished_at or when)
            elif result.ended_at is not None:  # the platform said when its container ended
                when = min(when, result.ended_at)
            nodes.append((2 if rank == 2 else 0, when, order[member.task_id], member, status, reason))
        assert nodes  # a failure made the gang failing
        _, _, _, member, status, reason = min(nodes, key=lambda n: n[:3])
        gang.culprit = member.task_id
        return f"node {member.parallel['node_index']} of the gang failed: {reason or status}"

    def _gang_catch_fallback(self, gang: _Gang, now: float, out: list) -> bool:
        """@catch of a gang whose nodes died without their code raising (killed, never started): as in
        Metaflow, only the control task (node 0) gets the fallback attempt that stores the failure; the
        other nodes end failed, and the join after the gang takes the control task alone. A node whose
        code raised was caught inside its own task (it succeeded), so any failure left is the
        environment's. Returns whether the fallback was started."""
        control = gang.members[0]
        settings = control.settings
        if not settings.catch or self.phase != "running" or control.catch_fallback is not None:
            return False
        results = {m.task_id: self._reconcile(*gang.results[m.task_id]) for m in gang.members}  # type: ignore[attr-defined]
        if any(gang.results[t][1] is not None and s is not TaskStatus.SUCCEEDED for t, (s, _) in results.items()):
            return False  # a node's own report says it failed (e.g. its outputs could not be saved)
        for member in gang.members:
            failed, m_report = self._member_exit(gang, member), gang.results[member.task_id][1]
            final = member is not control
            status = TaskStatus.FAILED if final else TaskStatus.RETRYING
            self._record(member, status, failed, m_report, now, out, final=final)  # type: ignore[attr-defined]
        control.catch_fallback = gang.failing or "the gang failed"
        control.settings = dataclasses.replace(settings, backend="local", image=None, gpu=0)
        control.attempt += 1
        control.status = TaskStatus.PENDING
        gang.members = [control]
        gang.results.clear()
        gang.arrived.clear()
        gang.failing = gang.culprit = None
        self._ready.append(control)  # type: ignore[attr-defined]
        return True
