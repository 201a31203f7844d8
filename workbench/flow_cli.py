"""``python flow.py ...``: a flow file run as a script hands its command line to workbench's CLI.

``python flows/my_flow.py run --alpha 1`` behaves like ``workbench run flows/my_flow.py:MyFlow --alpha 1``.
This module sits outside the core on purpose: the import contract forbids ``workbench.flowspec`` (core)
importing ``workbench.cli``, so ``FlowSpec.__init__`` imports this module (lazily, only when a flow file is
run as a script) and only this module reaches the CLI.
"""

from __future__ import annotations


def main(flow_path: str, flow_cls: type, argv: list[str]) -> int:
    """Run ``workbench COMMAND FLOW_PATH:FlowClass ARGS...`` for ``python FLOW_PATH COMMAND ARGS...``
    (no command: ``run``); returns the CLI's exit code."""
    from .cli import main as workbench_main

    command, *rest = argv or ["run"]
    return workbench_main([command, f"{flow_path}:{flow_cls.__name__}", *rest])
