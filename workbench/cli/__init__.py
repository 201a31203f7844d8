"""``workbench``: the command line. Thin: it parses arguments, calls the core, renders its events.

The parser and :func:`main` live here; each command's body lives in a module of this package
(:data:`COMMAND_MODULES`): ``run`` (run, resume, cancel, attach), ``inspect`` (show, runs, logs, artifacts), ``project``
(init, check, promote, demote, image, env, package, tui), with ``render`` for the event renderers.

Exit codes (:mod:`workbench.exitcodes`): 0 success, 1 a step failed (or `check` found errors), 2 bad
usage or configuration, 130 cancelled.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional

from ..backends import BACKEND_NAMES
from ..errors import WorkbenchError
from ..exitcodes import CLI_CANCELLED, CLI_OK, CLI_USAGE

# command -> the module of this package holding its ``cmd_<command>`` (imported only when that command runs)
COMMAND_MODULES = {
    "run": "run",
    "resume": "run",
    "cancel": "run",
    "attach": "run",
    "show": "inspect",
    "runs": "inspect",
    "logs": "inspect",
    "artifacts": "inspect",
    "init": "project",
    "check": "project",
    "promote": "project",
    "demote": "project",
    "image": "project",
    "env": "project",
    "package": "project",
    "tui": "project",
}


def _add_flow_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("flow", help="a flow file (flows/x.py, or flows/x.py:ClassName) or a flow's class name")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench", description="Run Metaflow-style flows locally, in Docker, on AWS Batch or Kubernetes."
    )
    parser.add_argument("--version", action="version", version=f"workbench {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run a flow (or one step of a past run with --step)")
    _add_flow_arg(p)
    p.add_argument(
        "--backend",
        choices=BACKEND_NAMES,
        help="run every step on this backend (overrides decorators and workbench.toml)",
    )
    p.add_argument(
        "--max-workers",
        type=int,
        help="most local/docker tasks at once (default: number of cores); also the pods of a Kubernetes foreach at once",
    )
    p.add_argument(
        "--max-num-splits",
        type=int,
        metavar="N",
        help="fail a foreach that fans out into more than N tasks (Metaflow's option; default: no limit)",
    )
    p.add_argument("--json", action="store_true", help="print events as JSON lines")
    p.add_argument("--junit-xml", metavar="PATH", help="write a JUnit XML report, one test case per task")
    p.add_argument("--step", help="run only this step, with the inputs it had in a past run")
    p.add_argument("--from-run", metavar="RUN_ID", help="with --step: the run to take inputs from (default: latest)")
    p.add_argument("--task", type=int, metavar="INDEX", help="with --step on a foreach step: only this index")
    for flag in ("cpu", "memory", "gpu", "image", "timeout"):
        p.add_argument(f"--{flag}", help=f"with --step: {flag} for that step")
    p.add_argument(
        "--detach",
        action="store_true",
        help="run in the background (closing the terminal does not "
        "stop it); print the run id; follow it with `workbench attach RUN`",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="with --step: run the step under pyinstrument; print its hot path, keep the HTML report",
    )

    p = sub.add_parser("resume", help="re-run a failed run, reusing every task that succeeded")
    _add_flow_arg(p)
    p.add_argument("run_id", nargs="?", help="the run to resume (default: the latest run of the flow)")
    p.add_argument("--from", dest="from_step", metavar="STEP", help="re-run from this step even if it succeeded")
    p.add_argument("--backend", choices=BACKEND_NAMES)
    p.add_argument("--max-workers", type=int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--junit-xml", metavar="PATH")

    p = sub.add_parser("show", help="print a flow's DAG and each step's effective settings")
    _add_flow_arg(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="the graph and settings as JSON")
    g.add_argument("--dot", action="store_true", help="the graph in Graphviz dot")
    p.add_argument(
        "--usage",
        action="store_true",
        help="add each step's measured peak memory and CPU from its latest run, with a suggested request",
    )

    p = sub.add_parser("check", help="validate flow files and workbench.toml")
    p.add_argument("paths", nargs="*", help="flow files or directories (default: the project's flows directory)")

    p = sub.add_parser("runs", help="list past runs")
    p.add_argument("flow", nargs="?", help="only this flow (a class name or a flow file)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("logs", help="print a task's logs")
    p.add_argument("pathspec", help="RUN[/STEP[/TASK]] (or FLOW/RUN/...)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines while the task runs")
    p.add_argument("--attempt", type=int)

    p = sub.add_parser("cancel", help="stop a run and remove whatever any backend still holds for it")
    p.add_argument("run", help="RUN (or FLOW/RUN)")
    p = sub.add_parser("attach", help="follow a running (e.g. detached) run's events until it ends")
    p.add_argument("run", help="RUN (or FLOW/RUN)")

    p = sub.add_parser("artifacts", help="list a task's artifacts, or preview one")
    p.add_argument("pathspec", help="RUN/STEP[/TASK] (or FLOW/RUN/STEP[/TASK])")
    p.add_argument("name", nargs="?", help="show this artifact's stored summary")
    p.add_argument(
        "--load",
        action="store_true",
        help="load (unpickle) the artifact itself instead of its summary: runs code the step stored",
    )
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("init", help="scaffold a new project (workbench.toml and a first flow)")
    p.add_argument("dir", nargs="?", default=".")

    p = sub.add_parser("promote", help="move a step to a bigger machine or another backend, in workbench.toml")
    p.add_argument("step")
    p.add_argument("--flow", help="the flow (needed when the project has more than one flow with this step)")
    p.add_argument("--to", dest="backend", choices=BACKEND_NAMES)
    for flag in ("cpu", "memory", "gpu", "image", "timeout", "shared-memory"):
        p.add_argument(f"--{flag}")
    p.add_argument("--dry-run", action="store_true", help="print the change without writing it")

    p = sub.add_parser("demote", help="remove a step's overrides from workbench.toml")
    p.add_argument("step")
    p.add_argument("--flow")
    p.add_argument("--dry-run", action="store_true")

    p = sub.add_parser("image", help="container images for the docker, batch and kubernetes backends")
    isub = p.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    b = isub.add_parser("build", help="build the project's image FROM the configured base (cached by content)")
    b.add_argument("--base", help="base image (default: [docker] image in workbench.toml)")
    b.add_argument("--tag", help="image name to tag the result with (default: workbench-<project>:<hash>)")

    p = sub.add_parser("env", help="the Python environments steps declare (@pypi, @conda, requirements)")
    esub = p.add_subparsers(dest="env_command", metavar="ACTION", required=True)
    e = esub.add_parser("show", help="what each step's environment resolved to, its size and where it is cached")
    _add_flow_arg(e)
    e.add_argument("step", nargs="?", help="only this step")
    e = esub.add_parser("build", help="resolve and install a flow's environments now (cached by content)")
    _add_flow_arg(e)
    e.add_argument("step", nargs="?", help="only this step")
    e.add_argument("--no-wheelhouse", action="store_true", help="skip fetching wheels for offline installs")

    p = sub.add_parser("package", help="the code package shipped to remote tasks")
    psub = p.add_subparsers(dest="package_command", metavar="ACTION", required=True)
    s = psub.add_parser("show", help="list what would ship for a flow, and its size")
    _add_flow_arg(s)

    sub.add_parser("tui", help="the terminal workbench")
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as exc:
        return CLI_USAGE if exc.code not in (0, None) else CLI_OK
    args.argv = argv  # `run --detach` starts the same command again in the background
    if args.command is None:
        parser.print_help()
        return CLI_USAGE
    if extra and args.command not in ("run",):
        print(f"workbench {args.command}: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
        return CLI_USAGE
    try:
        commands = importlib.import_module(f"{__name__}.{COMMAND_MODULES[args.command]}")
        handler = getattr(commands, f"cmd_{args.command}")
        return handler(args, extra) if args.command == "run" else handler(args)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return CLI_CANCELLED
    except BrokenPipeError:  # the reader of our output went away: not a success (runcontrol explains)
        from ..runcontrol import EXIT_BROKEN_PIPE, _silence_stdout

        _silence_stdout()
        return EXIT_BROKEN_PIPE if args.command == "run" else CLI_OK
