"""The task boundary, without a Docker engine: the blob format (aligned, hash-checked, one line when
corrupt), viewing without unpickling, and the code package's secret rules. The Docker and S3 halves
are in tests/test_security_docker.py."""

from __future__ import annotations

import os
import pickle
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.client import Flow, namespace
from workbench.datastore import FlowDatastore
from workbench.datastore.blob import CorruptBlob, content_hash, forget_verified
from workbench.errors import UsageError

from .conftest import write_flow

np = pytest.importorskip("numpy")

FLOW = """
from workbench import FlowSpec, step
import numpy as np

class ViewFlow(FlowSpec):
    @step
    def start(self):
        self.number = 42
        self.text = "hello " * 50
        self.table = {"k%d" % i: list(range(i, i + 5)) for i in range(30)}
        self.arr = np.arange(12, dtype="float64").reshape(3, 4)
        self.big = np.linspace(0.0, 1.0, 3 * 1024 * 1024)  # 24 MiB: memory-mapped when read back
        self.next(self.end)

    @step
    def end(self):
        self.total = float(self.arr.sum()) + float(self.big.sum())
"""


def wb(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=180
    )


@pytest.fixture
def viewed(project):
    write_flow(project, "view.py", FLOW)
    p = wb("run", "flows/view.py", cwd=project)
    assert p.returncode == 0, p.stdout + p.stderr
    namespace(str(project / ".workbench"))
    run = Flow("ViewFlow").latest_run
    return project, run


def _blob_path(project: Path, run, step: str, name: str) -> Path:
    sha = run[step].task.artifacts[name]["sha"]
    return project / ".workbench" / "ViewFlow" / "data" / sha[:2] / sha


# ---------------------------------------------------------------------------------------- the blob format


def test_buffers_are_64_byte_aligned_and_a_256_mib_array_sums_the_same(tmp_path):
    ds = FlowDatastore(str(tmp_path), "F")
    arr = np.random.default_rng(1).standard_normal(256 * 1024 * 1024 // 8)
    sha, size = ds.save_artifact(arr)
    raw = (tmp_path / "F" / "data" / sha[:2] / sha).read_bytes()
    assert raw[:4] == b"WBA2"
    back = ds.load_artifact(sha)  # memory-mapped (over MAP_THRESHOLD)
    assert back.flags.aligned and back.ctypes.data % 64 == 0
    assert float(back.sum()) == float(arr.sum())
    small = np.arange(1000, dtype="float64")
    s2, _ = ds.save_artifact((small, b"x" * 3))
    got = ds.load_artifact(s2)[0]  # read into memory, realigned
    assert got.ctypes.data % 64 == 0 and (got == small).all()


def test_old_unpadded_blobs_stay_readable(tmp_path):
    ds = FlowDatastore(str(tmp_path), "F")
    buffers = []
    value = np.arange(7, dtype="int64")
    main = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    sha = content_hash([memoryview(main), *raws], len(main) + sum(r.nbytes for r in raws))
    head = struct.pack("<4sBIQ", b"WBA1", 0, len(raws), len(main)) + struct.pack(
        f"<{len(raws)}Q", *(r.nbytes for r in raws)
    )
    ds.storage.put(ds.artifact_key(sha), [head, main, *raws])
    assert (ds.load_artifact(sha) == value).all()


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage"])
def test_a_damaged_blob_is_one_line_everywhere(viewed, damage):
    project, run = viewed
    for name in ("arr", "big"):
        path = _blob_path(project, run, "start", name)
        raw = bytearray(path.read_bytes())
        if damage == "flip":
            raw[-5] ^= 0x01
        elif damage == "truncate":
            raw = raw[: len(raw) // 2]
        elif damage == "empty":
            raw = bytearray()
        else:
            raw = bytearray(os.urandom(len(raw)))
        path.write_bytes(bytes(raw))
    forget_verified()
    # the client
    with pytest.raises(CorruptBlob.__mro__[1]) as info:  # DatastoreError
        _ = run["start"].task.data.arr
    assert str(info.value).startswith(f"corrupt artifact arr of {run.id}/start/1: ")
    # the CLI: one line on stderr, no traceback
    p = wb("artifacts", f"{run.id}/start", "arr", "--load", cwd=project)
    assert p.returncode != 0
    errors = [line for line in p.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(errors) == 1 and f"corrupt artifact arr of {run.id}/start/1: " in errors[0], p.stderr
    assert "Traceback" not in p.stderr
    # a task reading its inputs: re-run `end` from this run's `start` outputs
    p = wb("run", "flows/view.py", "--step", "end", "--from-run", run.id, cwd=project)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    # (the single-step run clones start into a new run: the parent named is that clone)
    assert re.search(r"failed: corrupt artifact (arr|big) of \d+/start/1: ", out), out
    assert "Traceback" not in out


# ---------------------------------------------------------------------------------------- viewing


@pytest.fixture
def no_unpickling(monkeypatch):
    """Any unpickling in this process fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the viewing side unpickled a blob")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    import workbench.datastore.blob as blob

    monkeypatch.setattr(blob.pickle, "loads", refuse)


def test_viewing_never_unpickles(viewed, no_unpickling, capsys, monkeypatch):
    project, run = viewed
    from workbench.cli import main

    monkeypatch.chdir(project)
    assert main(["artifacts", f"{run.id}/start"]) == 0
    listing = capsys.readouterr().out
    assert "number" in listing and "numpy.ndarray" in listing
    shown = {}
    for name in ("number", "text", "table", "arr", "big"):
        assert main(["artifacts", f"{run.id}/start", name]) == 0
        shown[name] = capsys.readouterr().out
    assert shown["number"].strip() == "42"
    assert "hello hello" in shown["text"]
    assert "'k0': [0, 1, 2, 3, 4]" in shown["table"]
    assert "shape=(3, 4) dtype=float64" in shown["arr"] and "min=0 max=11" in shown["arr"]
    assert "shape=(3145728,)" in shown["big"] and "max=1" in shown["big"]
    # an inherited artifact shows its producer's summary
    assert main(["artifacts", f"{run.id}/end", "arr"]) == 0
    assert "shape=(3, 4)" in capsys.readouterr().out
    # the client's preview
    assert "min=0 max=11" in run["start"].task["arr"].summary


def test_loading_still_works_and_names_where_the_blob_came_from(viewed, monkeypatch):
    project, run = viewed
    task = run["start"].task
    assert (task.data.arr == np.arange(12.0).reshape(3, 4)).all()
    from workbench.datastore.records import TaskRecord
    from workbench.preview import provenance_note

    assert provenance_note("x", TaskRecord(settings={"backend": "local"}, pathspec="F/1/a/1")) is None
    note = provenance_note("x", TaskRecord(settings={"backend": "docker"}, pathspec="F/1/a/1"))
    assert "in a container" in note and "unpickl" in note


# ---------------------------------------------------------------------------------------- the code package


def _secret_project(root: Path) -> None:
    (root / "flows").mkdir(parents=True)
    (root / "flows" / "f.py").write_text("x = 1\n")
    files = {
        ".env": "A=1",
        "config/.env.production": "B=2",
        "certs/server.pem": "-----BEGIN",
        "certs/tls.key": "k",
        ".aws/credentials": "[default]",
        ".ssh/id_ed25519": "k",
        "keys/id_rsa": "k",
        "keys/id_rsa.pub": "p",
        "deploy/sa-service-account.json": "{}",
        ".netrc": "machine x",
        "notes.txt": "fine",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_package_leaves_secrets_out_and_says_so(tmp_path):
    from workbench.package import collect

    _secret_project(tmp_path)
    pkg = collect(tmp_path, include_workbench=False)
    shipped = {f.arcname[len("project/") :] for f in pkg.files}
    assert shipped == {"flows/f.py", "notes.txt"}
    assert set(pkg.left_out) == {
        ".env",
        "config/.env.production",
        "certs/server.pem",
        "certs/tls.key",
        ".aws/credentials",
        ".ssh/id_ed25519",
        "keys/id_rsa",
        "keys/id_rsa.pub",
        "deploy/sa-service-account.json",
        ".netrc",
    }
    assert "@secrets" in pkg.secrets_warning() and "!path" in pkg.secrets_warning()
    # deliberately re-included by name
    (tmp_path / ".workbenchignore").write_text("!certs/server.pem\n")
    pkg = collect(tmp_path, include_workbench=False)
    assert "project/certs/server.pem" in {f.arcname for f in pkg.files}
    assert "certs/server.pem" not in pkg.left_out


def test_package_refuses_a_symlink_out_of_the_project(tmp_path):
    from workbench.package import collect

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "token.txt").write_text("secret")
    root = tmp_path / "proj"
    _secret_project(root)
    (root / "data.txt").symlink_to(outside / "token.txt")
    with pytest.raises(UsageError) as info:
        collect(root, include_workbench=False)
    assert "data.txt is a symlink to" in str(info.value) and "outside the project" in str(info.value)
    assert "\n" not in str(info.value)
    (root / "data.txt").unlink()
    (root / "link.env.txt").symlink_to(root / ".env")  # inside, but to a secret: left out too
    pkg = collect(root, include_workbench=False)
    assert "link.env.txt" in pkg.left_out


def test_package_show_lists_what_it_left_out(tmp_path, monkeypatch, capsys):
    _secret_project(tmp_path)
    (tmp_path / "flows" / "f.py").write_text(
        "from workbench import FlowSpec, step\nclass F(FlowSpec):\n    @step\n    def start(self):\n"
        "        self.next(self.end)\n    @step\n    def end(self):\n        pass\n"
    )
    (tmp_path / "workbench.toml").write_text('[project]\nname = "p"\n')
    monkeypatch.chdir(tmp_path)
    from workbench.cli import main

    assert main(["package", "show", "flows/f.py"]) == 0
    out = capsys.readouterr().out
    assert "left out" in out and ".aws/credentials" in out and "warning: left out 10 file(s)" in out


def test_secret_looking_env_is_recognised_and_redacted_in_the_package(tmp_path):
    from workbench.package import build_archive, collect
    from workbench.redact import looks_secret, redact_env

    assert looks_secret("DB_PASSWORD", "x") and looks_secret("GITHUB_TOKEN", "x") and looks_secret("API_KEY", "x")
    assert looks_secret("ANY", "AKIAABCDEFGHIJKLMNOP")
    assert looks_secret("ANY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert not looks_secret("MODE", "fast") and not looks_secret("COMMIT", "0123456789abcdef0123456789abcdef01234567")
    assert redact_env({"SECRET": "s", "N": "1"}) == {"SECRET": "<redacted>", "N": "1"}
    (tmp_path / "workbench.toml").write_text(
        '[project]\nname = "p"\n[flows.F.steps.train]\nenv = { DB_PASSWORD = "hunter2", MODE = "fast" }\n'
    )
    import io
    import tarfile

    blob = build_archive(collect(tmp_path, include_workbench=False).files)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        shipped = tar.extractfile("project/workbench.toml").read().decode()
    assert "hunter2" not in shipped and 'DB_PASSWORD = "<redacted>"' in shipped and 'MODE = "fast"' in shipped
