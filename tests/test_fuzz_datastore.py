"""Unknown entries in a datastore (a README at its root, notes in a flow's runs/, an editor's backup in a
step's directory) are skipped by the listings and by `workbench runs`, `logs` and `artifacts`."""

import shutil
import subprocess
import sys

from workbench.datastore import FlowDatastore, list_flows
from workbench.datastore.storage import open_storage

from .conftest import REPO


def wb(*args):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, timeout=120)


def _plant_strays(root, run_id):
    """Every kind of stray entry, at every level workbench lists."""
    (root / "README").write_text("notes\n")
    (root / "not-a-flow").mkdir()
    runs = root / "HelloFlow" / "runs"
    (runs / "notes.txt").write_text("x")
    (runs / "9999999999999999999.json").write_text("{}")
    (runs / "leftover").mkdir()  # a directory without run.json
    (runs / run_id / "stray.txt").write_text("x")
    (runs / run_id / "start" / "stray.txt").write_text("x")
    (runs / run_id / "start" / ".swp").write_text("x")
    (runs / run_id / "start" / "backup").mkdir()


def test_stray_entries_in_the_datastore_are_skipped(project):
    shutil.copy(REPO / "flows" / "hello.py", project / "flows" / "hello.py")
    assert wb("run", "flows/hello.py").returncode == 0
    root = project / ".workbench"
    ds = FlowDatastore(str(root), "HelloFlow")
    [run_id] = ds.list_runs()
    steps, tasks = sorted(ds.list_steps(run_id)), ds.list_tasks(run_id, "start")
    _plant_strays(root, run_id)

    assert list_flows(open_storage(str(root))) == ["HelloFlow"]
    assert ds.list_runs() == [run_id]
    assert sorted(ds.list_steps(run_id)) == steps == ["count", "end", "start"]
    assert ds.list_tasks(run_id, "start") == tasks == ["1"]

    runs = wb("runs")
    assert runs.returncode == 0, runs.stderr
    assert [ln.split()[:3] for ln in runs.stdout.splitlines()[1:]] == [["HelloFlow", run_id, "succeeded"]]
    for spec in (run_id, f"HelloFlow/{run_id}", "HelloFlow/latest", f"{run_id}/start"):
        logs = wb("logs", spec)
        assert logs.returncode == 0 and "hello, world" in logs.stdout, (spec, logs.stderr)
    for spec in (f"{run_id}/start", "HelloFlow/latest/start", f"{run_id}/start/1"):
        arts = wb("artifacts", spec)
        assert arts.returncode == 0 and "'hello, world'" in arts.stdout, (spec, arts.stderr)
    missing = wb("logs", "notes.txt")
    assert missing.returncode == 2 and missing.stderr.startswith("error: no run notes.txt in "), missing.stderr
