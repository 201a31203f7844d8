"""The single task entrypoint that every backend executes::

    python -m workbench.task run --datastore URL --root PROJECT_DIR FLOW/RUN/STEP/TASK/ATTEMPT

It reads the task's spec (written by the runtime into the datastore), imports the flow, loads the
inputs' artifacts lazily, runs one step, saves what the step assigned to ``self``, and writes what
happened to ``attempt-<n>.json``. Exit code 0 means the step succeeded.

``python -m workbench.task serve ...`` is the local backend's warm worker: it imports the flow once
and forks one isolated child per task (see :mod:`workbench.worker`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

from .datastore import FlowDatastore
from .datastore.records import AttemptRecord, InputRef, TaskSpecRecord, TaskStatus
from .errors import DatastoreError
from .exception import MetaflowException
from .exitcodes import TASK_FAILED as EXIT_FAILED
from .exitcodes import TASK_OK as EXIT_OK
from .exitcodes import TASK_TIMEOUT as EXIT_TIMEOUT
from .flowspec import CaughtException, FlowSpec, Inputs, InputView, current, flow_constants
from .parameters import resolve_default
from .preview import describe
from .secret_sources import SecretsError
from .user_config import activate_task_configs


class StepTimeout(MetaflowException):
    """Raised inside a step when its @timeout runs out (Metaflow's TimeoutException: @catch stores it
    under Metaflow's name)."""

    headline = "@timeout"
    metaflow_type = "metaflow.plugins.timeout_decorator.TimeoutException"


class FailureHandledByCatch(MetaflowException):
    """What @catch stores when the step's code never got to raise: every attempt failed in its
    environment (killed, out of memory, image missing...). Metaflow's name for it."""

    headline = "Task execution failed but @catch handled it"
    metaflow_type = "metaflow.plugins.catch_decorator.FailureHandledByCatch"


class TaskContext:
    """What a FlowSpec instance sees while one task runs: its inputs, foreach frames, transition."""

    def __init__(self, ds: FlowDatastore, refs: dict[str, str], foreach_stack: list[dict[str, Any]]):
        self.ds = ds
        self.refs = refs  # inherited artifacts: name -> sha
        self.foreach_stack = foreach_stack
        self.transition: Optional[tuple[list[str], Optional[str]]] = None
        self.switched_to: Optional[str] = None  # the case a switch step took
        self.num_parallel: Optional[int] = None  # self.next(..., num_parallel=N): the gang's size
        self.adopted: dict[str, str] = {}
        self.cache: dict[str, Any] = {}
        self.origins: dict[str, str] = {}  # artifact name -> RUN/STEP/TASK it came from (for corrupt-blob lines)

    def has_input_artifact(self, name: str) -> bool:
        return name in self.refs or name in self.adopted

    def load_input_artifact(self, name: str) -> Any:
        if name not in self.cache:
            owner = self.origins.get(name, "an input")
            self.cache[name] = self.ds.load_artifact(self.adopted.get(name) or self.refs[name], name=name, owner=owner)
        return self.cache[name]

    def adopt_artifact(self, name: str, sha: str) -> None:
        self.adopted[name] = sha

    def record_transition(self, names: list[str], foreach: Optional[str], switch: bool = False) -> None:
        self.transition = (names, foreach)
        self.switched_to = names[0] if switch else None

    def foreach_value(self, flow: FlowSpec, frame: dict[str, Any]) -> Any:
        if frame["var"] is None:  # a @parallel gang: the input is the node's index
            return frame["index"]
        seq = flow._wb_artifact(frame["var"])
        try:
            return seq[frame["index"]]
        except TypeError:
            return list(seq)[frame["index"]]


def load_flow_class(root: str, flow_file: str, class_name: str) -> type[FlowSpec]:
    path = Path(root, flow_file).resolve()
    for d in (str(path.parent), str(Path(root).resolve())):
        if d not in sys.path:
            sys.path.insert(0, d)
    module = importlib.import_module(path.stem)
    flow_cls: type[FlowSpec] = getattr(module, class_name)
    return flow_cls


def _save_outputs(flow: FlowSpec, ctx: TaskContext, ds: FlowDatastore, is_join: bool) -> dict[str, dict[str, Any]]:
    """Save every artifact the step set or touched; pass the untouched inherited ones on by reference."""
    out: dict[str, dict[str, Any]] = {}
    if not is_join:
        for name, sha in ctx.refs.items():
            out[name] = {"sha": sha, "inherited": True}
    for name, sha in ctx.adopted.items():
        out[name] = {"sha": sha, "inherited": True}
    for name, value in list(flow.__dict__.items()):
        if name in FlowSpec._WB_INTERNAL or name.startswith("__"):
            continue
        out[name] = _save_artifact(ds, f"artifact self.{name}", value)
    return out


def _save_artifact(ds: FlowDatastore, what: str, value: Any) -> dict[str, Any]:
    try:
        sha, size = ds.save_artifact(value)
    except Exception as exc:
        raise TypeError(f"{what} cannot be saved: {type(exc).__name__}: {exc}") from None
    info = describe(value)
    info.update(sha=sha, size=size)
    requires = _pickle_requirements(value)
    if requires:
        info["requires"] = requires
    return info


def _save_constants(flow_cls: type[FlowSpec], spec: TaskSpecRecord, ds: FlowDatastore, out: dict[str, Any]) -> None:
    """The flow's class-level constants are artifacts of every task, as in Metaflow. The start task saves
    the values it sees, once for the run; the other tasks pass those on: a linear task with its inherited
    artifacts, a join from its first input (joins inherit nothing else without merge_artifacts)."""
    constants = flow_constants(flow_cls)
    if not spec.inputs:  # start (a task without inputs)
        for name, value in constants.items():
            if name not in out:
                out[name] = _save_artifact(ds, f"class constant {flow_cls.__name__}.{name}", value)
    elif spec.kind == "join":
        first = spec.inputs[0].artifacts
        for name in constants:
            if name not in out and name in first:
                out[name] = {"sha": first[name], "inherited": True}


_PLAIN = (type(None), bool, int, float, complex, str, bytes)


def _pickle_requirements(value: Any) -> dict[str, str]:
    """The versions of the packages this artifact's pickle references (numpy 2.1.3...), so a target with
    other versions is explained, or given these, before it tries to unpickle it. Large buffers stay out of
    band (protocol 5), so an array costs its header, not its data."""
    if isinstance(value, _PLAIN):
        return {}
    import pickle

    from .environment_guard import artifact_requirements

    try:
        return artifact_requirements(pickle.dumps(value, protocol=5, buffer_callback=lambda _b: None))
    except Exception:  # noqa: BLE001 - it was just saved; a second pickle failing only loses the record
        return {}


def _owner(pathspec: str) -> str:
    """RUN/STEP/TASK of a FLOW/RUN/STEP/TASK pathspec (how corrupt-artifact lines name a task)."""
    return pathspec.split("/", 1)[-1]


def _input_loader(ds: FlowDatastore, parent: InputRef) -> Callable[[str], Any]:
    """A join input's loader that names the artifact and the parent task when a blob is corrupt."""
    names = {sha: name for name, sha in parent.artifacts.items()}
    return lambda sha: ds.load_artifact(sha, name=names.get(sha, sha[:12]), owner=_owner(parent.pathspec))


def _alarm(signum: int, frame: object) -> NoReturn:
    raise StepTimeout("step timed out")


def run_task(ds: FlowDatastore, root: str, flow_cls: type[FlowSpec], spec: TaskSpecRecord) -> int:
    """Run one attempt of one task; return its exit code. ``spec`` is the runtime's task spec."""
    started = time.time()
    step_name, attempt = spec.step, spec.attempt
    settings = spec.settings
    _apply_step_env(settings.get("env") or {})
    current._bind(
        flow_name=spec.flow,
        run_id=spec.run_id,
        step_name=step_name,
        task_id=spec.task_id,
        retry_count=attempt,
        origin_run_id=spec.origin_run_id,
        username=os.environ.get("USER") or os.environ.get("USERNAME"),
    )
    _bind_parallel(spec)
    is_join = spec.kind == "join"
    refs = dict(spec.params)
    if not is_join:
        for parent in spec.inputs:
            refs.update(parent.artifacts)
    ctx = TaskContext(ds, refs, spec.foreach_stack)
    ctx.origins = {n: _owner(p.pathspec) for p in spec.inputs for n in p.artifacts}  # for corrupt-blob lines
    flow = flow_cls.__new__(flow_cls)
    flow.__dict__["_wb_ctx"] = ctx
    activate_task_configs(flow_cls, ctx.has_input_artifact, ctx.load_input_artifact)  # before @project is read
    current._bind_flow_class(flow_cls)
    if is_join:  # parameters are artifacts of every task, joins included (as in Metaflow)
        for name, sha in spec.params.items():
            ctx.adopt_artifact(name, sha)
    for attr in spec.unresolved_params:
        flow.__dict__[attr] = resolve_default(flow_cls, attr)

    result = AttemptRecord(status=TaskStatus.FAILED, started_at=started, attempt=attempt, pathspec=spec.pathspec)
    timeout = settings.get("timeout")
    code = EXIT_FAILED
    try:
        func = getattr(flow, step_name)
        if spec.catch_fallback:  # @catch: the step's task never ran; store that instead of running it
            raise FailureHandledByCatch(
                f"Task execution kept failing over {attempt} attempts. Your code did not raise an exception. "
                f"Something in the execution environment caused the failure: {spec.catch_fallback}"
            )
        if settings.get("secrets") and not spec.catch_fallback:
            from .secret_sources import resolve

            os.environ.update(resolve(settings["secrets"]))  # the process's environment only
        if settings.get("profile"):  # --profile: pyinstrument is imported only here (workbench.profiling)
            from .profiling import profiled

            func = profiled(func, ds, spec, result)
        if timeout:
            signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            if is_join:
                views = [InputView(p.step, p.artifacts, _input_loader(ds, p), p.foreach_stack) for p in spec.inputs]
                func(Inputs(views))
            else:
                func()
        finally:
            if timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)
        _check_transition(ctx, spec)
        code = EXIT_OK
    except BaseException as exc:  # noqa: BLE001 - everything a step raises is reported
        if isinstance(exc, KeyboardInterrupt):
            raise
        one_line = isinstance(exc, (DatastoreError, SecretsError))
        tb = str(exc) + "\n" if one_line else traceback.format_exc()  # one line, no trace
        status = TaskStatus.TIMEOUT if isinstance(exc, StepTimeout) else TaskStatus.FAILED
        reason = (
            f"timed out after {timeout}s"
            if status is TaskStatus.TIMEOUT
            else (str(exc) if one_line else f"{type(exc).__name__}: {exc}")
        )
        catch_var = settings.get("catch_var")
        last_attempt = attempt >= int(settings.get("retries") or 0)
        if settings.get("catch") and last_attempt:
            if settings.get("catch_print", True):
                sys.stderr.write(f"@catch caught an exception in step {step_name}:\n{tb}")
            if catch_var:
                flow.__dict__[catch_var] = CaughtException.of(exc, tb)
            ctx.transition = (spec.next, spec.foreach_var)
            result.caught = reason
            result.error = {"type": type(exc).__name__, "message": str(exc)}
            code = EXIT_OK
        else:
            sys.stderr.write(tb)
            result.status, result.reason, result.traceback = status, reason, tb
            result.error = {"type": type(exc).__name__, "message": str(exc)}
            code = EXIT_TIMEOUT if status is TaskStatus.TIMEOUT else EXIT_FAILED
    if code == EXIT_OK:
        try:
            result.artifacts = _save_outputs(flow, ctx, ds, is_join)
            _save_constants(flow_cls, spec, ds, result.artifacts)
            if spec.foreach_var:
                var = spec.foreach_var
                seq = getattr(flow, var)
                if var not in result.artifacts:
                    # e.g. foreach="input": keep the values where the children can index them
                    hidden = f"_foreach_{spec.step}"
                    sha, size = ds.save_artifact(seq)
                    result.artifacts[hidden] = {"sha": sha, "size": size, "type": "foreach values"}
                    var = hidden
                result.foreach_artifact = var
                try:
                    n = len(seq)
                except TypeError:
                    raise TypeError(
                        f"foreach over self.{var}, which has no length ({type(seq).__name__}); use a list"
                    ) from None
                if n == 0:
                    raise ValueError(f"foreach over self.{var}, which is empty")
                result.foreach_num_splits = n
            result.switch_to = ctx.switched_to
            if ctx.num_parallel is not None:
                result.foreach_num_splits = ctx.num_parallel
            result.status = TaskStatus.SUCCEEDED
        except Exception as exc:
            tb = traceback.format_exc()
            sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
            result.status, result.reason, result.traceback = TaskStatus.FAILED, f"{type(exc).__name__}: {exc}", tb
            result.error = {"type": type(exc).__name__, "message": str(exc)}
            result.artifacts = {}
            code = EXIT_FAILED
    result.finished_at = time.time()
    sys.stdout.flush()
    sys.stderr.flush()
    ds.write_attempt(spec.run_id, step_name, spec.task_id, result)
    return code


def _apply_step_env(env: dict[str, Any]) -> None:
    """Set the step's env. Secret-looking values are ``<redacted>`` in the spec: the backend delivered them
    (in this process's environment, or a file named by ``WORKBENCH_SECRET_ENV_FILE``)."""
    from .redact import REDACTED

    path = os.environ.pop("WORKBENCH_SECRET_ENV_FILE", None)
    if path:
        with open(path, encoding="utf-8") as f:
            os.environ.update({str(k): str(v) for k, v in json.load(f).items()})
    for name, value in env.items():
        if str(value) != REDACTED:
            os.environ[str(name)] = str(value)
        elif name not in os.environ:
            print(f"workbench: step env {name} (a secret) did not reach this task", file=sys.stderr)


def _bind_parallel(spec: TaskSpecRecord) -> None:
    """``current.parallel`` (and Metaflow's MF_PARALLEL_* variables) for a node of a @parallel gang.
    ``main_ip`` is node 0's address: 127.0.0.1 locally; on a multi-node backend see :mod:`workbench.gang_address`."""
    from .flowspec import Parallel
    from .gang_address import main_ip as gang_main_ip

    info = spec.parallel
    if not info:
        current.parallel = Parallel(main_ip="127.0.0.1", num_nodes=1, node_index=0, control_task_id=None)
        return
    main_ip = gang_main_ip()
    current.parallel = Parallel(
        main_ip=main_ip,
        num_nodes=int(info["num_nodes"]),
        node_index=int(info["node_index"]),
        control_task_id=info.get("control_task_id"),
    )
    os.environ.update(
        {
            "MF_PARALLEL_MAIN_IP": main_ip,
            "MF_PARALLEL_NUM_NODES": str(info["num_nodes"]),
            "MF_PARALLEL_NODE_INDEX": str(info["node_index"]),
            "MF_PARALLEL_CONTROL_TASK_ID": str(info.get("control_task_id")),
        }
    )


def _check_transition(ctx: TaskContext, spec: TaskSpecRecord) -> None:
    if spec.step == "end":
        return
    if ctx.transition is None:
        if spec.parallel and int(spec.parallel.get("node_index", 0)) != 0:
            return  # a gang's worker node: its transition is the control task's (Metaflow checks only that one)
        raise RuntimeError(f"step {spec.step} returned without calling self.next()")
    names, foreach = ctx.transition
    if spec.kind == "switch":
        if ctx.switched_to is None or ctx.switched_to not in spec.next:
            want = ", ".join(spec.next)
            raise RuntimeError(
                f"step {spec.step} is a switch in the flow file (cases: {want}) but called "
                f"self.next({', '.join('self.' + n for n in names)})"
            )
        return
    if names != spec.next or foreach != spec.foreach_var:
        want = ", ".join(f"self.{n}" for n in spec.next)
        if spec.foreach_var:
            want += f", foreach={spec.foreach_var!r}"
        raise RuntimeError(
            f"step {spec.step} called self.next({', '.join('self.' + n for n in names)}"
            f"{', foreach=' + repr(foreach) if foreach else ''}) but the flow file says self.next({want})"
        )


def read_spec(ds: FlowDatastore, ref: str) -> TaskSpecRecord:
    flow, run_id, step, task_id, attempt = ref.split("/")
    try:
        doc = ds.read_spec(run_id, step, task_id, int(attempt))
    except ValueError as exc:  # a join's compact inputs that do not read (workbench.datastore.split_inputs)
        raise SystemExit(f"workbench.task: the task spec of {ref} in {ds.url} is damaged: {exc}") from None
    if doc is None:
        raise SystemExit(f"workbench.task: no task spec for {ref} in {ds.url}")
    return doc


def _activate_shipped_environment(ds: FlowDatastore) -> None:
    """In a container or remote job: install the step's environment archive (``WORKBENCH_ENVIRONMENT``, a
    key in the datastore) offline, once per node cache directory, and put it first on sys.path."""
    key = os.environ.get("WORKBENCH_ENVIRONMENT")
    if not key:
        return
    from .environment_remote import activate, install_offline

    cache = Path(os.environ.get("WORKBENCH_ENVIRONMENT_CACHE") or "/tmp/workbench-environments")
    archive = cache / key.rsplit("/", 1)[-1]
    if not archive.is_file() and not (cache / archive.name.removesuffix(".tar") / "done").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = archive.with_suffix(f".part{os.getpid()}")
        tmp.write_bytes(bytes(ds.storage.get(key)))
        tmp.replace(archive)
    activate(install_offline(archive, cache))


def _end_on_sigterm_as_pid_1() -> None:
    """A pod or a Batch job runs the task as its container's PID 1 (no init), and the kernel ignores a signal PID 1
    has no handler for: a cancelled pod's SIGTERM did nothing until the grace period's SIGKILL (30 s on a real
    cluster). End at once, as any other process does on SIGTERM (a cancelled task saves nothing)."""
    if os.getpid() != 1:
        return

    def _term(signum: int, _frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, _term)


def main(argv: Optional[list[str]] = None) -> int:
    _end_on_sigterm_as_pid_1()
    parser = argparse.ArgumentParser(prog="python -m workbench.task")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run one attempt of one task")
    run.add_argument("--datastore", required=True)
    run.add_argument("--root", default=os.getcwd())
    run.add_argument("ref", nargs="?", help="FLOW/RUN/STEP/TASK/ATTEMPT")
    run.add_argument(
        "--array",
        metavar="FLOW/RUN/NAME",
        help="one index of an array job: the task is this index's entry in the manifest",
    )
    sub.add_parser("serve", help="warm worker for the local backend (reads the flow to load from stdin)")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        from .worker import serve_forever

        return serve_forever()
    if args.array:  # an array job's index: find its task in the manifest (workbench.arrays)
        from .arrays import task_ref_for

        args.ref = task_ref_for(args.datastore, args.array)
    elif not args.ref:
        parser.error("run needs FLOW/RUN/STEP/TASK/ATTEMPT or --array")
    flow = args.ref.split("/")[0]
    ds = FlowDatastore(args.datastore, flow)
    outbox = os.environ.get("WORKBENCH_OUTBOX")
    if outbox:  # a container or a remote job: the store is never written, outputs go to the outbox
        from .datastore.outbox import outbox_storage
        from .datastore.outbox_s3 import PER_TASK, task_outbox_prefix

        if outbox == PER_TASK:
            outbox = f"{ds.url}/{task_outbox_prefix(args.ref)}"
        ds = FlowDatastore(outbox_storage(ds.storage, outbox), flow)
    spec = read_spec(ds, args.ref)
    _activate_shipped_environment(ds)
    os.chdir(args.root)
    flow_cls = load_flow_class(args.root, spec.flow_file, spec.class_name)
    code = run_task(ds, args.root, flow_cls, spec)
    ds.storage.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
