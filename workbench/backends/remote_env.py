"""A remote task's environment (Batch, Kubernetes): one archive in the datastore, installed offline at start.

The step's declared environment (or, with none declared, the package versions its inputs were pickled
with) is resolved for the job's Python and platform, its wheels fetched once on the host, and packed with
uv's binary into ``env-<sha256>.tar`` (:func:`workbench.environment_remote.pack_environment`). The archive
is uploaded next to the code package, keyed by its content (an unchanged environment is never uploaded
again), and the job is told its key in ``WORKBENCH_ENVIRONMENT``; the task entrypoint installs it with
``uv --offline --no-index`` into a node-local cache (``WORKBENCH_ENVIRONMENT_CACHE``, default
``/tmp/workbench-environments``) and puts it first on sys.path. The job needs no package index.

The target is the host's platform at the step's Python version (``@pypi(python=...)``) unless
``WORKBENCH_REMOTE_PLATFORM`` names another (``x86_64-manylinux_2_28``, ``aarch64-manylinux_2_28``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

ENV_VAR = "WORKBENCH_ENVIRONMENT"


class RemoteEnvironments:
    """Environment archives of one remote backend's run: packed and uploaded once per content."""

    def __init__(self, warn: Callable[[str], None]):
        self.warn = warn
        self._lock = threading.Lock()
        self._keys: dict[tuple, list] = {}  # (spec key) -> [lock, datastore key or None]

    def job_env(self, spec, storage) -> dict[str, str]:
        """The variables that make the task install its environment ({} when it needs none)."""
        env_spec = self._spec_of(spec)
        if env_spec is None:
            return {}
        ident = (env_spec.requirements, env_spec.python, storage.url)
        with self._lock:
            entry = self._keys.setdefault(ident, [threading.Lock(), None])
        with entry[0]:
            if entry[1] is None:
                entry[1] = self._upload(env_spec, spec, storage)
        return {ENV_VAR: entry[1]}

    @staticmethod
    def _spec_of(spec):
        if spec.environment is not None:
            return spec.environment.spec if spec.environment.spec.requirements else None
        if spec.input_pins:
            from ..environment_run import pins_spec

            return pins_spec(spec.input_pins)
        return None

    def _upload(self, env_spec, spec, storage) -> str:
        from ..environment_remote import pack_environment
        from ..environment_uv import Target, cache_root, environment_for, host_target

        target = host_target(env_spec.python)
        platform = os.environ.get("WORKBENCH_REMOTE_PLATFORM")
        if platform:
            target = Target(target.python, platform)
        env = environment_for(env_spec, target)
        what = ", ".join(env_spec.sources) or f"step {spec.step}"
        archive = pack_environment_for(env, what, cache_root() / "archives", pack_environment)
        key = f"{spec.flow}/environments/{archive.name}"
        if not storage.exists(key):
            with open(archive, "rb") as fh:
                storage.put(key, [fh.read()], overwrite=False)
            self.warn(
                f"environment for step {spec.step} ({len(env.packages())} package(s), "
                f"{archive.stat().st_size / 2**20:.1f} MiB) uploaded as {key}"
            )
        return key


def pack_environment_for(env, what: str, dest: Path, pack: Callable) -> Path:
    """Resolve + fetch the wheels (EnvironmentBuildError names ``what`` on failure), then pack."""
    from ..environment_uv import ensure_wheelhouse

    ensure_wheelhouse(env, what=what)
    return pack(env, dest)
