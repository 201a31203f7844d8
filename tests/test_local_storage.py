"""The local directory store (workbench.datastore.local): keys are paths under its root, and writing many
distinct keys leaves nothing behind in the process (pathlib would intern every task id for good)."""

import pytest

from workbench.datastore.local import LocalStorage


def test_keys_are_paths_under_the_root(tmp_path):
    storage = LocalStorage(tmp_path / "s")
    storage.put("F/runs/1/sq/2/spec-0.json", [b"{", b"}"])
    assert bytes(storage.get("F/runs/1/sq/2/spec-0.json")) == b"{}" and storage.size("F/runs/1/sq/2/spec-0.json") == 2
    assert (tmp_path / "s" / "F" / "runs" / "1" / "sq" / "2" / "spec-0.json").read_bytes() == b"{}"
    assert storage.local_path("F/runs/1/sq/2/spec-0.json") == str(tmp_path / "s" / "F/runs/1/sq/2/spec-0.json")
    assert storage.local_path("") == str((tmp_path / "s").resolve())
    storage.put("F/runs/1/sq/2/spec-0.json", [b"new"], overwrite=False)
    assert bytes(storage.get("F/runs/1/sq/2/spec-0.json")) == b"{}"  # kept
    storage.append_text("F/runs/1/sq/2/out.log", "a\n")
    storage.append_text("F/runs/1/sq/2/out.log", "b\n")
    assert storage.list("F/runs/1/sq/2") == ["out.log", "spec-0.json"] and storage.list("") == ["F"]
    assert storage.list("F/runs/9") == [] and not storage.exists("F/runs/9")
    storage.delete("F/runs/1/sq/2/out.log")
    assert storage.list("F/runs/1/sq/2/") == ["spec-0.json"]
    storage.delete("F/runs/1")
    assert not storage.exists("F/runs/1/sq/2/spec-0.json")
    with pytest.raises(KeyError):
        storage.get("F/runs/1/sq/2/spec-0.json")
    with pytest.raises(KeyError):
        storage.size("F/runs/1/sq/2/spec-0.json")


PROBE = """
import gc, sys, tracemalloc
from workbench.datastore.local import LocalStorage
storage = LocalStorage(sys.argv[1])
storage.put("F/runs/1/sq/1/spec-0.json", [b"{}"])
gc.collect()
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
for n in range(100_000, 110_000):
    key = f"F/runs/1/sq/{n}/spec-0.json"
    storage.put(key, [b"{}"])
    storage.get(key)
    storage.exists(key)
gc.collect()
print(tracemalloc.get_traced_memory()[0] - before)
"""


def test_writing_many_tasks_keeps_no_memory_per_task(tmp_path):
    """In a fresh interpreter (a test runner's own interned strings would hide it): 10,000 tasks' keys
    written and read leave under 4 B each behind (pathlib kept ~40 B each in the interned-string table)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "s")], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    kept = int(out.stdout.split()[-1])
    assert kept < 40_000, f"{kept} bytes kept after writing 10,000 tasks' keys"
