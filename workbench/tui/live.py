"""What the screen shows of runs that change under it: runs started elsewhere (CLI, detached), found by
polling the datastore from a worker, and the statuses of big runs, read off the UI thread. A mixin of
:class:`workbench.tui.app.WorkbenchApp`."""

from __future__ import annotations

from typing import Optional

from textual import work
from textual.app import ScreenStackError
from textual.css.query import NoMatches

from .app_host import AppHost
from .runs import RunStore, aggregate_statuses


class LiveRuns(AppHost):
    def show_run_statuses(self, store: RunStore, run_id: Optional[str]) -> None:
        """The DAG's statuses and ×N for a run: at once for a small run, from a worker for a big one."""
        self.task_counts = store.task_counts(run_id)  # directory listings: cheap
        if store.quick(run_id):
            self.statuses = aggregate_statuses(store, run_id)
        else:
            self.statuses = {}
            self._read_statuses(self.current, store, run_id)

    @work(thread=True, exclusive=True, group="statuses")
    def _read_statuses(self, path: Optional[str], store: RunStore, run_id: str) -> None:
        statuses = aggregate_statuses(store, run_id)
        try:
            self.call_from_thread(self._statuses_read, path, statuses)
        except RuntimeError:  # the app closed meanwhile
            pass

    def _statuses_read(self, path: Optional[str], statuses: dict) -> None:
        if self.screen_stack and path == self.current and self.live_path != path:
            self.statuses = statuses
            self.redraw_dag()

    def poll_datastore(self) -> None:
        """Timer: look for runs started elsewhere (CLI, detached) and their progress, off the UI thread."""
        if self.runtime is not None and self.current == self.live_path:
            return  # our own run's events are fresher than its records
        graph = self.graph
        if graph is not None and graph.name:  # the store is made in the worker: resolving its path is syscalls
            self._read_runs_snapshot(self.current, self.config, graph.name)

    @work(thread=True, exclusive=True, group="datastore-poll")
    def _read_runs_snapshot(self, path: Optional[str], config, flow: str) -> None:
        try:
            snapshot = RunStore(config, flow).snapshot()
        except Exception:  # noqa: BLE001 - a half-written record: look again at the next tick
            return
        try:
            self.call_from_thread(self._apply_runs_snapshot, path, snapshot)
        except RuntimeError:  # the app closed meanwhile
            pass

    def _apply_runs_snapshot(self, path: Optional[str], snapshot: tuple) -> None:
        if (
            not self.screen_stack
            or path != self.current
            or (self.runtime is not None and self.current == self.live_path)
        ):
            return
        if self.runs_snapshot is not None and self.runs_snapshot[0] == path and self.runs_snapshot[1] != snapshot:
            try:
                latest = snapshot[0][-1] if snapshot[0] else None
                progress = {run_id: (statuses, counts) for run_id, statuses, counts in snapshot[2]}
                if self.runs_snapshot[1][:2] == snapshot[:2] and self.shown_run is None and latest in progress:
                    # only a live run's progress moved: the DAG's statuses and ×N as the poller read them, off
                    # this thread (the Tasks tab reads its own)
                    statuses, counts = progress[latest]
                    self.statuses, self.task_counts = dict(statuses), dict(counts)
                    self.redraw_dag()
                else:
                    self.refresh_flow()  # runs came or ended: statuses, counts, the runs table, the panes
            except (NoMatches, ScreenStackError):  # the app is closing: its widgets are going away
                return
        self.runs_snapshot = (path, snapshot)
