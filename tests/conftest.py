import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOWS = Path(__file__).resolve().parent / "flows"


@pytest.fixture(autouse=True)
def _fresh_client_namespace():
    """workbench.client.namespace() is process-global: no test sees the datastore another pointed it at."""
    import workbench.client

    workbench.client._datastore_url = None
    yield
    workbench.client._datastore_url = None


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
