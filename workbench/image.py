"""`workbench image build`: the project's image, FROM the configured base, plus its requirements.

The image holds only what the project's code needs to import (requirements.txt, or else the
``[project] dependencies`` of pyproject.toml); the code itself and the workbench package are mounted
(docker) or shipped as a code package (remote backends). The tag is a hash of every input (the
Dockerfile template, the base image's id, the normalised requirements), so an unchanged project is
not rebuilt: the command then says the image is up to date.

Builds run with the ``[docker] network`` (host or none, never a bridge). Installing requirements
needs pip in the base image and a reachable package index; with neither, only a project without
requirements builds (FROM the base, which then only gains a label).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from .errors import ConfigError, EngineUnreachable, UsageError

INPUTS_LABEL = "workbench.inputs"


def template_path() -> Path:
    """templates/Dockerfile of a source checkout, or the copy packaged inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates" / "Dockerfile", here.parent / "templates" / "Dockerfile"):
        if candidate.is_file():
            return candidate
    raise ConfigError("the Dockerfile template is missing from this installation of workbench")


def _requirement_name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;@(]", req, maxsplit=1)[0].lower().replace("_", "-")


def project_requirements(root: Path) -> tuple[list[str], str]:
    """The project's requirements (normalised) and where they came from."""
    req_file = root / "requirements.txt"
    if req_file.is_file():
        lines = []
        for raw in req_file.read_text(encoding="utf-8").splitlines():
            line = raw.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
        source = "requirements.txt"
    else:
        lines, source = [], "no requirements"
        pyproject = root / "pyproject.toml"
        if pyproject.is_file():
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib
            try:
                data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"cannot read: {exc}", path=str(pyproject)) from None
            lines = [str(d).strip() for d in (data.get("project") or {}).get("dependencies") or []]
            source = "pyproject.toml [project] dependencies"
    # workbench itself is mounted or shipped with the code, never installed from an index
    return [r for r in lines if _requirement_name(r) != "workbench"], source


def inputs_hash(template: str, base_id: str, requirements: list[str]) -> str:
    h = hashlib.sha256()
    for part in (template, base_id, "\n".join(requirements)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def default_tag(project: str, digest: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]+", "-", project.lower()).strip("-._") or "project"
    return f"workbench-{name}:{digest[:12]}"


def cmd_image_build(args, config) -> int:
    base: Optional[str] = getattr(args, "base", None) or config.model.docker.image
    if not base:
        raise UsageError("no base image: pass --base IMAGE or set [docker] image in workbench.toml "
                         "(scripts/build-base-image.sh builds workbench-base:bookworm)")
    import docker
    import docker.errors as de

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        raise EngineUnreachable(f"no Docker engine answers: {str(exc).splitlines()[0][:200]}",
                                hint="start one with scripts/start-docker.sh") from None
    try:
        base_id = client.images.get(base).id
    except de.ImageNotFound:
        raise UsageError(f"base image {base} not found on the Docker engine (build it with "
                         f"scripts/build-base-image.sh; no registry is pulled from)") from None

    root = Path(config.root)
    requirements, source = project_requirements(root)
    template = template_path().read_text(encoding="utf-8")
    digest = inputs_hash(template, base_id, requirements)
    project = config.model.project.name or root.name
    tag = getattr(args, "tag", None) or default_tag(project, digest)

    try:
        existing = client.images.get(tag)
        if (existing.labels or {}).get(INPUTS_LABEL) == digest:
            print(f"{tag} is up to date (FROM {base}, {len(requirements)} requirement(s) from {source})")
            return 0
    except de.ImageNotFound:
        pass

    print(f"building {tag} FROM {base} with {len(requirements)} requirement(s) from {source}")
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="workbench-image-") as tmp:
        shutil.copyfile(template_path(), Path(tmp, "Dockerfile"))
        Path(tmp, "requirements.txt").write_text("".join(r + "\n" for r in requirements), encoding="utf-8")
        error = None
        for chunk in client.api.build(path=tmp, tag=tag, rm=True, forcerm=True, pull=False, decode=True,
                                      network_mode=config.model.docker.network,
                                      buildargs={"BASE_IMAGE": base, "WORKBENCH_INPUTS": digest}):
            if "stream" in chunk:
                text = chunk["stream"].rstrip("\n")
                if text.strip():
                    print(f"  {text}")
            if "error" in chunk:
                error = chunk["error"].strip()
        if error:
            print(f"workbench: image build failed: {error}", file=sys.stderr)
            return 1
    print(f"built {tag} in {time.time() - started:.1f}s; use it with [docker] image = \"{tag}\" in workbench.toml")
    return 0
