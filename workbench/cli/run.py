"""``workbench run`` and ``workbench resume``: start the runtime and render its events as they come."""

from __future__ import annotations

import sys
from typing import Optional

from ..config import load_config
from ..config_values import ConfigOptions, prepare_configs
from ..errors import UsageError
from ..exitcodes import CLI_CANCELLED
from ..graph import FlowGraph
from ..project_files import resolve_flow, split_pathspec


def take_config_options(graph: FlowGraph, argv: list[str], options: ConfigOptions) -> list[str]:
    """Move ``--config NAME FILE`` and ``--config-value NAME VALUE`` out of ``argv`` into ``options``;
    return the rest (the flow's parameters). Only for a flow with configs, and not when it has a
    parameter of that name (``--config FILE`` is then that parameter)."""
    if not graph.configs:
        return argv
    taken = {"--config", "--config-value"} - {f"--{p.name}" for p in graph.parameters}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in taken:
            if i + 2 >= len(argv):
                raise UsageError(f"{arg} takes two values: {arg} NAME {'FILE' if arg == '--config' else 'VALUE'}")
            (options.files if arg == "--config" else options.values).append((argv[i + 1], argv[i + 2]))
            i += 3
            continue
        rest.append(arg)
        i += 1
    return rest


def _parse_flow_params(graph: FlowGraph, extra: list[str]) -> dict[str, str]:
    given: dict[str, str] = {}
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or arg == "--":
            raise UsageError(f"unexpected argument {arg!r}")
        name, eq, value = arg[2:].partition("=")
        if not eq:
            spec = next((p for p in graph.parameters if p.name in (name, name.replace("-", "_"))), None)
            if spec is not None and spec.type_name == "bool" and (i + 1 >= len(extra) or extra[i + 1].startswith("--")):
                value = "true"
            elif i + 1 < len(extra):
                i += 1
                value = extra[i]
            else:
                raise UsageError(f"--{name} needs a value")
        given[name] = value
        i += 1
    return given


def _execute(runtime, json_mode: bool, junit_path: Optional[str]) -> int:
    """Run in the foreground; signals and a closed stdout are handled in :mod:`workbench.runcontrol`."""
    from ..detach import adopt
    from ..runcontrol import EXIT_BROKEN_PIPE, drive
    from .render import JUnitWriter, Tee, pick_renderer

    adopt(runtime)  # a `run --detach` background process runs under the id its launcher printed
    renderer = pick_renderer(json_mode)
    junit = JUnitWriter() if junit_path else None
    res, code = drive(runtime, Tee(renderer, junit))
    if res is None:
        return code or CLI_CANCELLED
    try:
        renderer.close()
    except BrokenPipeError:
        code = EXIT_BROKEN_PIPE
    if junit is not None and junit_path:
        junit.write(junit_path)
    if code == EXIT_BROKEN_PIPE or (code and res.status == "cancelled"):
        return code
    return res.exit_code


def cmd_run(args, extra: list[str]) -> int:
    if getattr(args, "detach", False):
        from ..detach import launch

        return launch(args.argv, args.flow)
    if args.backend in (None, "local"):
        from ..backends.local import prewarm

        prewarm()  # the local worker's interpreter starts while we read the configuration
    from ..parameters import resolve_parameters
    from ..runtime import Runtime, latest_run_id

    config = load_config()
    graph = resolve_flow(args.flow, config)
    overrides = {k: getattr(args, k) for k in ("cpu", "memory", "gpu", "image", "timeout") if getattr(args, k)}
    options: ConfigOptions = getattr(args, "config_options", None) or ConfigOptions()
    flow_cls = getattr(args, "flow_cls", None)  # the flow's own command line has the class at hand
    extra = take_config_options(graph, extra, options)
    if args.step:
        if args.step not in graph.steps:
            raise UsageError(f"flow {graph.name} has no step {args.step} (steps: {', '.join(graph.steps)})")
        if extra:
            raise UsageError("--step re-runs with the parameters of the earlier run; drop " + " ".join(extra))
        from ..datastore import FlowDatastore

        ds = FlowDatastore(config.datastore_url, graph.name or "")
        origin = args.from_run or latest_run_id(ds, lambda d: not d.only_step)
        if origin is None:
            raise UsageError(
                f"flow {graph.name} has no earlier run to take the inputs of {args.step} from; run the flow once first"
            )
        origin_record = ds.read_run(origin)
        configs = prepare_configs(graph, flow_cls, options, recorded=origin_record.configs if origin_record else {})
        if args.backend:
            overrides["backend"] = args.backend
        if getattr(args, "profile", False):
            overrides["profile"] = True
        runtime = Runtime(
            graph,
            config,
            max_workers=args.max_workers,
            step_overrides={args.step: overrides},
            origin_run_id=origin,
            rerun_steps={args.step},
            only_step=args.step,
            only_task_index=args.task,
            datastore=ds,
            configs=configs,
        )
        code = _execute(runtime, args.json, args.junit_xml)
        if overrides.get("profile") and not args.json:
            from ..profiling import print_step_profiles

            print_step_profiles(ds, runtime.run_id, args.step)
        return code
    if overrides or args.task is not None or args.from_run or getattr(args, "profile", False):
        raise UsageError("--cpu/--memory/--gpu/--image/--timeout/--task/--from-run/--profile go with --step")
    # before parameters (their defaults may use configs); the flow's command line resolved them already,
    # before picking the run id, and this graph is bound with those values
    resolved = getattr(args, "configs", None)
    configs = prepare_configs(graph, flow_cls, None if resolved is not None else options, recorded=resolved)
    params = resolve_parameters(graph.parameters, _parse_flow_params(graph, extra))
    runtime = Runtime(
        graph,
        config,
        params=params,
        backend=args.backend,
        max_workers=args.max_workers,
        max_num_splits=getattr(args, "max_num_splits", None),
        run_id=getattr(args, "run_id", None),
        configs=configs,
    )
    return _execute(runtime, args.json, args.junit_xml)


def cmd_resume(args) -> int:
    from ..datastore import FlowDatastore
    from ..runtime import Runtime, latest_run_id, resume_plan

    config = load_config()
    graph = resolve_flow(args.flow, config)
    ds = FlowDatastore(config.datastore_url, graph.name or "")
    origin = args.run_id or latest_run_id(ds, lambda d: not d.only_step)
    if origin is None:
        raise UsageError(f"flow {graph.name} has no run to resume")
    origin_record = ds.read_run(origin)
    recorded = origin_record.configs if origin_record else {}  # a resume keeps the origin run's configs
    configs = prepare_configs(graph, getattr(args, "flow_cls", None), recorded=getattr(args, "configs", recorded))
    rerun = resume_plan(graph, ds, origin, args.from_step)
    runtime = Runtime(
        graph,
        config,
        backend=args.backend,
        max_workers=args.max_workers,
        origin_run_id=origin,
        rerun_steps=rerun,
        datastore=ds,
        run_id=getattr(args, "new_run_id", None),
        configs=configs,
    )
    return _execute(runtime, args.json, args.junit_xml)


def cmd_cancel(args) -> int:
    """Stop a run (its runtime, if alive here) and remove what any backend still holds for it."""
    from ..cancel import cancel_run

    config = load_config()
    ds, parts = split_pathspec(args.run, config)
    result = cancel_run(ds, config, parts[0], say=lambda text: print(text, file=sys.stderr, flush=True))
    for note in result.notes:
        print(note, file=sys.stderr)
    print(f"run {result.run_id}: {result.status}; removed {len(result.removed)} thing(s) backends still held")
    return 0


def cmd_attach(args) -> int:
    """Follow a (detached) run's events from the datastore until it ends."""
    from ..detach import attach

    config = load_config()
    ds, parts = split_pathspec(args.run, config)
    return attach(ds, parts[0])
