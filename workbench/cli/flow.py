"""``python flow.py ...``: the command line a Metaflow user types, on top of workbench's own.

    python flow.py                       help
    python flow.py [TOP OPTIONS] run [--alpha 1] [--run-id-file F] [--tag T]... [--max-num-splits N]
    python flow.py resume [STEP] [--origin-run-id ID] [--run-id-file F] [--tag T]...
    python flow.py show | check | logs [--stdout|--stderr] RUN/STEP[/TASK] | dump [--include a,b] [--file F] RUN/STEP
    python flow.py tag list|add|remove|replace --run-id ID ...

Metaflow's top-level options that choose its own services (``--metadata``, ``--datastore``,
``--environment``, ``--event-logger``, ``--monitor``, ``--no-pylint``, ``--quiet``) are accepted: workbench
has one datastore per project and no plugins to pick. ``--with batch|kubernetes|docker`` is an alias of
``--backend``.
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import sys
from pathlib import Path
from typing import Iterator, Optional

from ..errors import UsageError, WorkbenchError

# Metaflow top-level options that take a value, and flags; accepted and not needed by workbench
_TOP_VALUE = {
    "--metadata",
    "--datastore",
    "--environment",
    "--event-logger",
    "--monitor",
    "--datastore-root",
    "--package-suffixes",
    "--branch",
    "--mode",
    "--namespace",
}
_TOP_FLAGS = {"--no-pylint", "--pylint", "--quiet", "--production"}
_WITH_BACKENDS = ("batch", "kubernetes", "docker", "local")

HELP = """Usage: {prog} [OPTIONS] COMMAND [ARGS]...

  The flow {name}, run by workbench (Metaflow's command line).

Commands:
  run      Run the flow: {prog} run [--PARAMETER VALUE]... [--run-id-file F] [--tag T]
  resume   Resume the latest (or --origin-run-id) run: {prog} resume [STEP]
  show     Print the flow's steps and settings
  check    Validate the flow
  logs     Print a task's output: {prog} logs [--stdout|--stderr] RUN_ID/STEP[/TASK]
  dump     Write a step's artifacts to a pickle: {prog} dump [--include a,b] --file F RUN_ID/STEP
  tag      List or change a run's tags: {prog} tag list|add|remove|replace --run-id ID TAG...

Options:
  --with batch|kubernetes|docker   run every step on that backend (as workbench run --backend)
  --help                           this help
"""


def _split_top(argv: list[str]) -> tuple[dict, list[str]]:
    """Consume the top-level options before the command; return them and the rest."""
    from ..config_values import ConfigOptions

    top: dict = {"with": [], "configs": ConfigOptions()}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if arg in ("--config", "--config-value"):  # Metaflow's: NAME FILE / NAME VALUE, before the command
            if i + 2 >= len(argv):
                raise UsageError(f"{arg} takes two values: {arg} NAME {'FILE' if arg == '--config' else 'VALUE'}")
            configs = top["configs"]
            (configs.files if arg == "--config" else configs.values).append((argv[i + 1], argv[i + 2]))
            i += 2
        elif name in _TOP_VALUE or name == "--with":
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value")
                i += 1
                value = argv[i]
            if name == "--with":
                top["with"].append(value)
            else:
                top[name.lstrip("-")] = value
        elif arg in _TOP_FLAGS:
            top[arg.lstrip("-")] = True
        else:
            break
        i += 1
    return top, argv[i:]


def _backend_from_with(values: list[str]) -> Optional[str]:
    """``--with batch`` (Metaflow) is ``--backend batch`` (workbench); other decorators are not accepted here."""
    backend = None
    for value in values:
        name = value.split(":", 1)[0]
        if name not in _WITH_BACKENDS:
            raise UsageError(
                f"--with {value}: workbench takes --with {'|'.join(_WITH_BACKENDS)} "
                f"(put other decorators on the steps, or settings in workbench.toml)"
            )
        backend = name
    return backend


def _run_parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"flow.py {command}", add_help=True)
    p.add_argument("--run-id-file", help="write the run's id to this file as soon as it starts")
    p.add_argument("--tag", action="append", default=[], help="a tag for the run (repeatable)")
    p.add_argument("--max-num-splits", type=int, help="fail a foreach that fans out into more than N tasks")
    p.add_argument("--max-workers", type=int)
    p.add_argument("--backend", choices=list(_WITH_BACKENDS))
    # Metaflow takes --with after the command too (`run --with kubernetes`, tutorial 06)
    p.add_argument("--with", dest="with_decorators", action="append", default=[], metavar="BACKEND")
    p.add_argument("--json", action="store_true")
    p.add_argument("--junit-xml")
    if command == "resume":
        p.add_argument("step_to_rerun", nargs="?")
        p.add_argument("--origin-run-id")
    return p


_FLOW_CLASS: Optional[type] = None


def _start_run(args, backend: Optional[str], config, graph) -> str:
    """Pick the run's id, write it to --run-id-file and record the run's tags before anything runs."""
    from ..client import write_run_tags
    from ..datastore import FlowDatastore, new_run_id

    run_id = new_run_id()
    if args.run_id_file:
        Path(args.run_id_file).write_text(run_id)
    from ..flowspec import project_of

    project = project_of(_FLOW_CLASS) if _FLOW_CLASS is not None else None
    write_run_tags(FlowDatastore(config.datastore_url, graph.name), run_id, project, args.tag)
    return run_id


@contextlib.contextmanager
def _forgotten_if_refused(config, graph, run_id: str) -> Iterator[None]:
    """The run's tags are written before the runtime checks the run; if it refuses (the error propagates), no run
    record exists and the tags go too."""
    try:
        yield
    except BaseException:
        from ..datastore import FlowDatastore
        from ..run_tags import forget_unstarted_run

        try:
            forget_unstarted_run(FlowDatastore(config.datastore_url, graph.name or ""), run_id)
        except Exception:  # noqa: BLE001 - the refusal is what the user must see, not a failed cleanup
            pass
        raise


def _cmd_run(ref: str, top: dict, argv: list[str]) -> int:
    from ..config import load_config
    from ..config_values import prepare_configs
    from ..parameters import check_parameter_name
    from ..project_files import resolve_flow
    from . import run as commands  # the `workbench run`/`resume` bodies

    args, extra = _run_parser("run").parse_known_args(argv)
    config = load_config()
    graph = resolve_flow(ref, config)
    for param in graph.parameters:
        check_parameter_name(param.name)
    options = top["configs"]
    extra = commands.take_config_options(graph, extra, options)  # also accepted after `run`
    # configs first: @project(name=config_expr(...)) names the run's project tags, written with its id
    configs = prepare_configs(graph, _FLOW_CLASS, options)
    ns = argparse.Namespace(
        flow=ref,
        backend=args.backend or _backend_from_with(top["with"] + args.with_decorators),
        max_workers=args.max_workers,
        max_num_splits=args.max_num_splits,
        json=args.json,
        junit_xml=args.junit_xml,
        step=None,
        from_run=None,
        task=None,
        cpu=None,
        memory=None,
        gpu=None,
        image=None,
        timeout=None,
        flow_cls=_FLOW_CLASS,
        configs=configs,
    )
    ns.run_id = _start_run(args, ns.backend, config, graph)
    with _forgotten_if_refused(config, graph, ns.run_id):
        return commands.cmd_run(ns, extra)


def _cmd_resume(ref: str, top: dict, argv: list[str]) -> int:
    from ..config import load_config
    from ..config_values import prepare_configs
    from ..project_files import resolve_flow
    from . import run as commands  # the `workbench run`/`resume` bodies

    args = _run_parser("resume").parse_args(argv)
    config = load_config()
    graph = resolve_flow(ref, config)
    if top["configs"]:
        raise UsageError("resume keeps the configs of the run it resumes: drop --config/--config-value")
    ns = argparse.Namespace(
        flow=ref,
        run_id=args.origin_run_id,
        from_step=args.step_to_rerun,
        backend=args.backend or _backend_from_with(top["with"] + args.with_decorators),
        max_workers=args.max_workers,
        json=args.json,
        junit_xml=args.junit_xml,
        flow_cls=_FLOW_CLASS,
    )
    if graph.configs:  # active before the run id is picked: @project may name the project from a config
        ns.configs = prepare_configs(graph, _FLOW_CLASS, recorded=_origin_configs(config, graph, args.origin_run_id))
    ns.new_run_id = _start_run(args, ns.backend, config, graph)
    with _forgotten_if_refused(config, graph, ns.new_run_id):
        return commands.cmd_resume(ns)


def _origin_configs(config, graph, origin_run_id: Optional[str]) -> dict:
    """The configs recorded with the run a resume starts from (the latest, unless named)."""
    from ..datastore import FlowDatastore
    from ..runtime import latest_run_id

    ds = FlowDatastore(config.datastore_url, graph.name or "")
    origin = origin_run_id or latest_run_id(ds, lambda d: not d.only_step)
    record = ds.read_run(origin) if origin else None
    return record.configs if record else {}


def _task_paths(ref: str, pathspec: str):
    """The client's tasks for RUN/STEP or RUN/STEP/TASK of this flow."""
    from ..client import Flow
    from ..config import load_config
    from ..project_files import resolve_flow

    graph = resolve_flow(ref, load_config())
    parts = pathspec.strip("/").split("/")
    if parts[0] == graph.name:
        parts = parts[1:]
    if len(parts) not in (2, 3):
        raise UsageError(f"{pathspec}: give RUN_ID/STEP or RUN_ID/STEP/TASK_ID")
    step = Flow(graph.name or "", _namespace_check=False)[parts[0]][parts[1]]  # validated: it has a name
    return [step[parts[2]]] if len(parts) == 3 else list(step)


def _cmd_logs(ref: str, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="flow.py logs")
    p.add_argument("pathspec")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--stdout", action="store_true")
    g.add_argument("--stderr", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    for task in _task_paths(ref, args.pathspec):
        if not args.stderr:
            sys.stdout.write(task.stdout)
        if not args.stdout:
            sys.stdout.write(task.stderr)
    return 0


def _cmd_dump(ref: str, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="flow.py dump")
    p.add_argument("pathspec")
    p.add_argument("--include", default="", help="comma-separated artifact names")
    p.add_argument("--file", help="write a pickle of {task pathspec: {name: value}} here")
    p.add_argument("--private", action="store_true")
    p.add_argument("--max-value-size", type=int)
    args = p.parse_args(argv)
    wanted = {n for n in args.include.split(",") if n}
    result = {}
    for task in _task_paths(ref, args.pathspec):
        names = [a.id for a in task if (not wanted or a.id in wanted) and (args.private or not a.id.startswith("_"))]
        result[task.pathspec] = {n: task[n].data for n in names}
    if args.file:
        with open(args.file, "wb") as f:
            pickle.dump(result, f)
    else:
        for path, values in result.items():
            print(path)
            for name, value in values.items():
                print(f"  {name}: {value!r}")
    return 0


def _cmd_tag(ref: str, argv: list[str]) -> int:
    from ..client import Flow
    from ..config import load_config
    from ..project_files import resolve_flow

    p = argparse.ArgumentParser(prog="flow.py tag")
    p.add_argument("action", choices=["list", "add", "remove", "replace"])
    p.add_argument("tags", nargs="*")
    p.add_argument("--run-id", required=True)
    p.add_argument("--flat", action="store_true")
    p.add_argument("--hide-system-tags", action="store_true")
    p.add_argument("--add", action="append", default=[])
    p.add_argument("--remove", action="append", default=[])
    args = p.parse_intermixed_args(argv)
    graph = resolve_flow(ref, load_config())
    run = Flow(graph.name or "", _namespace_check=False)[args.run_id]  # validated: it has a name
    if args.action == "add":
        run.add_tags(args.tags)
    elif args.action == "remove":
        run.remove_tags(args.tags)
    elif args.action == "replace":
        removes = args.remove or args.tags[:1]
        adds = args.add or args.tags[1:]
        run.replace_tags(removes, adds)
    else:
        tags = run.user_tags if args.hide_system_tags else run.tags
        print(f"Tags of run {run.pathspec}:", file=sys.stderr)
        for tag in sorted(tags):
            print(tag, file=sys.stderr)
    return 0


def main(flow_path: str, flow_cls: type, argv: list[str]) -> int:
    """Entry point of ``FlowSpec.__init__`` when a flow file is run as a script."""
    global _FLOW_CLASS
    _FLOW_CLASS = flow_cls
    class_name = flow_cls.__name__
    prog = Path(flow_path).name
    ref = f"{flow_path}:{class_name}"
    try:
        top, rest = _split_top(argv)
        if not rest or rest[0] in ("--help", "-h", "help"):
            print(HELP.format(prog=prog, name=class_name))
            return 0
        command, args = rest[0], rest[1:]
        if command == "run":
            return _cmd_run(ref, top, args)
        if command == "resume":
            return _cmd_resume(ref, top, args)
        if command == "logs":
            return _cmd_logs(ref, args)
        if command == "dump":
            return _cmd_dump(ref, args)
        if command == "tag":
            return _cmd_tag(ref, args)
        if command in ("show", "check"):
            from . import main as workbench_main

            return workbench_main([command, ref if command == "show" else flow_path, *args])
        print(
            f"{prog}: no command {command!r} (commands: run, resume, show, check, logs, dump, tag; --help for more)",
            file=sys.stderr,
        )
        return 2
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `python flow.py --help | head`
        return 0
