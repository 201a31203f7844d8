"""`workbench image build`: the project's image, FROM the configured base, plus its environment.

The image holds only what the project's code needs to import (uv.lock, requirements.txt, or else the
``[project] dependencies`` of pyproject.toml; never workbench's own front-end dependencies); the code
itself and the workbench package are mounted (docker) or shipped as a code package (remote backends).

The environment is resolved with uv on the host for the image's own Python and platform (probed once
per base image), its wheels are fetched once into the environment's wheelhouse, and uv's binary plus
those wheels go into the build context: the image installs offline, with no pip and no package index
(any base image with Python 3 and glibc works; builds may run with ``[docker] network = "none"``).
The tag is a hash of every input (the Dockerfile template, the base image's id, the lock), so an
unchanged project is not rebuilt, and the same inputs under a new tag are tagged from the cache.
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


def project_requirements(root: Path) -> tuple[list[str], str]:
    """The project's requirements (normalised) and where they came from (see workbench.environment)."""
    from .environment import project_requirements as read
    return read(root)


def inputs_hash(template: str, base_id: str, requirements: list[str]) -> str:
    h = hashlib.sha256()
    for part in (template, base_id, "\n".join(requirements)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def default_tag(project: str, digest: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]+", "-", project.lower()).strip("-._") or "project"
    return f"workbench-{name}:{digest[:12]}"


_PROBE = ("import platform, sys; libc = platform.libc_ver(); "
          "print(f'{sys.version_info[0]}.{sys.version_info[1]} {platform.machine()} {libc[0]} {libc[1]}')")


def image_target(client, image: str, image_id: str):
    """The Python version and platform inside an image (probed once per image id, then cached)."""
    import json

    from .environment_uv import Target, cache_root
    cached = cache_root() / "images" / f"{image_id.replace(':', '-')}.json"
    if cached.is_file():
        data = json.loads(cached.read_text())
        return Target(data["python"], data["platform"])
    out = None
    for python in ("python3", "python"):
        try:
            out = client.containers.run(image, [python, "-c", _PROBE], entrypoint=[], remove=True,
                                        network_mode="none", labels={"workbench.probe": "python"})
            break
        except Exception:  # noqa: BLE001 - no such interpreter in the image: try the next name
            continue
    if out is None:
        raise UsageError(f"base image {image} has no python3 (or python) on its PATH")
    version, machine, libc, libc_version = (out.decode().split() + ["", "", "", ""])[:4]
    machine = machine.lower().replace("amd64", "x86_64").replace("arm64", "aarch64")
    if libc == "glibc" and libc_version:
        platform = f"{machine}-manylinux_{'_'.join(libc_version.split('.')[:2])}"
    else:
        platform = f"{machine}-unknown-linux-musl"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"python": version, "platform": platform, "image": image}))
    return Target(version, platform)


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        dest.hardlink_to(src)
    except OSError:
        shutil.copyfile(src, dest)
        shutil.copymode(src, dest)


def _build_context(tmp: Path, env) -> None:
    """Dockerfile + environment/: uv's binary, requirements.lock and the wheels (installed offline)."""
    from .environment_uv import uv_binary
    shutil.copyfile(template_path(), tmp / "Dockerfile")
    ctx = tmp / "environment"
    (ctx / "wheels").mkdir(parents=True)
    if env is None:
        (ctx / "requirements.lock").write_text("")
        return
    _link_or_copy(Path(uv_binary()), ctx / "uv")
    _link_or_copy(env.requirements_lock, ctx / "requirements.lock")
    for p in env.packages():
        _link_or_copy(env.wheels / p["wheel"], ctx / "wheels" / p["wheel"])


def _plain(text: str) -> str:
    from .environment_uv import ANSI
    return ANSI.sub("", text).replace("\r", "")


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

    from .environment import merge, project_package_set
    from .environment_uv import ensure_wheelhouse, environment_for
    root = Path(config.root)
    project_env = project_package_set(root)
    spec = merge(project_env)
    source = project_env.source or "no requirements"
    env = None
    if spec.requirements:
        target = image_target(client, base, base_id)
        env = environment_for(spec, target)
        if not env.has_wheelhouse:
            print(f"resolving {len(spec.requirements)} requirement(s) from {source} for Python {target.python} "
                  f"on {target.platform}", flush=True)
        ensure_wheelhouse(env, what=source)
    locked = [ln for ln in (env.requirements_lock.read_text().splitlines() if env else []) if ln]
    template = template_path().read_text(encoding="utf-8")
    digest = inputs_hash(template, base_id, locked)
    project = config.model.project.name or root.name
    tag = getattr(args, "tag", None) or default_tag(project, digest)
    summary = f"FROM {base}, {len(locked)} package(s) from {source}"

    try:
        existing = client.images.get(tag)
        if (existing.labels or {}).get(INPUTS_LABEL) == digest:
            print(f"{tag} is up to date ({summary})")
            return 0
    except de.ImageNotFound:
        pass
    started = time.time()
    cached = client.images.list(filters={"label": f"{INPUTS_LABEL}={digest}"})
    if cached:  # the same inputs were built before under another name: tag that image
        repo, _, version = tag.rpartition(":")
        cached[0].tag(repo or tag, version if repo else None)
        print(f"built {tag} from the cache in {time.time() - started:.1f}s ({summary}); "
              f"use it with [docker] image = \"{tag}\" in workbench.toml")
        return 0

    print(f"building {tag} {summary}", flush=True)
    with tempfile.TemporaryDirectory(prefix="workbench-image-") as tmp:
        _build_context(Path(tmp), env)
        error = None
        for chunk in client.api.build(path=tmp, tag=tag, rm=True, forcerm=True, pull=False, decode=True,
                                      network_mode=config.model.docker.network,
                                      buildargs={"BASE_IMAGE": base, "WORKBENCH_INPUTS": digest}):
            if "stream" in chunk:
                for text in _plain(chunk["stream"]).splitlines():
                    if text.strip():
                        print(f"  {text}", flush=True)
            if "error" in chunk:
                error = _plain(chunk["error"]).strip()
        if error:
            print(f"workbench: image build failed: {error}", file=sys.stderr)
            return 1
    print(f"built {tag} in {time.time() - started:.1f}s; use it with [docker] image = \"{tag}\" in workbench.toml")
    return 0
