"""``Runner``: run a flow from Python, as Metaflow's ``from metaflow import Runner`` does.

    from workbench import Runner
    with Runner("flows/train.py", env={"X": "1"}, config_value=[("cfg", {"lr": 0.1})]) as runner:
        result = runner.run(alpha=1)          # blocks until the run ends
    result.run["end"].task.data.model       # result.run is the client's Run; result also acts as one
    runner.resume()                          # resume that run (or step_to_rerun="train")

Each call starts ``python FLOW_FILE run ...`` in a subprocess (the flow's own command line, so the run
is exactly what a terminal user gets), waits for it, and reads the run back through the client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional


def _config_options(key: str, pairs: Any) -> list[str]:
    """Metaflow's ``config=[(NAME, FILE)]`` / ``config_value=[(NAME, VALUE)]`` (a VALUE that is not text is
    given as JSON) -> ``--config NAME FILE`` / ``--config-value NAME VALUE``."""
    flag = "--config" if key == "config" else "--config-value"
    items = list(pairs.items()) if isinstance(pairs, dict) else list(pairs)
    args: list[str] = []
    for item in items:
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            raise TypeError(f"Runner {key}=: expected (name, value) pairs, got {item!r}")
        name, value = item
        args.extend([flag, str(name), value if isinstance(value, str) else json.dumps(value)])
    return args


def _options(kwargs: dict[str, Any]) -> list[str]:
    """``alpha=1, tags=["a"], flag=True`` -> ``--alpha 1 --tag a --flag`` (lists repeat the option)."""
    args: list[str] = []
    for key, value in kwargs.items():
        if value is None or value is False:
            continue
        if key in ("config", "config_value"):
            args.extend(_config_options(key, value))
            continue
        flag = "--" + ("tag" if key == "tags" else key.replace("_", "-"))
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            args.extend([flag] if v is True else [flag, str(v)])
    return args


class ExecutingRun:
    """The outcome of ``Runner.run``/``resume``: ``.run`` (the client's Run), ``.status``, ``.returncode``,
    ``.stdout``/``.stderr``; any other attribute is the Run's, so it can be used as the Run itself."""

    def __init__(self, run, process: subprocess.CompletedProcess):
        self.run = run
        self.returncode = process.returncode
        self.stdout = process.stdout
        self.stderr = process.stderr
        self.command = process.args

    @property
    def status(self) -> str:
        if self.run is None:
            return "failed"
        return "successful" if self.run.successful else ("failed" if self.run.finished else "running")

    def __getattr__(self, name: str) -> Any:
        if name == "run" or self.__dict__.get("run") is None:
            raise AttributeError(name)
        return getattr(self.run, name)

    def __getitem__(self, step: str):
        return self.run[step]

    def __repr__(self) -> str:
        return f"ExecutingRun({self.run!r}, returncode={self.returncode})"


class Runner:
    """Run (and resume) one flow file from Python."""

    def __init__(
        self,
        flow_file: str,
        show_output: bool = True,
        env: Optional[dict] = None,
        cwd: Optional[str] = None,
        **top_level: Any,
    ):
        self.flow_file = str(flow_file)
        self.show_output = show_output
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.top_level = _options(top_level)
        self._last_run_id: Optional[str] = None

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _call(self, command: str, positional: list[str], kwargs: dict[str, Any]) -> ExecutingRun:
        with tempfile.TemporaryDirectory(prefix="wb_runner_") as tmp:
            id_file = Path(tmp, "run-id")
            cmd = [
                sys.executable,
                self.flow_file,
                *self.top_level,
                command,
                *positional,
                *_options(kwargs),
                "--run-id-file",
                str(id_file),
            ]
            out = None if self.show_output else subprocess.PIPE
            proc = subprocess.run(cmd, cwd=self.cwd, env=self.env, stdout=out, stderr=out, text=True, check=False)
            run_id = id_file.read_text().strip() if id_file.exists() else None
        run = None
        if run_id:
            self._last_run_id = run_id
            run = self._read_run(run_id)
        return ExecutingRun(run, proc)

    def _read_run(self, run_id: str):
        from .client import Flow, metadata
        from .config import load_config
        from .graph import build_graph

        here = Path(self.cwd) if self.cwd else Path.cwd()
        metadata(load_config(here).datastore_url)
        graph = build_graph(Path(here, self.flow_file) if not Path(self.flow_file).is_absolute() else self.flow_file)
        return Flow(graph.name or "", _namespace_check=False)[run_id]  # no flow class: Flow says no such flow

    def run(self, **kwargs: Any) -> ExecutingRun:
        """Run the flow with these parameters (and run options such as ``tags=[...]``, ``max_workers=4``)."""
        return self._call("run", [], kwargs)

    def resume(
        self, step_to_rerun: Optional[str] = None, origin_run_id: Optional[str] = None, **kwargs: Any
    ) -> ExecutingRun:
        """Resume the last run of this Runner (or ``origin_run_id``), re-running from ``step_to_rerun``."""
        origin = origin_run_id or self._last_run_id
        if origin:
            kwargs["origin_run_id"] = origin
        return self._call("resume", [step_to_rerun] if step_to_rerun else [], kwargs)
