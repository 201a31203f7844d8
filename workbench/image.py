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
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from .errors import BackendError, ConfigError, EngineUnreachable, UsageError

INPUTS_LABEL = "workbench.inputs"


def _quiet(line: str) -> None:
    """The default progress callback: core modules never print; the CLI passes one that does."""


def template_path() -> Path:
    """templates/Dockerfile of a source checkout, or the copy packaged inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates" / "Dockerfile", here.parent / "templates" / "Dockerfile"):
        if candidate.is_file():
            return candidate
    raise ConfigError("the Dockerfile template is missing from this installation of workbench")


def project_requirements(root: Path) -> tuple[list[str], str]:
    """The project's requirements (normalised) and where they came from (see workbench.environment_spec)."""
    from .environment_spec import project_requirements as read

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


_PROBE = (
    "import platform, sys; libc = platform.libc_ver(); "
    "print(f'{sys.version_info[0]}.{sys.version_info[1]} {platform.machine()} {libc[0]} {libc[1]}')"
)


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
            out = client.containers.run(
                image,
                [python, "-c", _PROBE],
                entrypoint=[],
                remove=True,
                network_mode="none",
                labels={"workbench.probe": "python"},
            )
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


def docker_client():
    """The engine, or one line saying how to start one."""
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        raise EngineUnreachable(
            f"no Docker engine answers: {str(exc).splitlines()[0][:200]}", hint="start one with scripts/start-docker.sh"
        ) from None
    return client


def base_image_id(client, base: str) -> str:
    import docker.errors as de

    try:
        return client.images.get(base).id
    except de.ImageNotFound:
        raise UsageError(
            f"base image {base} not found on the Docker engine (build it with "
            f"scripts/build-base-image.sh; no registry is pulled from)"
        ) from None


def build_environment_image(
    client,
    base: str,
    spec,
    *,
    network: str,
    project: str,
    tag: Optional[str] = None,
    source: str = "",
    say: Callable[[str], None] = _quiet,
) -> str:
    """An image FROM ``base`` with ``spec`` (an EnvironmentSpec) installed offline; returns its tag.

    The docker backend's hook for a step's declared environment (wave 2) and `workbench image build`.
    Up to date when the tag carries the inputs' hash; tagged from any image with the same inputs;
    otherwise built (wheels resolved and fetched once for the image's Python and platform).
    Raises BackendError with the engine's one-line error when the build fails.
    """
    import docker.errors as de

    from .environment_uv import ensure_wheelhouse, environment_for

    base_id = base_image_id(client, base)
    env = None
    if spec.requirements:
        target = image_target(client, base, base_id)
        env = environment_for(spec, target)
        if not env.has_wheelhouse:
            say(
                f"resolving {len(spec.requirements)} requirement(s) from {source or 'the spec'} for Python "
                f"{target.python} on {target.platform}"
            )
        ensure_wheelhouse(env, what=source or "image environment")
    locked = [ln for ln in (env.requirements_lock.read_text().splitlines() if env else []) if ln]
    digest = inputs_hash(template_path().read_text(encoding="utf-8"), base_id, locked)
    tag = tag or default_tag(project, digest)
    summary = f"FROM {base}, {len(locked)} package(s) from {source or 'the spec'}"
    try:
        if (client.images.get(tag).labels or {}).get(INPUTS_LABEL) == digest:
            say(f"{tag} is up to date ({summary})")
            return tag
    except de.ImageNotFound:
        pass
    started = time.time()
    cached = client.images.list(filters={"label": f"{INPUTS_LABEL}={digest}"})
    if cached:  # the same inputs were built before under another name: tag that image
        repo, _, version = tag.rpartition(":")
        cached[0].tag(repo or tag, version if repo else None)
        say(
            f"built {tag} from the cache in {time.time() - started:.1f}s ({summary}); "
            f'use it with [docker] image = "{tag}" in workbench.toml'
        )
        return tag
    say(f"building {tag} {summary}")
    with tempfile.TemporaryDirectory(prefix="workbench-image-") as tmp:
        _build_context(Path(tmp), env)
        error, pending = None, ""
        for chunk in client.api.build(
            path=tmp,
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            network_mode=network,
            buildargs={"BASE_IMAGE": base, "WORKBENCH_INPUTS": digest},
        ):
            if "stream" in chunk:  # chunks split lines anywhere: print whole lines only
                *lines, pending = (pending + _plain(chunk["stream"])).split("\n")
                for text in lines:
                    if text.strip():
                        say(f"  {text}")
            if "error" in chunk:
                error = _plain(chunk["error"]).strip()
        if pending.strip():
            say(f"  {pending}")
        if error:
            raise BackendError(f"image build failed: {error}")
    say(f'built {tag} in {time.time() - started:.1f}s; use it with [docker] image = "{tag}" in workbench.toml')
    return tag


_VERSIONS_PROBE = (
    "import importlib.metadata as m, json; print(json.dumps({(d.metadata['Name'] or '').lower(): "
    "d.version for d in m.distributions()}))"
)


def image_versions(client, image: str) -> dict[str, str]:
    """Distribution -> version installed in an image (probed once per image id): the guard's target."""
    import json

    from .environment_uv import cache_root

    image_id = base_image_id(client, image)
    cached = cache_root() / "images" / f"{image_id.replace(':', '-')}.versions.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    out = client.containers.run(
        image,
        ["python3", "-c", _VERSIONS_PROBE],
        entrypoint=[],
        remove=True,
        network_mode="none",
        labels={"workbench.probe": "versions"},
    )
    versions = json.loads(out.decode().strip().splitlines()[-1])
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(versions))
    return versions


def build_project_image(
    config, *, base: Optional[str] = None, tag: Optional[str] = None, say: Callable[[str], None] = _quiet
) -> str:
    """`workbench image build`: the project's image FROM ``base`` (default ``[docker] image``); returns its tag.

    ``say`` receives progress and the engine's build output, one line at a time (the CLI prints them)."""
    base = base or config.model.docker.image
    if not base:
        raise UsageError(
            "no base image: pass --base IMAGE or set [docker] image in workbench.toml "
            "(scripts/build-base-image.sh builds workbench-base:bookworm)"
        )
    from .environment_spec import merge, project_package_set

    client = docker_client()
    root = Path(config.root)
    project_env = project_package_set(root)
    return build_environment_image(
        client,
        base,
        merge(project_env),
        network=config.model.docker.network,
        project=config.model.project.name or root.name,
        tag=tag,
        source=project_env.source or "no requirements",
        say=say,
    )
