"""`workbench tui`: the flows list, the DAG of the selected flow, a step inspector with promotion
sliders, runs, live logs and artifacts. It renders the core's graph, settings, events and datastore;
it never imports user code.

`create_app(config, watch=...)` is the one factory used by the CLI and the tests.
"""

from __future__ import annotations

import gc
import queue
import time
from pathlib import Path
from typing import Callable, Optional

from rich.markup import escape
from textual import on
from textual.app import App, ComposeResult, ScreenStackError
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Footer, Header, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from .. import events as ev
from ..config import ProjectConfig, load_config
from ..errors import FlowError, WorkbenchError
from ..graph import FlowGraph, build_graph, find_flow_files
from ..progress import RunProgress
from ..settings import effective_settings
from .actions import WorkbenchActions
from .capacity import read_capacity
from .live import LiveRuns
from .palette import PaletteCommands
from .runs import ArtifactsPane, RunsPane, RunStore
from .watcher import ChangeHandler, Debouncer, start_observer
from .widgets import LaterPane, PaneMounted
from .widgets.dag_view import DagView

DATASTORE_POLL_SECONDS = 0.5
TABS = ["tab-dag", "tab-inspect", "tab-runs", "tab-logs", "tab-artifacts", "tab-tasks"]


class WorkbenchApp(LiveRuns, WorkbenchActions, PaletteCommands, App):
    CSS_PATH = Path(__file__).with_name("workbench.tcss")
    TITLE = "workbench"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("r", "run", "Run"),
        Binding("a", "run_dialog", "Run…"),
        Binding("c", "cancel_run", "Cancel"),
        Binding("R", "resume", "Resume"),
        Binding("o", "run_step", "Step"),
        Binding("P", "profile_step", "Profile", show=False),
        Binding("j", "next_step", "Move", key_display="j/k"),
        Binding("k", "prev_step", "Prev", show=False),
        Binding("p", "promote", "Promote"),
        Binding("f", "follow", "Follow"),
        Binding("slash", "search", "Search", key_display="/"),
        Binding("1", "tab(0)", "DAG", show=False),
        Binding("2", "tab(1)", "Inspect", show=False),
        Binding("3", "tab(2)", "Runs", show=False),
        Binding("4", "tab(3)", "Logs", show=False),
        Binding("5", "tab(4)", "Artifacts", show=False),
        Binding("6", "tab(5)", "Tasks", show=False),
        Binding("x", "fix_step", "Fix", show=False),
    ]
    COMMANDS = App.COMMANDS

    def __init__(
        self,
        config: ProjectConfig,
        *,
        watch: bool = True,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = 0.03,
        polling_observer: bool = False,
        datastore_poll: Optional[float] = DATASTORE_POLL_SECONDS,
        capacity_reader: Optional[Callable] = None,
        freeze_gc: bool = False,
    ) -> None:
        super().__init__()
        self.freeze_gc = freeze_gc  # the CLI's app: see run_app
        self.config = config
        self.watch_files = watch
        self.debouncer = Debouncer(clock=clock)
        # the watchdog handler; tests call handler.dispatch(event) directly, without an observer
        self.handler = ChangeHandler(self.debouncer, str(config.path) if config.path else None)
        self.poll_interval = poll_interval
        self.polling_observer = polling_observer
        self.datastore_poll = datastore_poll  # seconds between looks at the datastore for runs started elsewhere
        self.runs_snapshot: Optional[tuple] = None
        # (backend name, config) -> Placement; snapshot tests pass a fixed one so screens match on any machine
        self.capacity_reader = capacity_reader or read_capacity
        self.observer = None
        self.graphs: dict[str, FlowGraph] = {}
        # per file, the last graph that had steps: a syntax error keeps the last good DAG on screen
        self.last_drawable: dict[str, FlowGraph] = {}
        self.current: Optional[str] = None
        self.selected_step: Optional[str] = None
        self.statuses: dict[str, str] = {}
        self.task_counts: dict[str, int] = {}
        self.live_progress = RunProgress()  # the live run's per-step progress, reduced from its events
        self.settings: dict = {}
        self.settings_errors: dict[str, str] = {}
        self.config_error: Optional[str] = None
        self.events: "queue.SimpleQueue[ev.Event]" = queue.SimpleQueue()
        self.runtime = None
        self.live_run_id: Optional[str] = None
        self.live_path: Optional[str] = None
        self.live_statuses: dict[str, str] = {}
        self.live_counts: dict[str, int] = {}
        self.reload_count = 0  # for tests and the redraw benchmark
        self.shown_run: Optional[str] = None  # the run chosen in Runs (None: the latest)
        self.artifacts_wanted: Optional[tuple] = None  # a big run's artifacts, read when their tab is shown
        self.footer_in_logs = False  # the footer shows the Logs tab's keys (check_action)

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with Horizontal():
            with Vertical(id="left"):
                yield Static("Flows", id="flows-title")
                yield OptionList(id="flows")
            with TabbedContent(id="tabs"):
                with TabPane("DAG 1", id="tab-dag"):
                    yield Static("", id="flow-title")
                    yield Static("", id="flow-error")
                    with VerticalScroll(id="dag-scroll"):
                        yield DagView(id="dag")
                # hidden at first: built (their modules imported) and mounted just after the first paint,
                # so the first screen comes sooner
                with TabPane("Step 2", id="tab-inspect"):
                    yield LaterPane(_inspector)
                with TabPane("Runs 3", id="tab-runs"):
                    yield LaterPane(lambda: RunsPane(id="runs"))
                with TabPane("Logs 4", id="tab-logs"):
                    yield LaterPane(_logs)
                with TabPane("Artifacts 5", id="tab-artifacts"):
                    yield LaterPane(lambda: ArtifactsPane(id="artifacts"))
                with TabPane("Tasks 6", id="tab-tasks"):
                    yield LaterPane(_tasks)
        yield Footer(compact=True)

    def pane(self, selector: str):
        """A tab's pane, or a stand-in that ignores calls while the lazily mounted pane is not there yet."""
        found = self.main_screen.query(selector)
        return found.first() if found else _ABSENT

    @property
    def main_screen(self):
        """The workbench's own screen, also while a dialog or the command palette is on top."""
        return self.screen_stack[0] if self.screen_stack else self.screen

    @property
    def panes_ready(self) -> bool:
        return all(self.main_screen.query(f"#{name}") for name in ("inspector", "runs", "logs", "artifacts", "tasks"))

    def on_pane_mounted(self, message: PaneMounted) -> None:
        """A lazily mounted pane arrived: fill it from the current state."""
        if not self.screen_stack:  # the app is shutting down
            return
        try:
            self.refresh_flow()
        except (NoMatches, ScreenStackError):
            pass
        if self.freeze_gc and self.panes_ready:
            self.freeze_gc = False
            self.call_after_refresh(gc.freeze)  # the first full screen's objects live as long as the app

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(self.poll_interval, self.pump)
        if self.datastore_poll:
            self.set_interval(self.datastore_poll, self.poll_datastore)
        if self.watch_files:  # after the first paint: the observer's start is not on the first screen's path
            self.call_after_refresh(self.start_watching)

    def on_unmount(self) -> None:
        if self.observer is not None:
            self.observer.stop()
        if self.runtime is not None:
            self.runtime.cancel("the TUI quit")

    def notify(self, message: str, **kwargs) -> None:
        """Every notification carries user text (paths, errors, `[datastore]` advice): never read as markup."""
        super().notify(escape(message), **kwargs)

    def start_watching(self) -> None:
        handler = self.handler
        watches = [(self.config.flows_dir, True), (Path(self.config.root), False)]
        try:
            self.observer = start_observer(handler, watches, polling=self.polling_observer)
        except Exception as exc:  # noqa: BLE001 - e.g. inotify limits: keep working without watching
            self.notify(f"not watching files: {exc}", severity="warning")

    # the footer shows what applies to the current tab: at 80 columns not everything fits at once
    LOG_ACTIONS = {"follow", "search"}
    NOT_IN_LOGS = {"next_step", "prev_step", "promote"}

    def check_action(self, action: str, parameters: tuple) -> Optional[bool]:
        try:
            in_logs = self.main_screen.query_one("#tabs", TabbedContent).active == "tab-logs"
        except Exception:  # noqa: BLE001 - before mount or while shutting down
            return True
        if action in self.LOG_ACTIONS and not in_logs:
            return False
        if action in self.NOT_IN_LOGS and in_logs:
            return False
        return True

    @on(TabbedContent.TabActivated, "#tabs")
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        if not self.screen_stack:  # a key that arrived as the app closed
            return
        in_logs = event.pane.id == "tab-logs"
        if in_logs != self.footer_in_logs:  # the footer is rebuilt (every key remounted): only when it changes
            self.footer_in_logs = in_logs
            self.refresh_bindings()
        if event.pane.id == "tab-tasks":
            self.pane("#tasks").tick()  # a live step's hidden tab is not redrawn: it is now, at once
        if event.pane.id == "tab-artifacts" and self.artifacts_wanted is not None:
            store, run_id, step = self.artifacts_wanted
            self.artifacts_wanted = None
            self.pane("#artifacts").show(store, run_id, step)

    # ------------------------------------------------------------------ the flows and the graph
    def pump(self) -> None:
        """Timer: apply a due file reload and the run events that arrived since the last tick."""
        changed = self.debouncer.take_due()
        if changed:
            try:
                self.reload(changed)
            except Exception as exc:  # noqa: BLE001 - whatever is on disk, the app keeps running
                self.notify(f"could not reload: {type(exc).__name__}: {exc}", severity="error")
        self.drain_events()

    def reload(self, changed: Optional[set[str]] = None) -> None:
        """Rescan the flows and rebuild their static graphs; never raises for bad files."""
        if self.config.path and (changed is None or any(Path(p).name == self.config.path.name for p in changed)):
            try:
                self.config = load_config(path=self.config.path)
                self.config_error = None
            except WorkbenchError as exc:
                self.config_error = str(exc)
            except Exception as exc:  # noqa: BLE001 - a half-written file must not crash the app
                self.config_error = f"{self.config.path}: {exc}"
        try:
            files = [str(p) for p in find_flow_files(self.config.flows_dir)]
        except OSError:
            files = []
        graphs = {}
        for path in files:
            if changed is None or path in changed or path not in self.graphs or not changed <= set(self.graphs):
                graphs[path] = _graph_or_error(path)
            else:
                graphs[path] = self.graphs[path]
        appeared = set(graphs) - set(self.graphs)
        for path, graph in graphs.items():
            if graph.steps:
                self.last_drawable[path] = graph
        self.graphs = graphs
        if self.current not in graphs:
            if len(appeared) == 1 and self.current is not None:  # a rename: follow the file
                self.current = appeared.pop()
            else:
                self.current = files[0] if files else None
                self.selected_step = None
        self.reload_count += 1
        self.refresh_flows_list()
        self.refresh_flow()

    def refresh_flows_list(self) -> None:
        options = []
        for path, graph in self.graphs.items():
            rel = _relative(path, self.config.flows_dir)
            if graph.ok:
                options.append(
                    Option(f"[$success]✔[/] {escape(graph.name or rel)}\n  [$text-muted]{escape(rel)}[/]", id=path)
                )
            else:
                err = graph.errors[0]
                where = f"line {err.line}: " if getattr(err, "line", None) else ""
                options.append(
                    Option(
                        f"[$error]✘[/] {escape(graph.name or rel)}\n  [$error]{escape(where + err.message)}[/]", id=path
                    )
                )
        flows = self.main_screen.query_one("#flows", OptionList)
        flows.set_options(options)
        if self.current is not None:
            flows.highlighted = list(self.graphs).index(self.current)
        self.main_screen.query_one("#flows-title", Static).update(
            f"Flows ({len(options)})" if options else "Flows: none"
        )

    @on(OptionList.OptionHighlighted, "#flows")
    def _flow_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        path = event.option.id
        if path and path != self.current:
            self.current = path
            self.selected_step = None
            self.refresh_flow()

    def select_flow(self, path: str) -> None:
        if path in self.graphs:
            self.current = path
            self.selected_step = None
            self.refresh_flows_list()
            self.refresh_flow()

    @property
    def graph(self) -> Optional[FlowGraph]:
        return self.graphs.get(self.current) if self.current else None

    def run_store(self) -> Optional[RunStore]:
        graph = self.graph
        if graph is None or not graph.name:
            return None
        return RunStore(self.config, graph.name)

    def refresh_flow(self) -> None:
        graph = self.graph
        title = self.main_screen.query_one("#flow-title", Static)
        error = self.main_screen.query_one("#flow-error", Static)
        self.settings, self.settings_errors = {}, {}
        if graph is None:
            title.update(f"No flow files under {escape(str(self.config.flows_dir))}")
            error.update("")
            self.main_screen.query_one("#dag", DagView).show(None, {}, {}, None)
            self._refresh_step()
            return
        rel = _relative(graph.path, self.config.root)
        params = ", ".join(f"{p.name}={p.default!r}" for p in graph.parameters)
        title.update(
            f"[b]{escape(graph.name or Path(graph.path).name)}[/b]  [$text-muted]{escape(rel)}"
            f"{'  params: ' + escape(params) if params else ''}[/]"
        )
        problems = []
        if self.config_error:
            problems.append(self.config_error)
        for err in graph.errors:
            problems.append(
                f"{rel}:{err.line}: {err.message}" if getattr(err, "line", None) else f"{rel}: {err.message}"
            )
        if not graph.steps and self.drawn_graph is not graph and self.drawn_graph is not None:
            problems.append("the DAG below is the last version that parsed")
        error.update("\n".join(f"[$error]✘ {escape(p)}[/]" for p in problems))
        error.display = bool(problems)
        for name in graph.steps:
            try:
                self.settings[name] = effective_settings(graph, name, self.config)
            except WorkbenchError as exc:
                self.settings_errors[name] = str(exc)
            except Exception as exc:  # noqa: BLE001 - an odd literal in a decorator must not crash the app
                self.settings_errors[name] = f"step {name}: {type(exc).__name__}: {exc}"
        drawn = self.drawn_graph or graph
        if self.selected_step not in drawn.steps:
            order = drawn.topological() if drawn.steps else []
            self.selected_step = order[0] if order else None
        store = self.run_store()
        if self.live_run_id is not None and self.current == self.live_path:
            self.statuses, self.task_counts = self.live_statuses, self.live_counts
        elif store is not None:
            self.show_run_statuses(store, store.latest_run())
        elif store is None:
            self.statuses, self.task_counts = {}, {}
        self.redraw_dag()
        self._refresh_step()
        self.pane("#runs").show(store, graph)
        self.show_artifacts(store, None, self.selected_step)
        self.shown_run = None
        self.pane("#tasks").show(store, None, self.selected_step)

    def show_artifacts(self, store: Optional[RunStore], run_id: Optional[str], step: Optional[str]) -> None:
        """The artifacts pane reads every task record of the run: only once it is looked at (a live run
        changes under it twice a second)."""
        self.artifacts_wanted = (store, run_id, step)
        on_tab = self.main_screen.query_one("#tabs", TabbedContent).active == "tab-artifacts"
        if on_tab or store is None:
            self.artifacts_wanted = None
            self.pane("#artifacts").show(store, run_id, step)

    @property
    def drawn_graph(self) -> Optional[FlowGraph]:
        """The selected flow's graph, or while it cannot be parsed, the last version that could."""
        graph = self.graph
        if graph is not None and not graph.steps and self.current in self.last_drawable:
            return self.last_drawable[self.current]
        return graph

    def redraw_dag(self) -> None:
        self.main_screen.query_one("#dag", DagView).show(
            self.drawn_graph, self.statuses, self.settings, self.selected_step, self.task_counts
        )

    def _refresh_step(self) -> None:
        graph, step = self.graph, self.selected_step
        usage = None
        store = self.run_store()
        if store is not None and step:
            usage = store.latest_usage(step)
        self.pane("#inspector").show(graph, step, self.settings.get(step), usage, self.settings_errors.get(step or ""))

    def select_step(self, name: str) -> None:
        self.selected_step = name
        self.redraw_dag()
        self._refresh_step()
        self.show_artifacts(self.run_store(), None, name)
        self.pane("#tasks").show(self.run_store(), self.shown_run, name)

    @on(DagView.StepClicked)
    def _step_clicked(self, event: DagView.StepClicked) -> None:
        self.select_step(event.step)

    def _move_step(self, delta: int) -> None:
        graph = self.graph
        if graph is None or not graph.steps:
            return
        order = graph.topological()
        i = order.index(self.selected_step) if self.selected_step in order else -1
        self.select_step(order[(i + delta) % len(order)])

    def action_next_step(self) -> None:
        self._move_step(1)

    def action_prev_step(self) -> None:
        self._move_step(-1)

    def action_tab(self, index: int) -> None:
        self.main_screen.query_one("#tabs", TabbedContent).active = TABS[index]


class _Absent:
    """Stands in for a pane that is not mounted yet: every method does nothing."""

    selected_run = None
    follow = True
    plan = None

    def changes(self) -> dict:
        return {}

    def __getattr__(self, name):
        return _nothing


def _nothing(*args, **kwargs):
    return None


_ABSENT = _Absent()


def _inspector():
    from .widgets.inspector import Inspector

    return Inspector(id="inspector")


def _logs():
    from .widgets.logs import LogPane

    return LogPane(id="logs")


def _tasks():
    from .widgets.tasks import TasksPane

    return TasksPane(id="tasks")


def _relative(path: str | Path, base: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(path)


def _graph_or_error(path: str) -> FlowGraph:
    """build_graph reports bad flows in ``errors``; should it ever raise, the file still shows, with the error."""
    try:
        return build_graph(path)
    except Exception as exc:  # noqa: BLE001 - whatever is on disk at launch, the app starts
        return FlowGraph(
            path=path, errors=[FlowError(f"cannot read this flow: {type(exc).__name__}: {exc}", path=path)]
        )


def create_app(config: ProjectConfig, *, watch: bool = True, **kwargs) -> WorkbenchApp:
    return WorkbenchApp(config, watch=watch, **kwargs)


def run_app(config: ProjectConfig) -> int:
    # freeze_gc: Python's full collections scanned the first screen's ~100,000 objects, ~100 ms each and 64 of
    # them while a 10,000-task run was followed live (benchmarks/tui_foreach.py); frozen, median 12 ms.
    app = create_app(config, freeze_gc=True)
    app.run()
    return app.return_code or 0
