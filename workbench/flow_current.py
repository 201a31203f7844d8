"""``current``: what the running task is (``from workbench import current; current.run_id``), and the
class introspection it needs (a flow's parameters and its @project as Metaflow resolves it).

Split from ``flowspec.py``, which re-exports these names: flows import ``current`` from ``workbench``, the
runtime and tests from ``workbench.flowspec``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Optional

if TYPE_CHECKING:
    from .client import Run, Task


class Current:
    """What the running task is: ``from workbench import current; current.run_id``."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.flow_name: Optional[str] = None
        self.run_id: Optional[str] = None
        self.step_name: Optional[str] = None
        self.task_id: Optional[str] = None
        self.retry_count: int = 0
        self.origin_run_id: Optional[str] = None
        self._namespace: Optional[str] = None
        self._username: Optional[str] = None
        self.parameter_names: list[str] = []
        self.project_name: Optional[str] = None
        self.branch_name: Optional[str] = None
        self.project_flow_name: Optional[str] = None
        self.is_production: bool = False
        self.is_running_flow: bool = False
        self.parallel: Optional[Parallel] = None

    def _bind_flow_class(self, flow_cls: type) -> None:
        """Learn what the flow class declares: its parameters' names and its @project."""
        from .parameters import Parameter

        self.parameter_names = [v.name for k, v in vars_of_class(flow_cls).items() if isinstance(v, Parameter)]
        project = project_of(flow_cls)
        self.project_name = project["name"] if project else None
        self.branch_name = project["branch"] if project else None
        self.is_production = bool(project and project["branch"] == "prod")
        self.project_flow_name = f"{project['name']}.{project['branch']}.{flow_cls.__name__}" if project else None

    @property
    def namespace(self) -> Optional[str]:
        from .client import get_namespace

        return self._namespace or get_namespace()

    @namespace.setter
    def namespace(self, value: Optional[str]) -> None:
        self._namespace = value

    @property
    def tags(self) -> set[str]:
        """The run's user tags (``--tag``, as Metaflow's ``current.tags``)."""
        run = self.run
        return set(run.user_tags) if run is not None else set()

    @property
    def run(self) -> Optional[Run]:
        """The client's Run of the running task."""
        if not self.is_running_flow:
            return None
        from .client import Run

        return Run(f"{self.flow_name}/{self.run_id}", _namespace_check=False)

    @property
    def task(self) -> Optional[Task]:
        """The client's Task of the running task."""
        if not self.is_running_flow:
            return None
        from .client import Task

        return Task(self.pathspec, _namespace_check=False)

    @property
    def username(self) -> Optional[str]:
        """Who runs the flow, as Metaflow finds it (METAFLOW_USER first)."""
        from .client import username

        return username() or self._username

    @username.setter
    def username(self, value: Optional[str]) -> None:
        self._username = value

    @property
    def pathspec(self) -> Optional[str]:
        if not self.is_running_flow:
            return None
        return f"{self.flow_name}/{self.run_id}/{self.step_name}/{self.task_id}"

    def _bind(self, **values: Any) -> None:
        for k, v in values.items():
            setattr(self, k, v)
        self.is_running_flow = True


current = Current()


def vars_of_class(cls: type) -> dict[str, Any]:
    """Class attributes, base classes first (as a flow's parameters are inherited)."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        found.update(vars(klass))
    return found


def project_of(flow_cls: type) -> Optional[dict[str, str]]:
    """The flow's @project as Metaflow resolves it: name and branch (``prod`` with METAFLOW_PRODUCTION,
    ``test.<METAFLOW_BRANCH>`` with a branch, else ``user.<username>``)."""
    import os

    from .decorators import decorators_of
    from .user_config import resolve_delayed

    project = decorators_of(flow_cls).get("project")
    if not project or not project.get("name"):
        return None
    name = resolve_delayed(project["name"])  # @project(name=config_expr("cfg").project): the run's configs
    production = os.environ.get("METAFLOW_PRODUCTION", "").lower() in ("1", "true", "yes")
    branch = os.environ.get("METAFLOW_BRANCH")
    if production:
        branch_name = f"prod.{branch}" if branch else "prod"
    elif branch:
        branch_name = f"test.{branch}"
    else:
        from .client import username

        branch_name = f"user.{username()}"
    return {"name": name, "branch": branch_name}


class Parallel(NamedTuple):
    """``current.parallel`` of a @parallel task (Metaflow's fields)."""

    main_ip: str
    num_nodes: int
    node_index: int
    control_task_id: Optional[str]
