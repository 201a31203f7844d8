"""What the :class:`workbench.tui.app.WorkbenchApp` mixins (actions, live runs) borrow from the app, spelled
out for the type checker only: at run time ``AppHost`` is plain ``object``, so the mixins add nothing to the
app's method resolution and Textual's own ``App`` stays the one base that provides these."""

from __future__ import annotations

import queue
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen

    from .. import events as ev
    from ..config import ProjectConfig
    from ..graph import FlowGraph
    from ..progress import RunProgress
    from ..runtime import Runtime
    from .runs import RunStore

    class AppHost(App[None]):
        """The app's state and helpers that the mixins use; WorkbenchApp defines each of them."""

        config: ProjectConfig
        current: Optional[str]
        selected_step: Optional[str]
        statuses: dict[str, str]
        task_counts: dict[str, int]
        live_progress: RunProgress
        events: queue.SimpleQueue[ev.Event]
        runtime: Optional[Runtime]
        live_run_id: Optional[str]
        shown_run: Optional[str]
        live_path: Optional[str]
        live_statuses: dict[str, str]
        live_counts: dict[str, int]
        runs_snapshot: Optional[tuple[Any, ...]]
        capacity_reader: Callable[..., Any]

        def pane(self, selector: str) -> Any: ...

        @property
        def main_screen(self) -> Screen[Any]: ...

        @property
        def graph(self) -> Optional[FlowGraph]: ...

        def run_store(self) -> Optional[RunStore]: ...

        def refresh_flow(self) -> None: ...

        def reload(self, changed: Optional[set[str]] = None) -> None: ...

        def show_artifacts(self, store: Optional[RunStore], run_id: Optional[str], step: Optional[str]) -> None: ...

        def redraw_dag(self) -> None: ...

        def show_run_statuses(self, store: RunStore, run_id: Optional[str]) -> None: ...

        def _refresh_step(self) -> None: ...

        def action_tab(self, index: int) -> None: ...

        def action_run_dialog(self, focus: str = "param") -> None: ...

else:
    AppHost = object
