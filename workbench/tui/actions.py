"""What the workbench does, as opposed to what it shows: promote a step, run, resume, re-run one step,
cancel, follow and search the log. A mixin of :class:`workbench.tui.app.WorkbenchApp` (handlers are
named ``on_<widget>_<message>``, so they need no ``@on`` registration here)."""

from __future__ import annotations

import queue
from typing import TYPE_CHECKING, Optional

from textual import work

from .. import events as ev
from ..errors import WorkbenchError
from ..graph import FlowGraph
from ..progress import RunProgress
from .app_host import AppHost
from .runs import RunsPane, RunStore

if TYPE_CHECKING:
    from .widgets.inspector import Inspector


class WorkbenchActions(AppHost):
    # ------------------------------------------------------------------ promotion
    def on_inspector_changes_edited(self, event: Inspector.ChangesEdited) -> None:
        graph, step = self.graph, self.selected_step
        if graph is None or step is None or not event.changes or not graph.ok:
            self.pane("#inspector").set_notes([])
            return
        try:
            from ..promote import plan_promotion

            promotion = plan_promotion(self.config, graph, step, event.changes, check_capacity=False)
            notes = [f"would set: {', '.join(f'{k}={v}' for k, v in event.changes.items())}"]
            notes += list(promotion.notes)
        except Exception as exc:  # noqa: BLE001 - show the reason, keep the sliders usable
            notes = [f"cannot promote: {exc}"]
        self.pane("#inspector").set_notes(notes)

    def on_inspector_capacity_wanted(self, event: Inspector.CapacityWanted) -> None:
        self._read_capacity(event.backend)

    @work(thread=True, exclusive=True, group="capacity")
    def _read_capacity(self, backend: str) -> None:
        """Docker asks its engine, Batch its queue, Kubernetes its nodes: never on the UI thread."""
        placement = self.capacity_reader(backend, self.config)
        try:
            self.call_from_thread(self._capacity_read, placement)
        except RuntimeError:  # the app closed meanwhile
            pass

    def _capacity_read(self, placement) -> None:
        if self.screen_stack:
            self.pane("#inspector").set_capacity(placement)

    def on_inspector_promote_requested(self, event: Inspector.PromoteRequested) -> None:
        self.promote(event.changes)

    def action_promote(self) -> None:
        self.promote(self.pane("#inspector").changes())

    def promote(self, changes: dict) -> None:
        graph, step = self.graph, self.selected_step
        if graph is None or step is None or not graph.ok:
            self.notify("select a step of a valid flow first", severity="warning")
            return
        if not changes:
            self.notify("move a slider or pick a backend first (Inspect tab)", severity="warning")
            self.action_tab(1)
            return
        self._plan_promotion(graph, step, changes)

    @work(thread=True, exclusive=True, group="promote")
    def _plan_promotion(self, graph: FlowGraph, step: str, changes: dict) -> None:
        """Planning may ask a cloud backend what it can schedule: keep that off the UI thread."""
        try:
            from ..promote import plan_promotion

            promotion = plan_promotion(self.config, graph, step, changes)
        except Exception as exc:  # noqa: BLE001
            self.call_from_thread(self.notify, f"cannot promote {step}: {exc}", severity="error")
            return
        self.call_from_thread(self._confirm_promotion, promotion)

    def _confirm_promotion(self, promotion) -> None:
        from ..promote import apply_promotion
        from .screens.promote import PromoteScreen

        def done(apply: Optional[bool]) -> None:
            if not apply:
                return
            try:
                apply_promotion(promotion)
            except Exception as exc:  # noqa: BLE001
                self.notify(f"promotion failed: {exc}", severity="error")
                return
            self.notify(f"{promotion.step}: workbench.toml updated")
            self.reload({str(self.config.path)} if self.config.path else None)

        self.push_screen(PromoteScreen(f"Promote {promotion.graph.name}.{promotion.step}", promotion), done)

    # ------------------------------------------------------------------ runs
    def _sink(self, event: ev.Event) -> None:
        self.events.put(event)

    def start_runtime(self, **kwargs) -> None:
        from ..runtime import Runtime

        graph = self.graph
        if self.runtime is not None:
            self.notify("a run is in progress (c cancels it)", severity="warning")
            return
        if graph is None or not graph.ok:
            self.notify("this flow has errors; fix them first", severity="error")
            return
        try:
            self.runtime = Runtime(graph, self.config, sink=self._sink, **kwargs)
        except WorkbenchError as exc:
            self.notify(str(exc), severity="error")
            return
        self.pane("#logs").clear()
        # the live run's state; the DAG shows it while its flow is the selected one
        self.live_path = self.current
        self.live_statuses = {name: "pending" for name in graph.steps}
        self.live_counts, self.live_progress = {}, RunProgress()
        self.statuses, self.task_counts = self.live_statuses, self.live_counts
        self.live_run_id = self.runtime.run_id
        self.redraw_dag()
        self._run_in_thread(self.runtime)

    @work(thread=True, exclusive=True, group="run")
    def _run_in_thread(self, runtime) -> None:
        try:
            runtime.run()
        except WorkbenchError as exc:
            self.events.put(ev.RunFinished(runtime.flow, runtime.run_id, "failed", 0.0, (), str(exc)))
        except Exception as exc:  # noqa: BLE001 - a bug in a backend must not kill the TUI
            self.events.put(
                ev.RunFinished(runtime.flow, runtime.run_id, "failed", 0.0, (), f"{type(exc).__name__}: {exc}")
            )

    def drain_events(self, limit: int = 20000) -> None:
        lines: list[tuple[str, str]] = []
        redraw = False
        finished = None
        for _ in range(limit):
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            if isinstance(event, ev.LogLine):
                lines.append((event.pathspec, event.text))
            elif isinstance(event, (ev.TaskStarted, ev.TaskCloned, ev.TaskRetrying, ev.TaskFinished)):
                changed = self.live_progress.apply(event)  # the one status rule (workbench.progress)
                if changed is not None:
                    step = self.live_progress.steps[changed]
                    self.live_statuses[changed] = step.status  # in place: self.statuses may be this dict
                    self.live_counts[changed] = step.total
                if isinstance(event, ev.TaskFinished):  # a finished task no longer waits (Tasks tab)
                    self.pane("#tasks").set_waiting(event.pathspec, "")
                redraw = True
            elif isinstance(event, ev.RunWarning):
                self.notify(event.message, severity="warning")
            elif isinstance(event, ev.TaskWaiting):  # why a queued remote task is not running (Tasks tab)
                self.pane("#tasks").set_waiting(event.pathspec, event.reason, event.backend)
            elif isinstance(event, ev.RunFinished):
                finished = event
                self.pane("#tasks").set_waiting(None, "")
        if lines:
            self.pane("#logs").add(lines)
        if redraw and self.current == self.live_path:
            self.redraw_dag()
        if finished is not None:
            self.runtime = None
            self.live_run_id = None
            store = RunStore(self.config, finished.flow) if finished.flow else None
            self.notify(
                finished_message(store, finished), severity="information" if finished.status == "succeeded" else "error"
            )
            if self.current == self.live_path:
                store = self.run_store()
                self.pane("#runs").show(store, self.graph)
                self.show_artifacts(store, finished.run_id, self.selected_step)
                self.pane("#tasks").show(store, finished.run_id, self.selected_step)
                self._refresh_step()
            self.live_path = None

    def action_run(self) -> None:
        from ..parameters import resolve_parameters

        graph = self.graph
        try:
            params = resolve_parameters(graph.parameters, {}) if graph is not None and graph.ok else {}
        except WorkbenchError as exc:
            self.notify(f"{exc} (a opens the run dialog)", severity="error")
            return
        self.start_runtime(params=params)

    def action_run_dialog(self, focus: str = "param") -> None:
        """Parameters, backend and max workers for one run, checked as `workbench run` checks them."""
        from .screens.run_dialog import RunDialog

        graph = self.graph
        if graph is None or not graph.ok:
            self.notify("this flow has errors; fix them first", severity="error")
            return

        def done(request) -> None:
            if request is not None:
                self.start_runtime(params=request.params, backend=request.backend, max_workers=request.max_workers)

        self.push_screen(RunDialog(graph, focus), done)

    def action_fix_step(self) -> None:
        """After an out-of-memory kill or a timeout: re-run that step on its past inputs with a larger
        request, on the same or another backend, once the price difference has been seen."""
        from ..backends import REGISTRY
        from .screens.rerun import RerunScreen

        plan = getattr(self.pane("#tasks"), "plan", None)
        if plan is None:
            self.notify("no task of this step ran out of memory or time in the shown run", severity="warning")
            return

        def done(backend) -> None:
            if backend:
                self.start_runtime(
                    origin_run_id=plan.run_id,
                    rerun_steps={plan.step},
                    only_step=plan.step,
                    step_overrides={plan.step: plan.overrides(backend)},
                )

        self.push_screen(RerunScreen(plan, list(REGISTRY)), done)

    def action_cancel_run(self) -> None:
        """Cancel the TUI's own run; else the run chosen in Runs (or the newest) that is running elsewhere
        (CLI, detached) or crashed, as `workbench cancel RUN` does: its runtime is asked to stop if alive,
        and every backend releases what the run left."""
        if self.runtime is not None:
            self.runtime.cancel("cancelled from the TUI")
            self.notify("cancelling…")
            return
        store = self.run_store()
        target = self._cancellable(store)
        if store is None or target is None:
            self.notify("no run in progress (nor a crashed one) to cancel")
            return
        self.notify(f"cancelling run {target}…")
        self._cancel_elsewhere(store, target)

    def _cancellable(self, store: Optional[RunStore]) -> Optional[str]:
        if store is None:
            return None
        chosen = self.pane("#runs").selected_run
        for run_id in [chosen] if chosen else list(reversed(store.runs())):
            doc = store.run_doc(run_id)
            if doc is not None and str(doc.status) in ("running", "crashed"):
                return run_id
        return None

    @work(thread=True, exclusive=True, group="cancel")
    def _cancel_elsewhere(self, store: RunStore, run_id: str) -> None:
        from ..cancel import cancel_run

        try:
            result = cancel_run(store.ds, self.config, run_id)
            removed = f"; removed {', '.join(result.removed)}" if result.removed else ""
            message, failed = f"run {run_id} {result.status}{removed}", False
        except Exception as exc:  # noqa: BLE001 - a backend that cannot be reached: say so, keep going
            message, failed = f"could not cancel run {run_id}: {exc}", True
        try:
            self.call_from_thread(self._cancelled_elsewhere, message, failed)
        except RuntimeError:  # the app closed meanwhile
            pass

    def _cancelled_elsewhere(self, message: str, failed: bool) -> None:
        if self.screen_stack:
            self.notify(message, severity="error" if failed else "information")
            self.refresh_flow()

    def _origin(self) -> Optional[str]:
        from ..runtime import latest_run_id

        store = self.run_store()
        chosen = self.pane("#runs").selected_run
        if chosen or store is None:
            return chosen
        return latest_run_id(store.ds, lambda doc: not doc.only_step)

    def action_resume(self) -> None:
        origin = self._origin()
        if origin is None:
            self.notify("no earlier run to resume", severity="warning")
            return
        self.start_runtime(origin_run_id=origin)

    def action_run_step(self) -> None:
        origin, step = self._origin(), self.selected_step
        if origin is None or step is None:
            self.notify("run the flow once first: a step re-run takes its inputs from a past run", severity="warning")
            return
        self.start_runtime(origin_run_id=origin, rerun_steps={step}, only_step=step)

    def action_profile_step(self) -> None:
        """Re-run the selected step on its past inputs under the profiler (as `run --step S --profile`); when
        it ends, the Tasks tab shows its hot path and where the HTML report is."""
        origin, step = self._origin(), self.selected_step
        if origin is None or step is None:
            self.notify("run the flow once first: a profile re-runs a step on its past inputs", severity="warning")
            return
        self.start_runtime(
            origin_run_id=origin, rerun_steps={step}, only_step=step, step_overrides={step: {"profile": True}}
        )
        if self.runtime is not None:
            self.notify(f"profiling {step}: its hot path shows in Tasks (6) when it ends")

    def on_runs_pane_run_chosen(self, event: RunsPane.RunChosen) -> None:
        store = self.run_store()
        if store is None:
            return
        if self.runtime is None:
            self.show_run_statuses(store, event.run_id)
            self.redraw_dag()
            logs = self.pane("#logs")
            logs.clear()
            logs.add(store.log_lines(event.run_id))
            self.action_tab(3)  # enter on a run means "show me its logs"
        self.shown_run = event.run_id
        self.show_artifacts(store, event.run_id, self.selected_step)
        self.pane("#tasks").show(store, event.run_id, self.selected_step)

    # ------------------------------------------------------------------ logs
    def action_follow(self) -> None:
        logs = self.pane("#logs")
        logs.set_follow(not logs.follow)

    def action_search(self) -> None:
        self.action_tab(3)
        search = self.main_screen.query("#log-search")
        if search:
            search.first().focus()


def finished_message(store, finished: ev.RunFinished) -> str:
    """The notification for a finished run; it names the run only when the run has a record to find it by
    (a run refused before it started, e.g. by a backend's check, exists nowhere)."""
    reason = f": {finished.message}" if finished.message else ""
    recorded = store is None or bool(store.run_doc(finished.run_id))
    if not recorded:
        return f"the run did not start{reason}"
    return f"run {finished.run_id} {finished.status}{reason}"
