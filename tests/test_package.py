"""The code package: ignore rules, determinism, the size warning, `workbench package show`, the bootstrap."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.support.moto_server import aws, moto_server  # noqa: E402,F401  (fixtures)
from workbench import package as pkgmod  # noqa: E402

FLOW = textwrap.dedent("""
    from workbench import FlowSpec, step

    class PackFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
""").lstrip()


def make_tree(root: Path) -> Path:
    (root / "flows").mkdir(parents=True)
    (root / "flows" / "pack_flow.py").write_text(FLOW)
    (root / "workbench.toml").write_text('[project]\nname = "pack"\n')
    (root / "lib").mkdir()
    (root / "lib" / "helpers.py").write_text("X = 1\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / ".gitignore").write_text("*.log\n!keep.log\nbuild/\n")
    (root / "app.log").write_text("noise\n")
    (root / "keep.log").write_text("kept\n")
    (root / "build").mkdir()
    (root / "build" / "out.bin").write_bytes(b"\0" * 100)
    (root / "data").mkdir()
    (root / "data" / "big.csv").write_text("a,b\n" * 1000)
    (root / "data" / "small.csv").write_text("a,b\n")
    (root / "data" / ".gitignore").write_text("scratch/\n")
    (root / "data" / "scratch").mkdir()
    (root / "data" / "scratch" / "tmp.txt").write_text("x")
    (root / ".workbenchignore").write_text("data/big.csv\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "lib" / "__pycache__").mkdir()
    (root / "lib" / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"pyc")
    (root / ".workbench").mkdir()
    (root / ".workbench" / "blob").write_bytes(b"local datastore")
    return root


def project_names(pkg) -> list[str]:
    return [f.arcname[len("project/") :] for f in pkg.files if f.arcname.startswith("project/")]


def test_ignore_rules(tmp_path):
    pkg = pkgmod.collect(make_tree(tmp_path / "p"))
    assert project_names(pkg) == [
        ".gitignore",
        ".workbenchignore",
        "data/.gitignore",
        "data/small.csv",
        "flows/pack_flow.py",
        "keep.log",
        "lib/helpers.py",
        "run.sh",
        "workbench.toml",
    ]
    lib = [f.arcname for f in pkg.files if f.arcname.startswith("lib/")]
    assert "lib/workbench/task.py" in lib and "lib/workbench/__init__.py" in lib
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in lib)


def test_same_tree_same_sha(tmp_path):
    # (the workbench package is left out here only so that edits to it elsewhere cannot race this test)
    def sha(root):
        return pkgmod.collect(root, include_workbench=False).sha

    a = make_tree(tmp_path / "a")
    sha1 = sha(a)
    time.sleep(0.01)
    os.utime(a / "lib" / "helpers.py", (1, 1))  # mtimes do not matter
    assert sha(a) == sha1
    b = tmp_path / "b"
    shutil.copytree(a, b)  # nor where the tree is
    assert sha(b) == sha1
    (b / "data" / "big.csv").write_text("changed, but ignored\n")
    assert sha(b) == sha1
    (b / "lib" / "helpers.py").write_text("X = 2\n")
    assert sha(b) != sha1


def test_archive_layout_and_modes(tmp_path):
    pkg = pkgmod.collect(make_tree(tmp_path / "p"))
    with tarfile.open(fileobj=io.BytesIO(pkg.blob)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["project/run.sh"].mode == 0o755
    assert members["project/lib/helpers.py"].mode == 0o644
    assert {m.mtime for m in members.values()} == {pkgmod.FIXED_MTIME}
    assert {(m.uid, m.gid, m.uname) for m in members.values()} == {(0, 0, "")}
    assert list(members) == sorted(members)


def test_size_warning_names_largest_files(tmp_path):
    root = make_tree(tmp_path / "p")
    (root / "data" / "weights.bin").write_bytes(os.urandom(300_000))
    pkg = pkgmod.collect(root)
    assert pkg.warning() is None
    warning = pkg.warning(threshold=200_000)
    assert "data/weights.bin (293.0 KiB)" in warning and ".workbenchignore" in warning


def test_package_show_cli(tmp_path, monkeypatch):
    root = make_tree(tmp_path / "p")
    monkeypatch.chdir(root)
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    monkeypatch.delenv("WORKBENCH_DATASTORE", raising=False)
    env = dict(os.environ, PYTHONPATH=_REPO)
    out = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "package", "show", "PackFlow"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "flows/pack_flow.py" in out.stdout and "data/small.csv" in out.stdout
    assert "data/big.csv" not in out.stdout and "app.log" not in out.stdout
    assert "workbench package (" in out.stdout and "sha256" in out.stdout


def test_bootstrap_downloads_unpacks_and_execs(tmp_path, aws):
    """The container bootstrap, run here: fetch the package from S3, unpack, exec with @ROOT@ filled in."""
    from workbench.datastore.s3 import S3Storage

    bucket = aws.bucket()
    storage = S3Storage(f"s3://{bucket}/ds")
    pkg = pkgmod.collect(make_tree(tmp_path / "p"))
    t0 = time.perf_counter()
    url, uploaded = pkgmod.upload(pkg, storage, "PackFlow")
    took = time.perf_counter() - t0
    assert uploaded and url == f"s3://{bucket}/ds/PackFlow/packages/{pkg.sha}.tgz"
    assert pkgmod.upload(pkg, storage, "PackFlow") == (url, False)  # once per content
    print(
        f"\npackage: {len(pkg.files)} files, {pkg.size / 1024:.0f} KiB -> {len(pkg.blob) / 1024:.0f} KiB "
        f"compressed, built+uploaded in {took:.2f}s"
    )
    probe = "import os,sys,workbench; print(os.getcwd()); print(workbench.__file__); print(sys.argv[1])"
    cmd = pkgmod.bootstrap_command(url, [sys.executable, "-c", probe, "@ROOT@"], python=sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cwd, wb_file, root_arg = out.stdout.split()
    assert cwd.endswith("/project") and root_arg == cwd
    assert wb_file.startswith(str(Path(cwd).parent / "lib" / "workbench"))
    assert "code package" in out.stderr
    assert "Ref::" not in pkgmod.BOOTSTRAP


def test_bootstrap_runs_the_task_entrypoint_in_its_own_interpreter(tmp_path, aws):
    """The usual entrypoint (``python3 -m workbench.task``) runs in the bootstrap's interpreter, from the package's
    lib: no second interpreter start and boto3 import per remote task. A ``python3`` on PATH that refuses to run
    shows that nothing was exec'd."""
    from workbench.datastore.s3 import S3Storage

    storage = S3Storage(f"s3://{aws.bucket()}/ds")
    url, _ = pkgmod.upload(pkgmod.collect(make_tree(tmp_path / "p")), storage, "PackFlow")
    shim = tmp_path / "bin" / "python3"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'a second interpreter was started' >&2\nexit 97\n")
    shim.chmod(0o755)
    task = ["python3", "-m", "workbench.task", "run", "--datastore", f"s3://{aws.bucket()}/ds", "--root", "@ROOT@"]
    cmd = pkgmod.bootstrap_command(url, [*task, "PackFlow/1/start/1/0"], python=sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{shim.parent}{os.pathsep}{env['PATH']}"
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert "second interpreter" not in out.stderr
    assert out.returncode == 1  # the entrypoint's own answer: there is no such task
    assert "workbench.task: no task spec for PackFlow/1/start/1/0" in out.stderr
    # any other command is still exec'd (here: the shim)
    other = pkgmod.bootstrap_command(url, ["python3", "-c", "pass"], python=sys.executable)
    out = subprocess.run(other, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 97 and "second interpreter" in out.stderr
