import os
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOWS = Path(__file__).resolve().parent / "flows"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project: workbench.toml + flows/, with the current directory inside it."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "workbench.toml").write_text('[project]\nname = "t"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_DATASTORE", raising=False)
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    return tmp_path


def write_flow(project: Path, name: str, source: str) -> Path:
    path = project / "flows" / name
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def copy_test_flow(project: Path, name: str) -> Path:
    path = project / "flows" / name
    path.write_text((FLOWS / name).read_text())
    return path
