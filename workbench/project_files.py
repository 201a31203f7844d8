"""Finding things in a project: which flow file a name refers to, which flow a run belongs to."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .config import ProjectConfig
from .datastore import FlowDatastore, list_flows
from .datastore.storage import open_storage
from .errors import UsageError
from .graph import FlowGraph, build_graph, find_flow_files, load_graph, split_flow_ref


def resolve_flow(ref: str, config: ProjectConfig) -> FlowGraph:
    """A flow file (``flows/x.py``, ``flows/x.py:Cls``) or a flow class name -> its validated graph."""
    path, cls = split_flow_ref(ref)
    if Path(path).is_file():
        return load_graph(path, cls)
    if path.endswith(".py"):
        raise UsageError(f"no flow file {path}")
    found = []
    for candidate in find_flow_files(config.flows_dir):
        graph = build_graph(candidate)
        if graph.name == ref:
            found.append(candidate)
    if not found:
        names = sorted(filter(None, (build_graph(p).name for p in find_flow_files(config.flows_dir))))
        raise UsageError(
            f"no flow file or flow named {ref} (flows in {config.flows_dir}: {', '.join(names) or 'none'})"
        )
    return load_graph(found[0])


def all_flows(config: ProjectConfig) -> list[FlowGraph]:
    return [build_graph(p) for p in find_flow_files(config.flows_dir)]


def find_step_flow(step: str, config: ProjectConfig, flow: Optional[str] = None) -> FlowGraph:
    """The flow that has ``step`` (for `workbench promote STEP`)."""
    if flow:
        graph = resolve_flow(flow, config)
        if step not in graph.steps:
            raise UsageError(f"flow {graph.name} has no step {step} (steps: {', '.join(graph.steps)})")
        return graph
    graphs = [g for g in all_flows(config) if g.ok and step in g.steps]
    if not graphs:
        raise UsageError(f"no flow in {config.flows_dir} has a step named {step}")
    if len(graphs) > 1:
        raise UsageError(
            f"step {step} is in {len(graphs)} flows ({', '.join(str(g.name) for g in graphs)}); pick one with --flow"
        )
    return graphs[0]


def split_pathspec(spec: str, config: ProjectConfig) -> tuple[FlowDatastore, list[str]]:
    """``RUN[/STEP[/TASK]]`` or ``FLOW/RUN[/...]`` -> the flow's datastore and [run, step?, task?]."""
    parts = [p for p in spec.strip("/").split("/") if p]
    if not parts:
        raise UsageError("give a run id, RUN/STEP or RUN/STEP/TASK")
    storage = open_storage(config.datastore_url)
    flows = list_flows(storage)
    if parts[0] in flows:
        flow, rest = parts[0], parts[1:]
        if not rest:
            raise UsageError(f"{spec}: give a run id after the flow name")
        if rest[0] == "latest":
            ds = FlowDatastore(storage, flow)
            runs = ds.list_runs()
            if not runs:
                raise UsageError(f"flow {flow} has no runs in {config.datastore_url}")
            rest[0] = runs[-1]
        return FlowDatastore(storage, flow), rest
    for flow in flows:
        ds = FlowDatastore(storage, flow)
        if ds.read_run(parts[0]) is not None:
            return ds, parts
    raise UsageError(f"no run {parts[0]} in {config.datastore_url}")
