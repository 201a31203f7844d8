"""`python flows/my_flow.py run ...`: the one place the flow API hands over to the command line.

A flow file run as a script constructs its FlowSpec at import, and Metaflow's convention is that this
starts the flow's command line. The core (workbench.flowspec) must not import the CLI (import-linter
contract in pyproject.toml), so it calls this module, which is not part of the core and loads the CLI
only when a flow file is run as a script.
"""

from __future__ import annotations

from typing import Any


def run_flow_command_line(path: str, flow_cls: type, argv: list[str]) -> Any:
    from .cli.flow import main  # lazily: importing a flow must not load the CLI

    return main(path, flow_cls, argv)
