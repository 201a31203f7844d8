"""Resolve, lock and install environments with uv, cached by content.

Layout, one directory per (spec, Python version, platform) hash under the cache root
(``$WORKBENCH_CACHE_DIR`` or ``~/.cache/workbench``)::

    envs/<key>/spec.json          what was asked (requirements, python, platform)
    envs/<key>/pylock.toml        uv's lock (PEP 751): every package, version, wheel URL and hash
    envs/<key>/requirements.lock  name==version --hash=... lines for the target's wheels
    envs/<key>/venv/              the installed environment (only for the host's own target)
    envs/<key>/wheels/            the wheelhouse: the lock's wheels, for offline installs elsewhere

Each stage is done once, under a file lock, and marked done by the file it writes last; a second
call finds the marker and runs no uv at all. uv is the PyPI package's binary (``uv.find_uv_bin()``),
or ``$WORKBENCH_UV``. It is pointed at the same package index pip is configured with on this
machine (pip.conf files and PIP_* variables), unless UV_* index variables already say where.
"""

from __future__ import annotations

import configparser
import fcntl
import hashlib
import json
import os
import platform as _platform
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from .environment_spec import EnvironmentSpec, host_python
from .errors import BackendError, ConfigError

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


class EnvironmentBuildError(BackendError):
    """An environment cannot be resolved or installed (one line, naming the package at fault)."""


@dataclass(frozen=True)
class Target:
    """Where an environment will run: a CPython version and a uv platform (``x86_64-manylinux_2_36``)."""

    python: str
    platform: str

    @property
    def machine(self) -> str:
        return self.platform.split("-", 1)[0]

    @property
    def glibc(self) -> tuple[int, int]:
        m = re.search(r"manylinux_(\d+)_(\d+)", self.platform)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def host_target(python: Optional[str] = None) -> Target:
    """This machine's target (glibc Linux; elsewhere the platform uv names for it)."""
    machine = _platform.machine().lower().replace("amd64", "x86_64").replace("arm64", "aarch64")
    libc, version = _platform.libc_ver()
    if sys.platform.startswith("linux") and libc == "glibc" and version:
        major, minor = version.split(".")[:2]
        plat = f"{machine}-manylinux_{major}_{minor}"
    elif sys.platform == "darwin":
        plat = f"{machine}-apple-darwin"
    elif sys.platform.startswith("linux"):
        plat = f"{machine}-unknown-linux-musl"
    else:
        plat = f"{machine}-pc-windows-msvc"
    return Target(python or host_python(), plat)


def cache_root() -> Path:
    root = os.environ.get("WORKBENCH_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "workbench"


# ---------------------------------------------------------------------------------------- uv itself


def uv_binary() -> str:
    """The uv executable: $WORKBENCH_UV, else the one the `uv` PyPI package ships."""
    explicit = os.environ.get("WORKBENCH_UV")
    if explicit:
        return explicit
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise ConfigError("uv is not installed (pip install uv): workbench resolves environments with it")


def _pip_config() -> dict[str, list[str]]:
    """index-url, extra-index-url, find-links, constraint and cert as pip would read them here."""
    files = [
        "/etc/xdg/pip/pip.conf",
        "/etc/pip.conf",
        os.path.expanduser("~/.pip/pip.conf"),
        os.path.expanduser("~/.config/pip/pip.conf"),
    ]
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(os.environ["PIP_CONFIG_FILE"])
    parser = configparser.ConfigParser(interpolation=None)
    out: dict[str, list[str]] = {}
    for path in files:
        try:
            parser.read(path)
        except configparser.Error:
            continue
    for section in ("global", "install"):
        if parser.has_section(section):
            for key, value in parser.items(section):
                out[key] = value.split()
    for key in ("index-url", "extra-index-url", "find-links", "constraint", "cert", "no-index"):
        env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if env:
            out[key] = env.split()
    return out


def index_arguments(*, resolving: bool = False) -> tuple[list[str], dict[str, str]]:
    """uv flags and environment that point it at the index pip uses on this machine.

    pip treats every index as equal and takes the best version from any; uv's default is to stop at
    the first index that has a package, so ``unsafe-best-match`` keeps pip's semantics.
    """
    conf = _pip_config()
    args: list[str] = ["--index-strategy", "unsafe-best-match"]
    env: dict[str, str] = {}
    uv_has_index = any(
        os.environ.get(k)
        for k in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS")
    )
    if not uv_has_index:
        for url in conf.get("index-url", [])[:1]:
            args += ["--default-index", url]
        for url in conf.get("extra-index-url", []):
            args += ["--index", url]
        for link in conf.get("find-links", []):
            if link.startswith(("http:", "https:", "file:")) or os.path.isdir(link):
                args += ["--find-links", link]
        if conf.get("no-index", ["false"])[0].lower() in ("1", "true", "yes", "on"):
            args += ["--no-index"]
    for constraint in conf.get("constraint", []) if resolving else []:  # installs are pinned already
        if os.path.isfile(constraint):
            args += ["--constraint", constraint]
    certs = conf.get("cert") or []
    cert = certs[0] if certs else None
    if cert and not os.environ.get("SSL_CERT_FILE") and os.path.isfile(cert):
        env["SSL_CERT_FILE"] = cert
    return args, env


def run_uv(
    args: list[str],
    *,
    what: str,
    cwd: Optional[Path] = None,
    extra_env: Optional[dict] = None,
    quiet_errors: bool = False,
) -> subprocess.CompletedProcess:
    """Run uv with plain output; a failure raises one line built from uv's own explanation."""
    env = {**os.environ, "NO_COLOR": "1", "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never", **(extra_env or {})}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run([uv_binary(), *args, "--color", "never"], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0 and not quiet_errors:
        raise EnvironmentBuildError(f"{what}: {uv_failure_line(proc.stderr)}")
    return proc


def uv_failure_line(stderr: str) -> str:
    """uv's multi-line diagnosis as one sentence (the 'Because ...' line when there is one)."""
    lines = [ANSI.sub("", ln).strip(" ×╰─▶│").strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("hint:", "help:", "warning:", "Using "))]
    joined = " ".join(lines)
    m = re.search(r"(Because .*?)(?:, we can conclude.*|$)", joined)
    if m:
        text = m.group(1)[len("Because ") :]
        text = re.sub(r" and you require .*", "", text).replace("package registry", "package index")
        return text.strip()[:400]
    return (joined or "uv failed without saying why")[:400]


# ------------------------------------------------------------------------------------------- cache


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per environment at a time (other processes wait, then find it built)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class Environment:
    """One cached environment: a spec resolved for a target, in its own directory."""

    spec: EnvironmentSpec
    target: Target
    key: str
    path: Path

    @property
    def lock_file(self) -> Path:
        return self.path / "pylock.toml"

    @property
    def requirements_lock(self) -> Path:
        return self.path / "requirements.lock"

    @property
    def venv(self) -> Path:
        return self.path / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def wheels(self) -> Path:
        return self.path / "wheels"

    @property
    def locked(self) -> bool:
        return self.requirements_lock.is_file()

    @property
    def installed(self) -> bool:
        return (self.path / "venv.done").is_file()

    @property
    def has_wheelhouse(self) -> bool:
        return (self.path / "wheels.done").is_file()

    def packages(self) -> list[dict]:
        """Resolved packages: name, version and the wheel chosen for the target (from the lock)."""
        if not self.locked:
            return []
        return json.loads((self.path / "packages.json").read_text())


def environment_for(spec: EnvironmentSpec, target: Optional[Target] = None) -> Environment:
    target = target or host_target(spec.python)
    key = spec.key(target.python, target.platform)
    return Environment(spec, target, key, cache_root() / "envs" / key)


# --------------------------------------------------------------------------------------------- lock


def ensure_locked(env: Environment, *, what: str = "environment") -> Environment:
    """Resolve the spec with uv into pylock.toml + requirements.lock, once."""
    if env.locked:
        return env
    with _locked(env.path.with_suffix(".lock")):
        if env.locked:
            return env
        env.path.mkdir(parents=True, exist_ok=True)
        (env.path / "spec.json").write_text(
            json.dumps(
                {**env.spec.to_dict(), "target": {"python": env.target.python, "platform": env.target.platform}},
                indent=2,
            )
        )
        src = env.path / "requirements.in"
        src.write_text("".join(r + "\n" for r in env.spec.requirements))
        index, extra_env = index_arguments(resolving=True)
        run_uv(
            [
                "pip",
                "compile",
                str(src),
                "--format",
                "pylock.toml",
                "-o",
                str(env.lock_file),
                "--python-version",
                env.target.python,
                "--python-platform",
                env.target.platform,
                "--no-header",
                "--quiet",
                *index,
            ],
            what=what,
            extra_env=extra_env,
        )
        chosen = choose_wheels(env.lock_file, env.target, what=what)
        (env.path / "packages.json").write_text(json.dumps(chosen, indent=1))
        lines = [f"{p['name']}=={p['version']} --hash=sha256:{p['sha256']}\n" for p in chosen]
        tmp = env.requirements_lock.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        tmp.replace(env.requirements_lock)  # the marker, written last
    return env


def _wheel_tags(filename: str) -> tuple[set[str], set[str], set[str]]:
    parts = filename[:-4].split("-")
    py, abi, plat = parts[-3], parts[-2], parts[-1]
    return set(py.split(".")), set(abi.split(".")), set(plat.split("."))


def wheel_rank(filename: str, target: Target) -> Optional[int]:
    """How well a wheel fits the target (higher is better), or None when it cannot be installed there."""
    pys, abis, plats = _wheel_tags(filename)
    major, minor = (int(x) for x in target.python.split(".")[:2])
    cp = f"cp{major}{minor}"
    if cp in pys and cp in abis:
        py_score = 3
    elif "abi3" in abis and any(p.startswith(f"cp{major}") and int(p[3:] or 0) <= minor for p in pys):
        py_score = 2
    elif "none" in abis and (pys & {f"py{major}", f"py{major}{minor}", cp}):
        py_score = 1
    else:
        return None
    if "any" in plats:
        return py_score * 1000
    best = None
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    for plat in plats:
        m = re.match(r"^(manylinux_(\d+)_(\d+)|manylinux1|manylinux2010|manylinux2014)_(.+)$", plat)
        if not m or m.group(4) != target.machine:
            continue
        glibc = (int(m.group(2)), int(m.group(3))) if m.group(2) else legacy[m.group(1)]
        if glibc <= target.glibc:
            score = py_score * 1000 + 100 + glibc[1]
            best = score if best is None else max(best, score)
    return best


def choose_wheels(lock_file: Path, target: Target, *, what: str) -> list[dict]:
    """For every package in a pylock.toml, the best wheel for the target (name, version, url, hash)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    data = tomllib.loads(lock_file.read_text())
    chosen = []
    for pkg in data.get("packages", []):
        ranked = []
        for wheel in pkg.get("wheels", []):
            name = wheel.get("name") or urllib.parse.unquote(wheel["url"].rsplit("/", 1)[-1].split("#")[0])
            rank = wheel_rank(name, target)
            if rank is not None:
                ranked.append((rank, name, wheel))
        if not ranked:
            raise EnvironmentBuildError(
                f"{what}: {pkg['name']} {pkg.get('version')} has no wheel for Python "
                f"{target.python} on {target.platform} (only a source distribution); "
                f"pick a version that ships one"
            )
        _, name, wheel = max(ranked, key=lambda r: r[0])
        chosen.append(
            {
                "name": pkg["name"],
                "version": str(pkg.get("version")),
                "wheel": name,
                "url": wheel["url"],
                "sha256": wheel.get("hashes", {}).get("sha256", ""),
                "size": wheel.get("size") or 0,
            }
        )
    return chosen


# ------------------------------------------------------------------------------------------ install


def ensure_installed(env: Environment, *, what: str = "environment") -> Environment:
    """Create the environment's venv with uv (host targets only), once."""
    ensure_locked(env, what=what)
    if env.installed:
        return env
    with _locked(env.path.with_suffix(".lock")):
        if env.installed:
            return env
        if env.target.platform != host_target().platform:
            raise EnvironmentBuildError(
                f"{what}: built for {env.target.platform}, cannot be installed on this "
                f"machine ({host_target().platform})"
            )
        shutil.rmtree(env.venv, ignore_errors=True)
        python = sys.executable if env.target.python == host_python() else env.target.python
        run_uv(["venv", str(env.venv), "--python", python, "--no-project", "--quiet"], what=what)
        index, extra_env = index_arguments()
        source = ["--offline", "--no-index", "--find-links", str(env.wheels)] if env.has_wheelhouse else index
        run_uv(
            [
                "pip",
                "sync",
                str(env.requirements_lock),
                "--python",
                str(env.python),
                "--quiet",
                "--require-hashes",
                *source,
            ],
            what=what,
            extra_env=extra_env,
        )
        (env.path / "venv.done").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return env


def _fetch(url: str, dest: Path, sha256: str) -> None:
    """Copy one wheel (file:// or http[s]://) into the wheelhouse and check its hash."""
    tmp = dest.with_suffix(".part")
    if url.startswith("file:"):
        shutil.copyfile(urllib.request.url2pathname(urllib.parse.urlparse(url).path), tmp)
    else:
        import ssl

        cert = os.environ.get("SSL_CERT_FILE") or os.environ.get("PIP_CERT")
        ctx = ssl.create_default_context(cafile=cert if cert and os.path.isfile(cert) else None)
        with urllib.request.urlopen(url, timeout=180, context=ctx) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    if sha256:
        h = hashlib.sha256()
        with open(tmp, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != sha256:
            tmp.unlink()
            raise EnvironmentBuildError(f"{dest.name}: downloaded file does not match the lock's sha256")
    tmp.replace(dest)


def ensure_wheelhouse(env: Environment, *, what: str = "environment") -> Environment:
    """Fetch the lock's wheels for the target into env/wheels (for offline installs), once."""
    ensure_locked(env, what=what)
    if env.has_wheelhouse:
        return env
    with _locked(env.path.with_suffix(".lock")):
        if env.has_wheelhouse:
            return env
        env.wheels.mkdir(exist_ok=True)
        todo = [p for p in env.packages() if not (env.wheels / p["wheel"]).is_file()]
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda p: _fetch(p["url"], env.wheels / p["wheel"], p["sha256"]), todo))
        except OSError as exc:
            raise EnvironmentBuildError(f"{what}: cannot fetch a wheel: {exc}") from None
        (env.path / "wheels.done").write_text(str(len(env.packages())))
    return env


def export_uv_lock(root: Path) -> list[str]:
    """A project's uv.lock as pinned requirement lines (its own package and dev groups left out)."""
    proc = run_uv(
        [
            "export",
            "--frozen",
            "--format",
            "requirements-txt",
            "--no-hashes",
            "--no-emit-project",
            "--no-dev",
            "--no-header",
            "--quiet",
        ],
        what=f"{root / 'uv.lock'}",
        cwd=root,
    )
    return [
        ln.strip() for ln in proc.stdout.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", "-e", "."))
    ]


def directory_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
