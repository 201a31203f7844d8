"""The code package: what a remote task (Batch, Kubernetes) needs to run, as one content-addressed archive.

It holds the flow's project directory (``project/``) and the workbench package itself (``lib/workbench/``),
so the image needs nothing but Python 3 and boto3. Files are chosen with .gitignore semantics (the
``pathspec`` library, the same rules git applies): every ``.gitignore`` in the tree and a
``.workbenchignore`` at the project root (its patterns come last, so ``!pattern`` re-includes), plus a few
built-in exclusions (VCS dirs, caches, the local datastore).

The archive is deterministic (sorted names, fixed mtime, uid/gid 0, normalised modes, a gzip header without
a timestamp), so the same tree gives the same sha256 and is uploaded once: ``<datastore>/<Flow>/packages/
<sha>.tgz``, skipped when already there.

A remote task starts with :func:`bootstrap_command`: ``python3 -c <script> PACKAGE_URL TASK_COMMAND...``
downloads the package with boto3, unpacks it to a temporary directory and runs the task entrypoint with
``--root <dir>/project`` and ``<dir>/lib`` on the path (``PYTHONPATH`` for what the task starts). The usual
entrypoint (``python3 -m workbench.task``) runs in the bootstrap's own interpreter, as ``python -u -m`` would:
a second interpreter would start and import boto3 again (measured on the emulator, quiet: an Indexed-Job task
1.69 -> 1.60 s; the task imports boto3 for the datastore anyway, before the step's environment is on the path). Any other command is
exec'd.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .errors import UsageError

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

    from .config import ProjectConfig
    from .datastore.storage import Storage

WARN_BYTES = 50 * 1024 * 1024  # a package above this gets a warning naming its largest files
FIXED_MTIME = 315532800  # 1980-01-01, as wheels use
IGNORE_FILE = ".workbenchignore"
BUILTIN_IGNORES = [
    ".git/",
    ".hg/",
    ".svn/",
    "__pycache__/",
    "*.py[co]",
    ".workbench/",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".tox/",
    ".venv/",
    ".DS_Store",
    "*.egg-info/",
]
ROOT_PLACEHOLDER = "@ROOT@"
# Files that look like secrets never ship unless .workbenchignore re-includes them by name (``!path``).
SECRET_PATTERNS = [
    ".env",
    ".env.*",
    "*.env",
    ".envrc",  # dotenv files
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.crt",
    "*.cer",
    "*.der",
    "*.jks",
    "*.keystore",
    "*.gpg",
    "*.asc",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".ssh/**",
    "authorized_keys",
    "known_hosts",  # ssh
    ".aws/**",
    ".azure/**",
    ".config/gcloud/**",
    "application_default_credentials.json",
    "*service-account*.json",
    ".kube/**",
    "*.kubeconfig",
    ".docker/config.json",  # cloud credentials
    ".netrc",
    ".pgpass",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".htpasswd",
    "*.tfvars",
    ".gnupg/**",
]

# Runs in the task's container: needs python3 and boto3 only. Must not contain "Ref::" (Batch parameters).
BOOTSTRAP = """\
import os,signal,sys,tarfile,tempfile,time
if os.getpid()==1:signal.signal(signal.SIGTERM,lambda n,f:os._exit(128+n))
import boto3
from botocore.config import Config
t=time.time()
b,_,k=sys.argv[1][5:].partition('/')
e=os.environ.get('WORKBENCH_S3_ENDPOINT_URL') or None
r=os.environ.get('WORKBENCH_S3_REGION') or None
d=tempfile.mkdtemp(prefix='workbench-')
p=os.path.join(d,'package.tgz')
c=boto3.client('s3',endpoint_url=e,region_name=r,config=Config(retries={'mode':'standard','max_attempts':10}))
c.download_file(b,k,p)
with tarfile.open(p) as f:
    f.extractall(d,**({'filter':'data'} if hasattr(tarfile,'data_filter') else {}))
os.remove(p)
root=os.path.join(d,'project')
os.environ['PYTHONPATH']=os.pathsep.join(x for x in (os.path.join(d,'lib'),os.environ.get('PYTHONPATH')) if x)
os.environ['PYTHONUNBUFFERED']='1'
os.chdir(root)
print('workbench: code package %s unpacked in %.1fs' % (k.rsplit('/',1)[-1][:12],time.time()-t),file=sys.stderr,flush=True)
a=[x.replace('@ROOT@',root) for x in sys.argv[2:]]
if a[:3]!=['python3','-m','workbench.task']:os.execvp(a[0],a)
import io,runpy
sys.path.insert(1,os.path.join(d,'lib'))
for n in ('stdout','stderr'):
    s=getattr(sys,n);setattr(sys,n,io.TextIOWrapper(io.FileIO(s.fileno(),'w',closefd=False),encoding=s.encoding,errors=s.errors,line_buffering=True,write_through=True))
sys.argv=['workbench.task',*a[3:]]
runpy.run_module('workbench.task',run_name='__main__',alter_sys=True)
"""


@dataclass(frozen=True)
class PackageFile:
    arcname: str  # project/<path> or lib/workbench/<path>
    path: str  # on disk
    size: int
    executable: bool


@dataclass
class CodePackage:
    files: list[PackageFile]
    project_root: str
    _blob: Optional[bytes] = field(default=None, repr=False)
    left_out: list[str] = field(default_factory=list)  # project files left out because they look like secrets

    @property
    def size(self) -> int:
        """Total size of the files (uncompressed)."""
        return sum(f.size for f in self.files)

    def largest(self, n: int = 5) -> list[PackageFile]:
        return sorted(self.files, key=lambda f: (-f.size, f.arcname))[:n]

    def warning(self, threshold: int = WARN_BYTES) -> Optional[str]:
        if self.size <= threshold:
            return None
        big = ", ".join(
            f"{f.arcname[len('project/') :] if f.arcname.startswith('project/') else f.arcname} ({_human(f.size)})"
            for f in self.largest(3)
        )
        return (
            f"the code package is {_human(self.size)} (over {_human(threshold)}); largest files: {big}. "
            f"Keep data out of the package: list it in {IGNORE_FILE} and read it from S3 instead"
        )

    def secrets_warning(self) -> Optional[str]:
        """One line naming the files left out because they look like secrets, or None."""
        if not self.left_out:
            return None
        names = ", ".join(self.left_out[:8]) + (f" and {len(self.left_out) - 8} more" if len(self.left_out) > 8 else "")
        return (
            f"left out {len(self.left_out)} file(s) that look like secrets: {names}. Pass secrets with "
            f"@secrets; to ship one anyway, re-include it with a `!path` line in {IGNORE_FILE}"
        )

    @property
    def blob(self) -> bytes:
        if self._blob is None:
            self._blob = build_archive(self.files)
        return self._blob

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.blob).hexdigest()


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# ---------------------------------------------------------------------------------------- choosing files


class _Ignores:
    """.gitignore files met while walking (nearest last) + .workbenchignore, with git's "last match wins"."""

    def __init__(self, root: Path):
        import pathspec

        self._pathspec = pathspec
        self.root = root
        self.specs: list[tuple[str, GitIgnoreSpec]] = [("", pathspec.GitIgnoreSpec.from_lines(BUILTIN_IGNORES))]
        self.workbench: Optional[GitIgnoreSpec] = None
        self.secrets = pathspec.GitIgnoreSpec.from_lines(SECRET_PATTERNS)
        wbi = root / IGNORE_FILE
        if wbi.is_file():
            self.workbench = pathspec.GitIgnoreSpec.from_lines(wbi.read_text(encoding="utf-8").splitlines())

    def add_gitignore(self, rel_dir: str, path: Path) -> None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return
        self.specs.append((rel_dir, self._pathspec.GitIgnoreSpec.from_lines(lines)))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        decision = False
        candidates = [(d, s) for d, s in self.specs if not d or rel.startswith(d + "/")]
        if self.workbench is not None:
            candidates.append(("", self.workbench))
        for d, spec in candidates:
            sub = rel[len(d) + 1 :] if d else rel
            result = spec.check_file(sub + "/" if is_dir else sub)
            if result.include is not None:
                decision = result.include
        return decision

    def secret(self, rel: str) -> bool:
        """True when ``rel`` looks like a secret and .workbenchignore does not re-include it by a ``!`` line."""
        if not self.secrets.match_file(rel):
            return False
        return self.workbench is None or self.workbench.check_file(rel).include is not False


class OutsideSymlink(UsageError):
    """A project file is a symlink to something outside the project (its content would leak into the package)."""


def _check_link(path: Path, rel: str, root: Path) -> Optional[str]:
    """The link target's path relative to the project, or OutsideSymlink when it points outside."""
    target = path.resolve()
    try:
        return target.relative_to(root).as_posix()
    except ValueError:
        raise OutsideSymlink(
            f"{rel} is a symlink to {target}, outside the project {root}: the package refuses it "
            f"(copy the file in, or list {rel} in {IGNORE_FILE})"
        ) from None


def _walk(
    root: Path, arc_prefix: str, ignores: Optional[_Ignores], left_out: Optional[list[str]] = None
) -> list[PackageFile]:
    out: list[PackageFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        if ignores is not None and ".gitignore" in filenames:
            ignores.add_gitignore(rel_dir, Path(dirpath, ".gitignore"))
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if ignores is not None and ignores.ignored(rel, True):
                continue
            if ignores is None and d == "__pycache__":
                continue
            if ignores is not None and os.path.islink(os.path.join(dirpath, d)):
                _check_link(Path(dirpath, d), rel, root)  # not followed; but never one that leaves the project
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if ignores is not None and ignores.ignored(rel, False):
                continue
            if ignores is None and name.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath, name)
            if ignores is not None:
                target = _check_link(path, rel, root) if path.is_symlink() else rel
                if ignores.secret(rel) or (target != rel and ignores.secret(target or "")):
                    if left_out is not None:
                        left_out.append(rel)
                    continue
            try:
                st = path.stat()  # follows symlinks (inside the project only): the package holds the content
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            out.append(PackageFile(f"{arc_prefix}/{rel}", str(path), st.st_size, bool(st.st_mode & 0o111)))
    return out


def collect(
    project_root: str | os.PathLike, extra_ignores: tuple[str, ...] = (), include_workbench: bool = True
) -> CodePackage:
    """What would ship for a project: its files (ignore rules applied) and the workbench package."""
    root = Path(project_root).resolve()
    if not root.is_dir():
        raise UsageError(f"no project directory {root}")
    ignores = _Ignores(root)
    if extra_ignores:
        import pathspec

        ignores.specs.append(("", pathspec.GitIgnoreSpec.from_lines(list(extra_ignores))))
    left_out: list[str] = []
    files = _walk(root, "project", ignores, left_out)
    if include_workbench:
        files += _walk(Path(__file__).resolve().parent, "lib/workbench", None)
    files.sort(key=lambda f: f.arcname)
    return CodePackage(files, str(root), left_out=sorted(left_out))


def build_archive(files: list[PackageFile]) -> bytes:
    """A deterministic tar.gz of ``files`` (the same content gives the same bytes)."""
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for f in sorted(files, key=lambda f: f.arcname):
                info = tarfile.TarInfo(f.arcname)
                with open(f.path, "rb") as fh:
                    data = fh.read()
                if f.arcname == "project/workbench.toml":  # step env secrets are not shipped as written
                    from .redact import redact_toml

                    data = redact_toml(data.decode("utf-8", "replace")).encode()
                info.size = len(data)
                info.mtime = FIXED_MTIME
                info.mode = 0o755 if f.executable else 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


# ---------------------------------------------------------------------------------------- shipping


def package_key(flow: str, sha: str) -> str:
    return f"{flow}/packages/{sha}.tgz"


def upload(package: CodePackage, storage: "Storage", flow: str) -> tuple[str, bool]:
    """Put the package in the datastore unless it is there; return (its s3:// URL, whether it was uploaded)."""
    key = package_key(flow, package.sha)
    uploaded = False
    if not storage.exists(key):
        storage.put(key, [package.blob], overwrite=False)
        uploaded = True
    return f"{storage.url.rstrip('/')}/{key}", uploaded


def bootstrap_command(package_url: str, task_command: list[str], python: str = "python3") -> list[str]:
    """The container command: fetch + unpack the package, then exec ``task_command`` (``@ROOT@`` in it is
    replaced by the unpacked project directory)."""
    return [python, "-c", BOOTSTRAP, package_url, *task_command]


# ------------------------------------------------------------------------------------ what ships


@dataclass
class PackageListing:
    """What `workbench package show` reports for a flow: the package, where it comes from and goes to."""

    flow: str
    root: Path
    package: CodePackage
    upload_url: Optional[str]  # where it would be uploaded (S3 datastores only)

    @property
    def project_files(self) -> list[PackageFile]:
        return [f for f in self.package.files if f.arcname.startswith("project/")]

    @property
    def library_files(self) -> list[PackageFile]:
        return [f for f in self.package.files if not f.arcname.startswith("project/")]

    @property
    def compressed_size(self) -> int:
        return len(self.package.blob)

    @property
    def warnings(self) -> list[str]:
        return [w for w in (self.package.warning(), self.package.secrets_warning()) if w]


def describe_package(graph, config: "ProjectConfig") -> PackageListing:
    """The code package a remote task of ``graph`` would get; built in memory, never uploaded."""
    if not graph.ok:
        raise graph.errors[0]
    root = Path(config.root).resolve()
    try:
        Path(graph.path).resolve().relative_to(root)
    except ValueError:  # a flow outside the project ships its own directory, as the runtime runs it
        root = Path(graph.path).resolve().parent
    pkg = collect(root)
    url = f"{config.datastore_url.rstrip('/')}/{package_key(graph.name or '', pkg.sha)}" if config.is_s3 else None
    return PackageListing(graph.name or "", root, pkg, url)


human_size = _human  # public name for the CLI's listing
