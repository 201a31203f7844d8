"""The runtime's side of environments: prepare every step's environment before the first task, and the
version guard for container and remote steps that declare none.

Before the run starts, :class:`RunEnvironments` resolves every declared environment (a package that does
not exist is one line naming the flow file and line, before anything runs) and installs the ones local
steps use; a warm run finds them all done and pays a few directory checks.

The guard: each artifact records the versions of the packages its pickle needs (``requires``, written by
the task). A container or remote step with no declared environment whose inputs need packages gets them
*at the versions they were pickled with* (``TaskSpec.input_pins``): the Docker backend checks the image
and, when it has other versions, runs an image with those pins installed offline; Batch and Kubernetes
install them from a shipped archive. That is what parity promises (the step behaves as it did on the
host); when the pins cannot be installed for the target, the step is refused before it starts with one
line naming the package, both versions and how to declare it (:func:`workbench.environment_guard.check_inputs`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from .environment_guard import host_version_requirements
from .environment_plan import StepEnvironment, plan_environments, prepare_environments


class RunEnvironments:
    """Each step's prepared environment for one run, and what the run's artifacts were pickled with."""

    def __init__(self, graph, config, settings: Mapping[str, Any], *, say: Callable[[str], None] = lambda _l: None):
        plan = plan_environments(graph, config, dict(settings))
        self.by_step: dict[str, StepEnvironment] = {item.step: item for item in plan}
        local = [item for item in plan if settings[item.step].backend == "local"]
        elsewhere = [item for item in plan if settings[item.step].backend != "local"]
        prepare_environments(local, install=True, on_progress=say)
        # containers and remote jobs install for their own Python and platform; resolving here is what
        # makes a missing package one line before the run starts
        prepare_environments(elsewhere, install=False, on_progress=say)
        self._requires: dict[str, dict[str, str]] = {}  # artifact sha -> {distribution: version}

    def environment(self, step: str):
        """The step's Environment (its cache entry), or None when it declares none."""
        item = self.by_step.get(step)
        return item.environment if item is not None else None

    def learn(self, artifacts: Mapping[str, Mapping[str, Any]]) -> None:
        """Remember the ``requires`` of artifacts a task reported (or an origin run's task recorded)."""
        for info in artifacts.values():
            requires = info.get("requires") if isinstance(info, Mapping) else None
            if requires and isinstance(info.get("sha"), str):
                self._requires[info["sha"]] = dict(requires)

    def recorded_inputs(self, spec_record) -> dict[str, dict[str, str]]:
        """Input artifact name -> the package versions it was pickled with (those that need packages)."""
        recorded: dict[str, dict[str, str]] = {}
        for parent in spec_record.inputs:
            for name, sha in parent.artifacts.items():
                if sha in self._requires:
                    recorded[name] = self._requires[sha]
        return recorded

    def input_pins(self, step: str, spec_record) -> tuple[str, ...]:
        """For a step without a declared environment, the pins its inputs need (``numpy==2.1.3``)."""
        if self.environment(step) is not None:
            return ()
        return host_version_requirements(self.recorded_inputs(spec_record))


def pins_spec(pins: tuple[str, ...], python: Optional[str] = None):
    """An EnvironmentSpec of just these pins (what a container runs to read its inputs)."""
    from .environment_spec import EnvironmentSpec

    return EnvironmentSpec(tuple(pins), python, ("the versions the inputs were pickled with",))
