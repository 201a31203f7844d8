"""workbench.toml: find it (walking up from the current directory), read it, validate it, edit it.

Schema (every table optional)::

    [project]
    name = "demo"
    flows = "flows"              # where flow files live
    backend = "local"            # default backend of every step: a name in workbench.backends.REGISTRY
    remote_backend = "batch"     # where `workbench promote` sends a step when --to is not given

    [datastore]
    root = ".workbench"          # a directory (relative to the project root) or s3://bucket/prefix
    remote = "s3://bucket/stage" # with a local root: where remote steps get their inputs and leave outputs
    endpoint_url = "http://..."  # S3-compatible endpoint (optional)
    region = "us-east-1"

    [docker]   image, env, network ("host" | "none"), pool
    [batch]    region, job_queue, job_role, image, endpoint_url, runnable_warning
    [kubernetes] context, kubeconfig, namespace, service_account, image, image_pull_secrets,
               node_selector, tolerations, secrets, gpu_vendor, template

    [flows.TrainFlow.steps.train]   # per-step overrides
    backend = "batch"
    cpu = 8
    memory = "32G"
    gpu = 1
    image = "..."
    timeout = "2h"
    retries = 2
    env = { KEY = "value" }

Validation errors name the key and its line. Edits go through tomlkit so comments and formatting
elsewhere in the file stay byte-for-byte the same.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .backends import BACKEND_NAMES
from .errors import ConfigError, ResourceError
from .units import parse_cpu, parse_duration, parse_gpu, parse_memory

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_NAME = "workbench.toml"
BACKENDS = BACKEND_NAMES  # the registry in workbench.backends is the only list
BackendName = Literal[BACKENDS]  # type: ignore[valid-type]  # a step's or the project's backend: a registered name


def _check(parse: Callable[[object, str], Any], what: str) -> Callable[[object], Any]:
    """A pydantic validator from one of our unit parsers (pydantic reports ValueErrors with their location)."""

    def validate(value: object) -> Any:
        if value is None:
            return None
        try:
            return parse(value, what)
        except ResourceError as exc:
            raise ValueError(exc.message) from None

    return validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


def _plain_text(value: object) -> object:
    """Refuse control characters (a NUL cannot be in a path or name; the OS would refuse it later)."""
    if isinstance(value, str) and any(ord(c) < 32 and c not in "\t" for c in value):
        raise ValueError(f"{_short(value)} holds a control character")
    return value


def _inside_project(value: object) -> object:
    """``flows`` is a directory under the project: "/" would make `check` walk the whole disk."""
    _plain_text(value)
    if isinstance(value, str) and (os.path.isabs(value) or value.startswith("~") or ".." in Path(value).parts):
        raise ValueError(f"{_short(value)} must be a directory inside the project (relative to workbench.toml)")
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class ProjectSection(_Strict):
    name: Optional[str] = None
    flows: str = "flows"
    backend: BackendName = "local"
    remote_backend: BackendName = "batch"
    # most remote (batch/kubernetes) tasks handed to their backends at once; unset: 10,000 (or --max-workers when
    # larger), so that a foreach up to 10,000 wide goes out as one array job / one Indexed Job
    max_remote_tasks: Optional[int] = Field(default=None, ge=1)

    _flows = field_validator("flows")(_inside_project)
    _name = field_validator("name")(_plain_text)


class DatastoreSection(_Strict):
    root: str = ".workbench"
    remote: Optional[str] = None  # s3://... where remote steps exchange artifacts when root is a directory
    endpoint_url: Optional[str] = None
    region: Optional[str] = None
    task_role: Optional[str] = None  # IAM role ARN the credentials of Docker tasks are cut from (S3 datastore)

    _text = field_validator("root", "remote", "endpoint_url", "region", "task_role")(_plain_text)


class DockerSection(_Strict):
    image: Optional[str] = None
    env: dict[str, str] = Field(default_factory=dict)
    network: Literal["host", "none"] = "host"


class BatchSection(_Strict):
    region: Optional[str] = None
    job_queue: Optional[str] = None
    job_role: Optional[str] = None
    image: Optional[str] = None
    endpoint_url: Optional[str] = None
    runnable_warning: Union[int, str] = 600

    _v = field_validator("runnable_warning")(_check(parse_duration, "runnable_warning"))


class KubernetesSection(_Strict):
    context: Optional[str] = None
    kubeconfig: Optional[str] = None
    namespace: str = "default"
    service_account: Optional[str] = None
    image: Optional[str] = None
    image_pull_secrets: list[str] = Field(default_factory=list)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    secrets: list[str] = Field(default_factory=list)
    gpu_vendor: str = "nvidia"
    template: Optional[str] = None
    parallelism: Optional[int] = Field(default=None, ge=1)  # pods of one Indexed Job (a foreach) at once


class StepSection(_Strict):
    backend: Optional[BackendName] = None
    cpu: Optional[Union[int, float, str]] = None
    memory: Optional[Union[int, str]] = None
    gpu: Optional[Union[int, float, str]] = None
    disk: Optional[Union[int, str]] = None
    shared_memory: Optional[Union[int, str]] = None
    image: Optional[str] = None
    timeout: Optional[Union[int, str]] = None
    retries: Optional[int] = Field(default=None, ge=0, le=100)
    env: dict[str, str] = Field(default_factory=dict)
    queue: Optional[str] = None
    namespace: Optional[str] = None

    _cpu = field_validator("cpu")(_check(parse_cpu, "cpu"))
    _mem = field_validator("memory")(_check(parse_memory, "memory"))
    _gpu = field_validator("gpu")(_check(parse_gpu, "gpu"))
    _disk = field_validator("disk")(_check(parse_memory, "disk"))
    _shm = field_validator("shared_memory")(_check(parse_memory, "shared_memory"))
    _timeout = field_validator("timeout")(_check(parse_duration, "timeout"))


class FlowSection(_Strict):
    steps: dict[str, StepSection] = Field(default_factory=dict)


class ConfigModel(_Strict):
    project: ProjectSection = Field(default_factory=ProjectSection)
    datastore: DatastoreSection = Field(default_factory=DatastoreSection)
    docker: DockerSection = Field(default_factory=DockerSection)
    batch: BatchSection = Field(default_factory=BatchSection)
    kubernetes: KubernetesSection = Field(default_factory=KubernetesSection)
    flows: dict[str, FlowSection] = Field(default_factory=dict)


@dataclass
class ProjectConfig:
    """A project: its root directory, its workbench.toml (if any) and the validated settings."""

    root: Path
    path: Optional[Path] = None
    model: ConfigModel = field(default_factory=ConfigModel)

    @property
    def flows_dir(self) -> Path:
        return (self.root / self.model.project.flows).resolve()

    @property
    def datastore_url(self) -> str:
        root = os.environ.get("WORKBENCH_DATASTORE") or self.model.datastore.root
        if root.startswith("s3://"):
            return root
        return str((self.root / root).resolve())

    @property
    def remote_url(self) -> Optional[str]:
        remote = self.model.datastore.remote
        if remote and not remote.startswith("s3://"):
            raise ConfigError(f"[datastore] remote = {remote!r} must be an s3:// URL", path=str(self.path))
        return remote

    @property
    def is_s3(self) -> bool:
        return self.datastore_url.startswith("s3://")

    def step_section(self, flow: str, step: str) -> Optional[StepSection]:
        f = self.model.flows.get(flow)
        return f.steps.get(step) if f else None

    def check_step_tables(self, flow: str, steps: list[str]) -> None:
        """Refuse a ``[flows.<flow>.steps.<name>]`` table for a step the flow does not have.

        A misspelled table would otherwise be ignored in silence and the step run with the wrong settings.
        """
        table = self.model.flows.get(flow)
        for name in table.steps if table else ():
            if name not in steps:
                raise ConfigError(
                    f"[flows.{flow}.steps.{name}]: flow {flow} has no step {name}{_nearest(name, steps)}",
                    path=str(self.path) if self.path else CONFIG_NAME,
                    line=self._line(["flows", flow, "steps", name]),
                )

    def unknown_flow_tables(self, flows: list[str]) -> list[ConfigError]:
        """A ``[flows.<name>]`` table per flow name that no flow file in the project defines."""
        return [
            ConfigError(
                f"[flows.{name}]: no flow named {name} in {self.flows_dir}{_nearest(name, flows)}",
                path=str(self.path) if self.path else CONFIG_NAME,
                line=self._line(["flows", name]),
            )
            for name in self.model.flows
            if name not in flows
        ]

    def _line(self, loc: list[str]) -> Optional[int]:
        """The line of ``loc``, or of the first table header under it (``[flows.F.steps.s]`` for flows.F)."""
        try:
            text = decode_config(self.path.read_bytes()) if self.path else ""
        except (OSError, ConfigError):
            return None
        line = _line_of(text, loc)
        for n, row in enumerate(text.splitlines(), 1):
            h = _HEADER.match(row)
            if line is None and h and _split_key(h.group(1))[: len(loc)] == loc:
                return n
        return line


def _nearest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (it has: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})" if names else ""


def find_config(start: Optional[Path] = None) -> Optional[Path]:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        candidate = d / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def _datastore_home(here: Path) -> Path:
    """Metaflow's rule for its local ``.metaflow``: the nearest one up from the current directory, so a
    notebook opened in a tutorial's folder (its kernel starts there) reads the runs made one level up."""
    default = DatastoreSection().root
    for d in (here, *here.parents):
        if (d / default).is_dir():
            return d
    return here


def load_config(start: Optional[Path] = None, path: Optional[Path] = None) -> ProjectConfig:
    """The project around ``start`` (default: cwd). Without a workbench.toml, defaults rooted at the nearest
    directory up from ``start`` that holds a ``.workbench`` datastore, else at ``start``."""
    if path is None:
        env = os.environ.get("WORKBENCH_CONFIG")
        path = Path(env) if env else find_config(start)
    if path is None:
        return ProjectConfig(root=_datastore_home((start or Path.cwd()).resolve()))
    path = Path(path).resolve()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(path)) from None
    return ProjectConfig(
        root=path.parent, path=path, model=parse_config_text(decode_config(data, str(path)), str(path))
    )


def decode_config(data: bytes, path: str = CONFIG_NAME) -> str:
    """TOML is UTF-8; a leading BOM (which editors on Windows write) is dropped, other bad bytes named."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"not UTF-8: byte 0x{data[exc.start]:02x} cannot be decoded (TOML files are UTF-8)", path=path, line=line
        ) from None


def parse_config_text(text: str, path: str = CONFIG_NAME) -> ConfigModel:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(f"not valid TOML: {msg}", path=path, line=int(m.group(1)) if m else None) from None
    except RecursionError:
        raise ConfigError("arrays or tables are nested too deeply to read", path=path) from None
    try:
        return ConfigModel.model_validate(data)
    except RecursionError:
        raise ConfigError("values are nested too deeply to check", path=path) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        if len(loc) > 1 and loc[-1] in ("int", "float", "str") and loc[-2] in _UNION_FIELDS:
            loc = loc[:-1]  # pydantic names the member of Union[int, str] it tried last; the key is enough
        key = ".".join(loc)
        line = _line_of(text, loc)
        if first["type"] == "extra_forbidden":
            message = f"unknown key {key}"
            section = ".".join(loc[:-1])
            model = _model_at(ConfigModel, loc[:-1])
            if model is not None:
                message += f" (allowed in [{section or 'top level'}]: {', '.join(model.model_fields)})"
        elif first["type"] == "value_error":
            message = f"{key}: {re.sub(r'^Value error, ', '', first['msg'])}"
        else:
            message = f"{key} = {_short(first.get('input'))}: {first['msg']}"
        raise ConfigError(message, path=path, line=line) from None


_UNION_FIELDS = {"cpu", "memory", "gpu", "disk", "shared_memory", "timeout", "runnable_warning"}


def _model_at(model: Optional[type[BaseModel]], loc: list[str]) -> Optional[type[BaseModel]]:
    for part in loc:
        if model is None:
            return None
        fields = getattr(model, "model_fields", {})
        if part in fields:
            ann = fields[part].annotation
            args = getattr(ann, "__args__", ())
            model = args[-1] if args and isinstance(args[-1], type) and issubclass(args[-1], BaseModel) else ann
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                model = None
        elif model is FlowSection or model is ConfigModel:
            continue  # a dict key (a flow or step name)
        else:
            return None
    return model


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


def _split_key(key: str) -> list[str]:
    return [p.strip().strip("\"'") for p in key.split(".")]


def _line_of(text: str, loc: list[str]) -> Optional[int]:
    """The line where the key path ``loc`` is set: its own line, else its table's header."""
    table: list[str] = []
    best = None
    for n, line in enumerate(text.splitlines(), 1):
        h = _HEADER.match(line)
        if h:
            table = _split_key(h.group(1))
            if table == loc[: len(table)] and (best is None or len(table) >= best[0]):
                best = (len(table), n)
            continue
        k = _KEY.match(line)
        if k:
            full = table + _split_key(k.group(1))
            if full == loc[: len(full)] and (best is None or len(full) >= best[0]):
                best = (len(full), n)
    return best[1] if best else None


# ------------------------------------------------------------------------------------------- editing

STEP_KEYS = tuple(StepSection.model_fields)


def edit_step(
    path: Path, flow: str, step: str, values: dict[str, Any], *, remove: bool = False, dry_run: bool = False
) -> str:
    """Set (or with ``remove=True`` delete) ``[flows.<flow>.steps.<step>]`` keys in workbench.toml.

    ``values`` maps keys to new values; a value of None deletes that key. Returns a unified diff ("" if
    nothing changed). Comments and formatting elsewhere in the file are kept byte-for-byte. The new text
    is validated before it is written; nothing is written on error or with ``dry_run``.
    """
    import tomlkit
    from tomlkit import TOMLDocument
    from tomlkit.items import Table

    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    doc = tomlkit.parse(old)
    unknown = [k for k in values if k not in STEP_KEYS]
    if unknown:
        raise ConfigError(f"unknown step setting {unknown[0]} (allowed: {', '.join(STEP_KEYS)})", path=str(path))

    def child(parent: Union[TOMLDocument, Table], key: str, super_table: bool) -> Table:
        if key not in parent:
            parent.add(key, tomlkit.table(is_super_table=super_table))
        node = parent[key]
        if not isinstance(node, Table):
            raise ConfigError(f"{key} must be a table to hold step settings", path=str(path))
        return node

    if remove:
        flows = doc.get("flows")
        steps = flows.get(flow, {}).get("steps") if flows is not None else None
        if flows is None or steps is None or step not in steps:
            return ""
        del steps[step]
        if not steps:
            del flows[flow]["steps"]
        if not flows[flow]:
            del flows[flow]
        if not flows:
            del doc["flows"]
    else:
        table = child(child(child(doc, "flows", True), flow, True), "steps", True)
        table = child(table, step, False)
        for key, value in values.items():
            if value is None:
                if key in table:
                    del table[key]
            elif isinstance(value, dict):
                inline = tomlkit.inline_table()
                inline.update(value)
                table[key] = inline
            else:
                table[key] = value
    new = tomlkit.dumps(doc)
    if not remove and not new.endswith("\n"):
        new += "\n"
    if remove:  # drop the blank line that separated the removed table
        new = new.rstrip("\n") + "\n" if new.strip() else ""
    parse_config_text(new, str(path))  # refuse to write a file we could not read back
    diff = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{path.name}",
            tofile=f"b/{path.name}",
        )
    )
    if diff and not dry_run:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, path)
    return diff
