"""An environment shipped to a container or a remote job: one archive, installed offline at start.

The host packs an environment's lock, its wheelhouse (wheels for the target's Python and platform)
and uv's binary into one tar named by the hash of its contents, like the code package. The remote
backends upload it once to the datastore (wave 2: next to the code package, skipped when the key
exists); the task entrypoint, inside the container, calls :func:`install_offline`, which unpacks
it and installs with ``uv pip install --offline --no-index --target`` (no pip, no package index,
nothing but the archive), once per node directory, then puts the result first on ``sys.path``.

This module imports only the standard library: it runs inside task containers.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ARCHIVE_PREFIX = "env-"
_MEMBERS = ("requirements.lock", "uv")


def _add(tar: tarfile.TarFile, path: Path, name: str) -> None:
    """Add a file with fixed metadata, so the same contents give the same archive bytes."""
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
    info.mtime = 0
    with open(path, "rb") as fh:
        tar.addfile(info, fh)


def pack_environment(env, dest_dir: Path) -> Path:
    """``dest_dir/env-<sha256>.tar`` holding requirements.lock, uv and wheels/ (made once per content)."""
    from .environment_uv import ensure_wheelhouse, uv_binary

    ensure_wheelhouse(env)
    files = [(env.requirements_lock, "requirements.lock"), (Path(uv_binary()), "uv")]
    files += [(env.wheels / p["wheel"], f"wheels/{p['wheel']}") for p in env.packages()]
    digest = hashlib.sha256()
    for path, name in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    archive = dest_dir / f"{ARCHIVE_PREFIX}{digest.hexdigest()[:32]}.tar"
    if archive.is_file():
        return archive
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_suffix(f".tmp{os.getpid()}")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path, name in files:
            _add(tar, path, name)
    tmp.replace(archive)
    return archive


def _safe_members(tar: tarfile.TarFile):
    """Only the archive's own layout: no absolute paths, no '..', no links."""
    for member in tar.getmembers():
        name = member.name
        ok = name in _MEMBERS or (name.startswith("wheels/") and name.count("/") == 1 and name.endswith(".whl"))
        if not ok or not member.isfile() or ".." in name:
            raise ValueError(f"environment archive: unexpected member {name!r}")
        yield member


def install_offline(archive: Path, cache_dir: Path, python: str = sys.executable) -> Path:
    """Install an environment archive into ``cache_dir/<archive name>/site`` (once) and return that path.

    Runs inside the task's container. A second task on the same node (same cache_dir) finds it done.
    """
    home = Path(cache_dir) / Path(archive).name.removesuffix(".tar")
    site = home / "site"
    if (home / "done").is_file():
        return site
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (home / "done").is_file():
            return site
        with tarfile.open(archive) as tar:
            for member in _safe_members(tar):
                target = home / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:  # not a regular file (_safe_members lets only files through)
                    continue
                with src, open(target, "wb") as out:
                    out.write(src.read())
                os.chmod(target, member.mode & 0o755)
        env = {**os.environ, "NO_COLOR": "1", "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never"}
        proc = subprocess.run(
            [
                str(home / "uv"),
                "pip",
                "install",
                "--offline",
                "--no-index",
                "--find-links",
                str(home / "wheels"),
                "--require-hashes",
                "--no-cache",
                "--color",
                "never",
                "--python",
                python,
                "--target",
                str(site),
                "--quiet",
                "-r",
                str(home / "requirements.lock"),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            last = [ln.strip() for ln in io.StringIO(proc.stderr).read().splitlines() if ln.strip()][-1:]
            raise RuntimeError(f"installing the step's environment failed: {' '.join(last)}")
        (home / "done").write_text("ok")
    return site


def activate(site: Path) -> None:
    """Put an installed environment first on sys.path (before anything the image has)."""
    text = str(site)
    if text not in sys.path:
        sys.path.insert(0, text)
