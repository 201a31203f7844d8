"""``workbench run`` and ``workbench resume``: start the runtime and render its events as they come."""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Optional

from ..config import load_config
from ..errors import UsageError
from ..exitcodes import CLI_CANCELLED
from ..graph import FlowGraph
from ..project import resolve_flow


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
        from ..backends.local import prewarm
        prewarm()  # the local worker's interpreter starts while we read the configuration
    from ..parameters import resolve_parameters
    from ..runtime import Runtime, latest_run_id
    config = load_config()
    graph = resolve_flow(args.flow, config)
    overrides = {k: getattr(args, k) for k in ("cpu", "memory", "gpu", "image", "timeout") if getattr(args, k)}
    if args.step:
        if args.step not in graph.steps:
            raise UsageError(f"flow {graph.name} has no step {args.step} (steps: {', '.join(graph.steps)})")
        if extra:
            raise UsageError("--step re-runs with the parameters of the earlier run; drop " + " ".join(extra))
        from ..datastore import FlowDatastore
        ds = FlowDatastore(config.datastore_url, graph.name)
        origin = args.from_run or latest_run_id(ds, lambda d: not d.only_step)
        if origin is None:
            raise UsageError(f"flow {graph.name} has no earlier run to take the inputs of {args.step} from; "
                             f"run the flow once first")
        if args.backend:
            overrides["backend"] = args.backend
        runtime = Runtime(graph, config, max_workers=args.max_workers, step_overrides={args.step: overrides},
                          origin_run_id=origin, rerun_steps={args.step}, only_step=args.step,
                          only_task_index=args.task, datastore=ds)
        return _execute(runtime, args.json, args.junit_xml)
    if overrides or args.task is not None or args.from_run:
        raise UsageError("--cpu/--memory/--gpu/--image/--timeout/--task/--from-run go with --step")
    params = resolve_parameters(graph.parameters, _parse_flow_params(graph, extra))
    runtime = Runtime(graph, config, params=params, backend=args.backend, max_workers=args.max_workers,
                      run_id=getattr(args, "run_id", None))
    return _execute(runtime, args.json, args.junit_xml)


def cmd_resume(args) -> int:
    from ..datastore import FlowDatastore
    from ..runtime import Runtime, latest_run_id, resume_plan
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
