"""Running the contract flows on one backend and reading what happened, through public interfaces only:
``workbench.runtime.Runtime(graph, config, ...)`` and ``Runtime.cancel``, the events it emits, the client API
(``workbench.Flow``) for what was stored, and the backend's ``submit(spec, on_log, on_exit)``.

Every call a backend makes to ``on_log``/``on_exit`` is recorded by :class:`CallbackLedger`, which wraps the
backend class's ``submit`` for the whole module: after each run the harness checks that every submitted attempt
got exactly one ``on_exit`` and no ``on_log`` after it (the contract in workbench/backends/base.py).
"""

from __future__ import annotations

import ast
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

FLOWS = Path(__file__).resolve().parent / "flows"
FLOW_FILE = "flows/contract_flows.py"
LOCAL_STEPS = ("start", "end")  # every other step of a contract flow runs on the backend under test


def word(value: Any) -> Any:
    """A status as a plain string, whether it is a str or a str-valued enum."""
    return getattr(value, "value", value)


def read_proc() -> dict[int, dict]:
    """Every process on this machine: state, parent, process group, command line."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue  # it ended while we looked
        out[int(entry)] = {"state": stat[0], "ppid": int(stat[1]), "pgrp": int(stat[2]), "cmdline": cmdline}
    return out


def backend_steps(path: Path) -> dict[str, list[str]]:
    """Flow class -> its steps that run on the backend under test (all but start and end)."""
    tree = ast.parse(path.read_text())
    out = {}
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef):
            out[cls.name] = [
                f.name
                for f in cls.body
                if isinstance(f, ast.FunctionDef)
                and any(getattr(d, "id", None) == "step" for d in f.decorator_list)
                and f.name not in LOCAL_STEPS
            ]
    return out


@dataclass
class Attempt:
    """The callbacks one submitted attempt received, in order."""

    ref: str
    calls: list[tuple[str, Any]] = field(default_factory=list)
    submit_raised: bool = False

    @property
    def exits(self) -> list:
        return [payload for kind, payload in self.calls if kind == "exit"]

    def problems(self) -> list[str]:
        if self.submit_raised:
            return []  # the runtime reports a refused submit itself
        out = []
        if len(self.exits) != 1:
            out.append(f"{self.ref}: on_exit called {len(self.exits)} times")
        kinds = [kind for kind, _ in self.calls]
        if "exit" in kinds and "log" in kinds[kinds.index("exit") :]:
            late = [p for k, p in self.calls[kinds.index("exit") :] if k == "log"]
            out.append(f"{self.ref}: on_log after on_exit: {late[:3]}")
        return out


class CallbackLedger:
    """Wraps ``Backend.submit`` so that each attempt's callbacks are counted before the runtime sees them."""

    def __init__(self):
        self.attempts: dict[str, Attempt] = {}
        self._lock = threading.Lock()

    def wrap(self, submit: Callable) -> Callable:
        ledger = self

        def counting_submit(backend, spec, on_log, on_exit):
            attempt = ledger.attempt(spec.ref)

            def log(stream, text, ts):
                with ledger._lock:
                    attempt.calls.append(("log", text))
                on_log(stream, text, ts)

            def exit_(result):
                with ledger._lock:
                    attempt.calls.append(("exit", result))
                on_exit(result)

            try:
                return submit(backend, spec, log, exit_)
            except Exception:
                attempt.submit_raised = True
                raise

        return counting_submit

    def attempt(self, ref: str) -> Attempt:
        with self._lock:
            return self.attempts.setdefault(ref, Attempt(ref))

    def of_run(self, run_id: str) -> list[Attempt]:
        with self._lock:
            return [a for ref, a in self.attempts.items() if ref.split("/")[1] == run_id]


@dataclass
class Outcome:
    """One run: its result, the events in order with the wall-clock time each reached the sink."""

    result: Any
    timed: list[tuple[float, Any]]
    took: float

    @property
    def run_id(self) -> str:
        return self.result.run_id

    @property
    def status(self) -> str:
        return word(self.result.status)

    @property
    def events(self) -> list:
        return [e for _, e in self.timed]

    def of(self, kind: str, step: Optional[str] = None) -> list:
        return [
            e
            for e in self.events
            if type(e).__name__ == kind
            and (step is None or getattr(e, "step", None) == step or f"/{step}/" in getattr(e, "pathspec", ""))
        ]

    def finished(self, step: str):
        (event,) = self.of("TaskFinished", step)
        return event


class Harness:
    """A project of contract flows on one backend (see conftest.py), runs, and checks common to every run."""

    def __init__(self, backend, project: Path, env: pytest.MonkeyPatch):
        from workbench.backends import backend_class

        self.backend = backend
        self.name = backend.name
        self.root = project
        (project / "flows").mkdir(exist_ok=True)
        for src in FLOWS.glob("*.py"):
            shutil.copy(src, project / "flows" / src.name)
        (project / ".gitignore").write_text(".workbench/\nkubeconfig\n")
        tables = "".join(
            f'\n[flows.{flow}.steps.{s}]\nbackend = "{self.name}"\n{backend.step_table()}\n'
            for flow, steps in backend_steps(project / FLOW_FILE).items()
            for s in steps
        )
        (project / "workbench.toml").write_text(
            f'[project]\nname = "{backend.project_name}"\nbackend = "local"\n\n{backend.toml()}{tables}'
        )
        self.ledger = CallbackLedger()
        cls = backend_class(self.name)
        env.setattr(cls, "submit", self.ledger.wrap(cls.submit))

    @property
    def config(self):
        from workbench.config import load_config

        return load_config(self.root)

    def graph(self, flow: str):
        from workbench.graph import load_graph

        return load_graph(self.root / FLOW_FILE, flow)

    def run(
        self,
        flow: str,
        *,
        params: Optional[dict] = None,
        on_event: Optional[Callable] = None,
        during: Optional[Callable] = None,
        **runtime_kwargs,
    ) -> Outcome:
        """Run ``flow`` to its end through the public Runtime; ``during(runtime, outcome_so_far)`` runs in a thread
        meanwhile (to cancel it). Afterwards: each attempt got on_exit exactly once and nothing is left."""
        from workbench.parameters import resolve_parameters
        from workbench.runtime import Runtime

        graph = self.graph(flow)
        timed: list[tuple[float, Any]] = []

        def sink(event):
            timed.append((time.time(), event))
            if on_event is not None:
                on_event(event)

        rt = Runtime(
            graph, self.config, params=resolve_parameters(graph.parameters, params or {}), sink=sink, **runtime_kwargs
        )
        helper = None
        if during is not None:
            helper = threading.Thread(target=during, args=(rt, timed), daemon=True)
            helper.start()
        t0 = time.time()
        result = rt.run()
        outcome = Outcome(result, timed, time.time() - t0)
        if helper is not None:
            helper.join(10)
        self.check_callbacks(outcome.run_id)
        self.assert_nothing_left(outcome)
        return outcome

    def check_callbacks(self, run_id: str) -> None:
        problems = [p for a in self.ledger.of_run(run_id) for p in a.problems()]
        assert not problems, problems

    def assert_nothing_left(self, outcome: Outcome) -> None:
        """Nothing of the run in the engine, within the backend's cleanup grace."""
        deadline = time.time() + self.backend.cleanup_grace
        while True:
            left = self.backend.leftovers(outcome.run_id, outcome.events)
            if not left or time.time() >= deadline:
                break
            time.sleep(0.3)
        assert left == [], f"{self.name} left behind after run {outcome.run_id}: {left}"

    def wait_running(self, run_id: str, step: str, count: int, timeout: float = 60) -> int:
        deadline = time.time() + timeout
        while True:
            n = self.backend.running(run_id, step)
            if n >= count or time.time() >= deadline:
                return n
            time.sleep(0.2)

    def task(self, flow: str, run_id: str, step: str):
        """The stored task of ``step`` (the first one, in a foreach), through the client API."""
        import workbench.client
        from workbench import Flow

        workbench.client.namespace(self.config.datastore_url)
        return Flow(flow)[run_id][step].task

    def stored(self, flow: str, run_id: str):
        import workbench.client
        from workbench import Flow

        workbench.client.namespace(self.config.datastore_url)
        return Flow(flow)[run_id]

    def close(self) -> None:
        """At the end of the module: no attempt of any run got a late on_exit or on_log."""
        problems = [p for a in self.ledger.attempts.values() for p in a.problems()]
        assert not problems, problems
