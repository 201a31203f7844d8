"""Plays Metaflow's vendored tutorials (tutorials/, see NOTICE) the way their READMEs say, with only the import
line changed; used by test_tutorials.py (local) and test_tutorials_cloud.py (Kubernetes emulator + moto's S3).

The tutorials are copied to a temporary ``metaflow-tutorials`` directory (what ``metaflow tutorials pull`` makes) with
``from metaflow`` swapped for ``from workbench`` in flows and notebooks. An episode is played by reading the commands
of its README's "To play this episode" list: ``python FLOW.py ...`` runs as typed, ``jupyter-notebook X.ipynb`` /
``Open X.ipynb`` runs the notebook's code cells in the notebook's folder (where a kernel starts).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENDORED = HERE / "tutorials"
COMMAND_TIMEOUT = 180

_IMPORT_SWAP = re.compile(r"\b(from|import)(\s+)metaflow(?=[\s.])")


def swap_imports(code: str) -> str:
    """The one change a tutorial gets: ``from metaflow import X`` / ``import metaflow`` -> workbench."""
    return _IMPORT_SWAP.sub(r"\1\2workbench", code)


def copy_tutorials(dest: Path) -> Path:
    """The vendored tutorials in ``dest/metaflow-tutorials`` with their import lines swapped."""
    root = dest / "metaflow-tutorials"
    shutil.copytree(VENDORED, root)
    for path in root.rglob("*.py"):
        path.write_text(swap_imports(path.read_text(encoding="utf-8")), encoding="utf-8")
    for path in root.rglob("*.ipynb"):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["source"] = [swap_imports(line) for line in cell["source"]]
        path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return root


def readme_steps(episode: str) -> list[str]:
    """The commands of the README's (last) "To play this episode" list, in order."""
    text = (VENDORED / episode / "README.md").read_text(encoding="utf-8")
    section = text[text.rindex("To play this episode") :].split("\n", 1)[1]
    steps = []
    for line in section.splitlines():
        if line.startswith(("#", "<", "**")):
            break
        for span in re.findall(r"`{1,3}([^`]+)`{1,3}", line):
            span = span.strip()
            if span.startswith(("python ", "jupyter-notebook ", "cd ")) or span.endswith(".ipynb"):
                steps.append(span)
    return steps


def flow_env(**extra: str) -> dict[str, str]:
    """The environment a tutorial user has: this checkout importable as ``workbench``, no workbench settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(PYTHONIOENCODING="utf-8", **extra)
    return env


class Played:
    """One README command and what its user saw."""

    def __init__(self, step: str, proc: subprocess.CompletedProcess):
        self.step, self.code, self.out, self.err = step, proc.returncode, proc.stdout, proc.stderr

    def __repr__(self) -> str:
        return f"$ {self.step}\nexit {self.code}\n{self.out[-4000:]}\n{self.err[-4000:]}"


def notebook_script(path: Path, skip_cells_naming: Optional[str] = None) -> str:
    """The notebook's code cells, in order, as one script (what "Run All" executes)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    return "\n\n".join(c for c in cells if not (skip_cells_naming and skip_cells_naming in c)) + "\n"


def play(
    root: Path,
    episode: str,
    *,
    python: Optional[str] = None,
    env: Optional[dict[str, str]] = None,
    notebook_probe: str = "",
    skip_cells_naming: Optional[str] = None,
    steps: slice = slice(None),
) -> list[Played]:
    """Run the episode's README commands (``steps`` of them; ``cd metaflow-tutorials`` is where they all run) in
    ``root``, the metaflow-tutorials directory."""
    env = env or flow_env()
    played: list[Played] = []
    commands = [s for s in readme_steps(episode) if s != "cd metaflow-tutorials"]
    for step in commands[steps]:
        assert not step.startswith("cd "), step
        if step.startswith("python "):
            argv = shlex.split(step)
            proc = subprocess.run(
                [sys.executable, *argv[1:]], cwd=root, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
            )
        else:  # a notebook: its kernel starts in the notebook's folder
            notebook = root / step.split()[-1]
            script = notebook.parent / f".{notebook.stem}_cells.py"
            script.write_text(notebook_script(notebook, skip_cells_naming) + notebook_probe, encoding="utf-8")
            proc = subprocess.run(
                [python or sys.executable, script.name],
                cwd=notebook.parent,
                env={**env, "MPLBACKEND": "Agg"},
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
        played.append(Played(step, proc))
    return played


def only_line(played: Played) -> str:
    """A refusal: exit 2, one line on stderr, no traceback."""
    lines = [line for line in played.err.splitlines() if line.strip()]
    assert played.code == 2 and len(lines) == 1 and "Traceback" not in played.err, played
    return lines[0]


def movies(root: Path, episode: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO((root / episode / "movies.csv").read_text(encoding="utf-8"))))


def printed_picks(out: str) -> list[str]:
    return re.findall(r"Pick \d+: '(.*)'\n", out)


def matplotlib_venv(dest: Path) -> str:
    """A venv over this interpreter's packages with matplotlib added (episodes 02 and 06 plot with it), made
    with uv from the index pip uses here; skips the calling test with the reason when it cannot be made."""
    from workbench.environment_uv import index_arguments, uv_binary

    venv = dest / "venv"
    index, extra_env = index_arguments()
    uv = uv_binary()
    env = {**os.environ, **extra_env}
    for argv in (
        [uv, "venv", str(venv), "--python", sys.executable, "--system-site-packages", "--quiet"],
        [uv, "pip", "install", "--python", str(venv / "bin" / "python"), "--quiet", *index, "matplotlib"],
    ):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode:
            pytest.skip(f"matplotlib (for the notebook's plot) cannot be installed: {proc.stderr.strip()[-300:]}")
    return str(venv / "bin" / "python")
