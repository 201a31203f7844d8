"""What the inspection commands print: ``show`` (the DAG and settings), ``runs``, ``logs``, ``artifacts``.

They read past runs through :mod:`workbench.client`, the one read side over the datastore."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

from ..config import load_config
from ..errors import UsageError
from ..graph import FlowGraph
from ..project_files import resolve_flow, split_pathspec
from ..redact import redact_settings
from ..units import format_memory
from ..usage import measured_usage, suggest_request

# ---------------------------------------------------------------------------------------------- show


def cmd_show(args) -> int:
    from ..settings import all_settings

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
            how = (
                f"num_parallel={node.num_parallel}" if node.num_parallel is not None else f"foreach {node.foreach_var}"
            )
            arrow = f"→ {node.out[0]} ({how})"
        elif node.kind == "switch":
            arrow = "→ " + ", ".join(f"{t} if {node.condition} == {c!r}" for c, t in node.switch_cases.items())
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
            print(
                f"  {'':<{width}}  {'':<7} measured on {u['backend']}: peak memory "
                f"{format_memory(u['peak_memory_mib'])}, cpu {u['cpu_seconds']:.1f}s "
                f"(run {u['run_id']}); suggested: --memory {format_memory(mem)} --cpu {cpu}"
            )
    if args.usage and not usage:
        print("\nno measured usage yet: run the flow first")
    return 0


def to_dot(graph: FlowGraph) -> str:
    shapes = {
        "start": "circle",
        "end": "doublecircle",
        "split": "diamond",
        "foreach": "trapezium",
        "join": "invtriangle",
        "linear": "box",
        "switch": "hexagon",
    }
    lines = [f'digraph "{graph.name}" {{', "  rankdir=TB;"]
    for node in graph:
        label = f' label="{node.name}\\nswitch: {node.condition}"' if node.kind == "switch" else ""
        lines.append(f'  "{node.name}" [shape={shapes.get(node.kind, "box")}{label}];')
        cases: dict[str, list[str]] = {}
        for case, target in node.switch_cases.items():  # a switch's edges carry its cases
            cases.setdefault(target, []).append(case)
        for target in node.out:
            if target in cases:
                loop = ", style=bold" if target == node.name else ""
                attrs = f' [label="{" | ".join(cases[target])}", style=dashed{loop}]'.replace(
                    "style=dashed, style=bold", 'style="dashed,bold"'
                )
            elif node.num_parallel is not None:
                attrs = f' [label="num_parallel={node.num_parallel}", style=dashed]'
            else:
                attrs = f' [label="foreach {node.foreach_var}", style=dashed]' if node.foreach_var else ""
            lines.append(f'  "{node.name}" -> "{target}"{attrs};')
    lines.append("}")
    return "\n".join(lines)


def _rel(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


# ------------------------------------------------------------------------------------- runs and logs


def cmd_runs(args) -> int:
    from ..client import run_records
    from ..datastore import list_flows
    from ..datastore.storage import open_storage

    config = load_config()
    flows: Optional[list[str]] = None
    if args.flow:
        known = list_flows(open_storage(config.datastore_url))
        flows = [args.flow if args.flow in known else resolve_flow(args.flow, config).name or ""]
    rows = run_records(config.datastore_url, flows)
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
            note = (
                (f"step {d.only_step} " if d.only_step else "resumed ")
                + f"from {d.origin_run_id}"
                + (f"; {note}" if note else "")
            )
        print(f"{d.flow:<20} {d.run_id:<18} {d.status:<10} {started:<20} {took:>8}  {note}")
    return 0


def _past_runs(pathspec: str):
    """The flow's past runs and the RUN[/STEP[/TASK]] parts of a pathspec given on the command line."""
    from ..client import PastRuns

    ds, parts = split_pathspec(pathspec, load_config())
    return PastRuns(ds), parts


def cmd_logs(args) -> int:
    """Print task logs, streamed (bounded memory); ``--follow`` tails them until each task has ended."""
    from ..logs import LogTail

    history, parts = _past_runs(args.pathspec)
    ds = history.ds
    tasks = history.resolve_tasks(parts)
    many = len(tasks) > 1
    for run_id, step, task_id in tasks:
        prefix = f"{step}/{task_id} " if many else ""
        attempt = args.attempt
        if attempt is None:
            record = ds.read_task(run_id, step, task_id)
            attempt = record.attempt if record is not None else _latest_attempt(ds, run_id, step, task_id)
        tail = LogTail(ds, ds.log_key(run_id, step, task_id, attempt))
        while True:
            ended = not args.follow or ds.read_task(run_id, step, task_id) is not None
            for ts, stream, text in tail.read_new():
                print(f"{prefix}{ts} {text}", file=sys.stderr if stream == "stderr" else sys.stdout, flush=True)
            if ended:
                for ts, stream, text in tail.rest():
                    print(f"{prefix}{ts} {text}", file=sys.stderr if stream == "stderr" else sys.stdout)
                break
            time.sleep(0.25)
    return 0


def _latest_attempt(ds, run_id: str, step: str, task_id: str) -> int:
    """A running task's current attempt: the highest spec written for it."""
    names = ds.storage.list(ds.task_key(run_id, step, task_id))
    found = [int(n[5:-5]) for n in names if n.startswith("spec-") and n.endswith(".json") and n[5:-5].isdigit()]
    return max(found, default=0)


def cmd_artifacts(args) -> int:
    """List artifacts, or show one from the summary its task stored; only ``--load`` unpickles the blob."""
    from ..datastore.records import TaskRecord
    from ..preview import artifact_origin, preview, provenance_note, summary_text

    history, parts = _past_runs(args.pathspec)
    ds = history.ds
    if len(parts) < 2:
        raise UsageError("give RUN/STEP or RUN/STEP/TASK")
    tasks = history.resolve_tasks(parts)
    if args.name:
        run_id, step, task_id = tasks[0]
        if len(tasks) > 1 and len(parts) < 3:
            raise UsageError(f"step {step} has {len(tasks)} tasks; give RUN/STEP/TASK")
        doc = ds.read_task(run_id, step, task_id) or TaskRecord()
        art = doc.artifacts.get(args.name)
        if art is None:
            raise UsageError(
                f"task {step}/{task_id} has no artifact {args.name} "
                f"(it has: {', '.join(sorted(doc.artifacts)) or 'none'})"
            )
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
