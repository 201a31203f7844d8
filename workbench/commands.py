"""What each ``workbench`` sub-command does (argument parsing lives in :mod:`workbench.cli`)."""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from .redact import redact_settings
from .config import load_config
from .datastore.records import RunRecord, TaskRecord
from .errors import UsageError, WorkbenchError
from .exitcodes import CLI_CANCELLED
from .graph import FlowGraph, build_graph, find_flow_files
from .project import resolve_flow, split_pathspec
from .usage import measured_usage, suggest_request
from .units import format_memory


# ----------------------------------------------------------------------------------------------- run

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
    from .render import JUnitWriter, Tee, pick_renderer
    renderer = pick_renderer(json_mode)
    junit = JUnitWriter() if junit_path else None
    result = []
    errors: list[BaseException] = []

    def target():
        try:
            result.append(runtime.run())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    runtime.sink = Tee(renderer, junit)
    done = threading.Event()
    interrupts: list[float] = []

    def on_sigint(signum, frame):  # only records: cancelling happens in the loop below, outside the handler
        interrupts.append(time.time())

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if in_main else None
    worker = threading.Thread(target=lambda: (target(), done.set()), name="workbench-runtime", daemon=True)
    worker.start()
    handled = 0
    try:
        while not done.wait(0.1):
            if len(interrupts) > handled:
                handled = len(interrupts)
                if handled == 1:
                    print("\ncancelling: stopping running tasks (Ctrl-C again to quit at once)", file=sys.stderr)
                    runtime.cancel("cancelled")
                else:
                    print("quit without waiting for cleanup", file=sys.stderr)
                    return CLI_CANCELLED
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
    renderer.close()
    if errors:
        raise errors[0]
    res = result[0]
    if junit is not None:
        junit.write(junit_path)
    return res.exit_code


def cmd_run(args, extra: list[str]) -> int:
    if args.backend in (None, "local"):
        from .backends.local import prewarm
        prewarm()  # the local worker's interpreter starts while we read the configuration
    from .parameters import resolve_parameters
    from .runtime import Runtime, latest_run_id
    config = load_config()
    graph = resolve_flow(args.flow, config)
    overrides = {k: getattr(args, k) for k in ("cpu", "memory", "gpu", "image", "timeout") if getattr(args, k)}
    if args.step:
        if args.step not in graph.steps:
            raise UsageError(f"flow {graph.name} has no step {args.step} (steps: {', '.join(graph.steps)})")
        if extra:
            raise UsageError("--step re-runs with the parameters of the earlier run; drop " + " ".join(extra))
        from .datastore import FlowDatastore
        ds = FlowDatastore(config.datastore_url, graph.name)
        origin = args.from_run or latest_run_id(ds, lambda d: not d.only_step)
        if origin is None:
            raise UsageError(f"flow {graph.name} has no earlier run to take the inputs of {args.step} from; "
                             f"run the flow once first")
        if args.backend:
            overrides["backend"] = args.backend
        if getattr(args, "profile", False):
            overrides["profile"] = True
        runtime = Runtime(graph, config, max_workers=args.max_workers, step_overrides={args.step: overrides},
                          origin_run_id=origin, rerun_steps={args.step}, only_step=args.step,
                          only_task_index=args.task, datastore=ds)
        code = _execute(runtime, args.json, args.junit_xml)
        if overrides.get("profile") and not args.json:
            from .profiling import print_step_profiles
            print_step_profiles(ds, runtime.run_id, args.step)
        return code
    if overrides or args.task is not None or args.from_run or getattr(args, "profile", False):
        raise UsageError("--cpu/--memory/--gpu/--image/--timeout/--task/--from-run/--profile go with --step")
    params = resolve_parameters(graph.parameters, _parse_flow_params(graph, extra))
    runtime = Runtime(graph, config, params=params, backend=args.backend, max_workers=args.max_workers,
                      run_id=getattr(args, "run_id", None))
    return _execute(runtime, args.json, args.junit_xml)


def cmd_resume(args) -> int:
    from .datastore import FlowDatastore
    from .runtime import Runtime, latest_run_id, resume_plan
    config = load_config()
    graph = resolve_flow(args.flow, config)
    ds = FlowDatastore(config.datastore_url, graph.name)
    origin = args.run_id or latest_run_id(ds, lambda d: not d.only_step)
    if origin is None:
        raise UsageError(f"flow {graph.name} has no run to resume")
    rerun = resume_plan(graph, ds, origin, args.from_step)
    runtime = Runtime(graph, config, backend=args.backend, max_workers=args.max_workers, origin_run_id=origin,
                      rerun_steps=rerun, datastore=ds, run_id=getattr(args, "new_run_id", None))
    return _execute(runtime, args.json, args.junit_xml)


# ---------------------------------------------------------------------------------------------- show

def cmd_show(args) -> int:
    from .settings import all_settings
    config = load_config()
    graph = resolve_flow(args.flow, config)
    settings = all_settings(graph, config)
    usage = measured_usage(config, graph) if args.usage else {}
    if args.json:
        data = graph.to_dict()
        for step in data["steps"]:
            step["settings"] = redact_settings(settings[step["name"]].to_dict())
            if step["name"] in usage:
                step["usage"] = usage[step["name"]]
        print(json.dumps(data, indent=2, default=str))
        return 0
    if args.dot:
        print(to_dot(graph))
        return 0
    rel = _rel(graph.path)
    print(f"{graph.name}  ({rel}:{graph.lineno})")
    if graph.doc:
        print(f"  {graph.doc.strip().splitlines()[0]}")
    for p in graph.parameters:
        default = f" = {p.default!r}" if p.has_default else (" (required)" if p.required else "")
        print(f"  --{p.name}{default}{'  ' + p.help if p.help else ''}")
    print()
    width = max(len(n) for n in graph.steps)
    for name in graph.topological():
        node = graph.steps[name]
        if node.kind == "foreach":
            arrow = f"→ {node.out[0]} (foreach {node.foreach_var})"
        elif node.out:
            arrow = "→ " + ", ".join(node.out)
        else:
            arrow = ""
        print(f"  {name:<{width}}  {node.kind:<7} {arrow}")
        s = settings[name]
        print(f"  {'':<{width}}  {'':<7} {s.summary()}")
        if name in usage:
            u = usage[name]
            mem, cpu = suggest_request(u["peak_memory_mib"], u["cpu_seconds"], u["wall_seconds"])
            print(f"  {'':<{width}}  {'':<7} measured on {u['backend']}: peak memory "
                  f"{format_memory(u['peak_memory_mib'])}, cpu {u['cpu_seconds']:.1f}s "
                  f"(run {u['run_id']}); suggested: --memory {format_memory(mem)} --cpu {cpu}")
    if args.usage and not usage:
        print("\nno measured usage yet: run the flow first")
    return 0


def to_dot(graph: FlowGraph) -> str:
    shapes = {"start": "circle", "end": "doublecircle", "split": "diamond", "foreach": "trapezium",
              "join": "invtriangle", "linear": "box"}
    lines = [f'digraph "{graph.name}" {{', "  rankdir=TB;"]
    for node in graph:
        lines.append(f'  "{node.name}" [shape={shapes.get(node.kind, "box")}];')
        for target in node.out:
            label = f' [label="foreach {node.foreach_var}", style=dashed]' if node.foreach_var else ""
            lines.append(f'  "{node.name}" -> "{target}"{label};')
    lines.append("}")
    return "\n".join(lines)


def _rel(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def cmd_check(args) -> int:
    from .settings import all_settings
    failures = 0
    try:
        config = load_config()
    except WorkbenchError as exc:
        print(f"error {exc}")
        return 1
    paths = []
    for raw in args.paths or [str(config.flows_dir)]:
        p = Path(raw)
        paths.extend(find_flow_files(p) if p.is_dir() else [p])
    if not paths:
        print(f"no flow files in {', '.join(args.paths) or config.flows_dir}")
        return 1
    names = []
    for path in paths:
        graph = build_graph(path)
        names.append(graph.name)
        errors = list(graph.errors)
        if not errors:
            try:
                all_settings(graph, config)
            except WorkbenchError as exc:
                errors.append(exc)
        if errors:
            failures += 1
            for e in errors:
                print(f"error {e}")
        else:
            print(f"ok    {_rel(str(path))}: {graph.name} ({len(graph.steps)} steps)")
    if config.path:
        # [flows.<name>] tables are matched by class name; only a check of the whole project sees every flow
        every_flow_named = names and all(names)  # a broken file's flow name is unknown: do not guess
        unknown = config.unknown_flow_tables(names) if every_flow_named and not args.paths else []
        for e in unknown:
            print(f"error {e}")
        failures += len(unknown)
        if not unknown:
            print(f"ok    {_rel(str(config.path))}")
    return 1 if failures else 0


# ------------------------------------------------------------------------------------- runs and logs

def cmd_runs(args) -> int:
    from .datastore import FlowDatastore, list_flows
    from .datastore.storage import open_storage
    config = load_config()
    storage = open_storage(config.datastore_url)
    flows = list_flows(storage)
    if args.flow:
        name = args.flow if args.flow in flows else resolve_flow(args.flow, config).name
        flows = [name]
    rows = []
    for flow in flows:
        ds = FlowDatastore(storage, flow)
        for run_id in ds.list_runs():
            doc = ds.read_run(run_id) or RunRecord()
            rows.append(dataclasses.replace(doc, flow=flow, run_id=run_id))
    rows.sort(key=lambda d: (d.started_at or 0, d.run_id), reverse=True)  # newest first, as the TUI
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2, default=str))
        return 0
    if not rows:
        print(f"no runs in {config.datastore_url}")
        return 0
    print(f"{'FLOW':<20} {'RUN':<18} {'STATUS':<10} {'STARTED':<20} {'TIME':>8}  NOTE")
    for d in rows:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.started_at or 0))
        took = f"{d.finished_at - d.started_at:.1f}s" if d.finished_at and d.started_at else "-"
        note = d.message or ""
        if d.origin_run_id:
            note = (f"step {d.only_step} " if d.only_step else "resumed ") + f"from {d.origin_run_id}" \
                   + (f"; {note}" if note else "")
        print(f"{d.flow:<20} {d.run_id:<18} {d.status:<10} {started:<20} {took:>8}  {note}")
    return 0


def _tasks_of(ds, parts: list[str]) -> list[tuple[str, str, str]]:
    run_id = parts[0]
    steps = [parts[1]] if len(parts) > 1 else _steps_in_order(ds, run_id)
    out = []
    for step in steps:
        tasks = [parts[2]] if len(parts) > 2 else ds.list_tasks(run_id, step)
        if len(parts) > 1 and not tasks:
            raise UsageError(f"run {run_id} has no tasks of step {step} (steps: {', '.join(ds.list_steps(run_id))})")
        out.extend((run_id, step, t) for t in tasks)
    return out


def _steps_in_order(ds, run_id: str) -> list[str]:
    steps = ds.list_steps(run_id)
    first = {}
    for step in steps:
        tasks = ds.list_tasks(run_id, step)
        first[step] = int(tasks[0]) if tasks and tasks[0].isdigit() else 0
    return sorted(steps, key=lambda s: first[s])


def cmd_logs(args) -> int:
    config = load_config()
    ds, parts = split_pathspec(args.pathspec, config)
    tasks = _tasks_of(ds, parts)
    many = len(tasks) > 1
    for run_id, step, task_id in tasks:
        printed = 0
        while True:
            lines = list(ds.read_log(run_id, step, task_id, args.attempt))
            for ts, stream, text in lines[printed:]:
                prefix = f"{step}/{task_id} " if many else ""
                out = sys.stderr if stream == "stderr" else sys.stdout
                print(f"{prefix}{ts} {text}", file=out, flush=True)
            printed = len(lines)
            if not args.follow or ds.read_task(run_id, step, task_id) is not None:
                break
            time.sleep(0.25)
    return 0


def cmd_artifacts(args) -> int:
    """List artifacts, or show one from the summary its task stored; only ``--load`` unpickles the blob."""
    from .preview import artifact_origin, preview, provenance_note, summary_text
    config = load_config()
    ds, parts = split_pathspec(args.pathspec, config)
    if len(parts) < 2:
        raise UsageError("give RUN/STEP or RUN/STEP/TASK")
    tasks = _tasks_of(ds, parts)
    if args.name:
        run_id, step, task_id = tasks[0]
        if len(tasks) > 1 and len(parts) < 3:
            raise UsageError(f"step {step} has {len(tasks)} tasks; give RUN/STEP/TASK")
        doc = ds.read_task(run_id, step, task_id) or TaskRecord()
        art = doc.artifacts.get(args.name)
        if art is None:
            raise UsageError(f"task {step}/{task_id} has no artifact {args.name} "
                             f"(it has: {', '.join(sorted(doc.artifacts)) or 'none'})")
        info, maker = artifact_origin(ds, run_id, art, doc)
        if not getattr(args, "load", False):
            print(summary_text(info))
            return 0
        note = provenance_note(args.name, maker)
        if note:
            print(f"warning: {note}", file=sys.stderr)
        owner = ((maker.pathspec if maker else "") or f"-/{run_id}/{step}/{task_id}").split("/", 1)[-1]  # RUN/STEP/TASK
        value = ds.load_artifact(art["sha"], name=args.name, owner=owner)
        print(preview(value))
        return 0
    out = {}
    for run_id, step, task_id in tasks:
        doc = ds.read_task(run_id, step, task_id) or TaskRecord()
        out[f"{step}/{task_id}"] = doc.artifacts
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for key, arts in out.items():
        print(f"{key}:")
        for name, a in sorted(arts.items()):
            if name.startswith("_"):
                continue
            shape = f" shape={tuple(a['shape'])} dtype={a.get('dtype')}" if "shape" in a else ""
            desc = a.get("repr", "") if not shape else ""
            size = f"{a['size']:,}B" if "size" in a else "(inherited)"
            print(f"  {name:<20} {a.get('type', '?'):<22} {size:>12}{shape}  {desc}")
    return 0


# ---------------------------------------------------------------------------------- init and promote

def templates_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise UsageError("workbench's templates are missing from this installation")


def cmd_init(args) -> int:
    target = Path(args.dir).resolve()
    tpl = templates_dir()
    files = {target / "workbench.toml": tpl / "workbench.toml", target / "flows" / "hello.py": tpl / "flow.py"}
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise UsageError(f"{existing[0]} already exists; init does not overwrite files")
    for dest, src in files.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_text().replace("{{project_name}}", target.name)
        dest.write_text(text)
        print(f"created {dest}")
    print(f"next: cd {args.dir} && workbench run flows/hello.py")
    return 0


def cmd_promote(args) -> int:
    from .promote import promote
    return promote(args)


def cmd_demote(args) -> int:
    from .promote import demote
    return demote(args)


def cmd_image(args) -> int:
    from .image import cmd_image_build  # the docker backend's image builder
    return cmd_image_build(args, load_config())


def cmd_env(args) -> int:
    from . import environment_cli  # `workbench env show|build`
    return getattr(environment_cli, f"cmd_env_{args.env_command}")(args, load_config())


def cmd_package(args) -> int:
    from .package import cmd_package_show  # the remote backends' code package
    return cmd_package_show(args, load_config())


def cmd_tui(args) -> int:
    try:
        from .tui.app import run_app
    except ImportError as exc:
        raise UsageError(f"the terminal workbench is not available: {exc}") from None
    return run_app(load_config())
