"""Which image a Docker task runs: the step's image, or an image built FROM it with the step's environment.

- A step with a declared environment (@pypi, @pypi_base, the project's requirements) runs in an image
  built FROM its configured image with that environment's lock installed offline by uv
  (:func:`workbench.image.build_environment_image`): wheels are fetched once on the host for the image's
  Python and platform, and an unchanged environment is a cached image (same inputs, same tag).
- A step with no declared environment whose inputs were pickled with packages (``TaskSpec.input_pins``)
  runs in its image as is when the image has the same major.minor versions; otherwise in an image with the
  inputs' versions installed (the host's, which made them). When those cannot be installed for the image,
  the task is refused with one line naming the package, both versions and how to declare it.

Images are chosen once per (image, environment) per run: later tasks wait for the first build.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

from ..errors import WorkbenchError


class EnvironmentImages:
    """The environment images of one Docker backend, built once each (per run and key)."""

    def __init__(self, network: str, project: str, say: Callable[[str], None]):
        self.network = network
        self.project = project
        self.say = say
        self._client = None
        self._lock = threading.Lock()
        self._entries: dict[tuple, list] = {}  # key -> [lock, tag or None, error or None]

    def _docker(self):
        if self._client is None:
            from ..image import docker_client

            self._client = docker_client()
        return self._client

    def image_for_task(self, base: str, spec) -> str:
        """The tag a task runs (``spec`` is its TaskSpec); raises a WorkbenchError in one line."""
        if spec.environment is not None:
            env_spec = spec.environment.spec
            if not env_spec.requirements:
                return base  # only a Python version: the image's own Python is the one it has
            return self._once((base, env_spec.key("-", "-")), lambda: self._build(base, env_spec, spec.step))
        if spec.input_pins:
            return self._once((base, "pins", spec.input_pins), lambda: self._for_pins(base, spec.input_pins, spec.step))
        return base

    def _once(self, key: tuple, make: Callable[[], str]) -> str:
        with self._lock:
            entry = self._entries.setdefault(key, [threading.Lock(), None, None])
        with entry[0]:
            if entry[1] is None and entry[2] is None:
                try:
                    entry[1] = make()
                except WorkbenchError as exc:
                    entry[2] = exc
        if entry[2] is not None:
            raise entry[2]
        return entry[1]

    def _build(self, base: str, env_spec, step: str, source: Optional[str] = None) -> str:
        from ..image import build_environment_image

        return build_environment_image(
            self._docker(),
            base,
            env_spec,
            network=self.network,
            project=self.project,
            source=source or ", ".join(env_spec.sources) or f"step {step}",
            say=lambda line: None if line.startswith(" ") else self.say(f"docker: {line}"),
        )

    def _for_pins(self, base: str, pins: tuple[str, ...], step: str) -> str:
        """The base image when it can read the inputs, else one with the inputs' package versions."""
        from ..environment_guard import EnvironmentMismatch, compatible
        from ..environment_run import pins_spec
        from ..image import image_versions

        have = image_versions(self._docker(), base)
        missing = [p for p in pins if not compatible(p.split("==", 1)[1], have.get(p.split("==", 1)[0]))]
        if not missing:
            return base
        try:
            return self._build(
                base, pins_spec(tuple(missing)), step, source=f"the versions step {step}'s inputs were pickled with"
            )
        except WorkbenchError as exc:
            dist, version = missing[0].split("==", 1)
            found = f"has {dist} {have[dist]}" if have.get(dist) else f"does not have {dist}"
            raise EnvironmentMismatch(
                f"step {step}: its inputs were pickled with {dist} {version} but image {base} {found}, and "
                f"{dist}=={version} cannot be installed into it ({exc.message}); declare the step's packages: "
                f"@pypi(packages={{{dist!r}: ...}}) with a version the image's Python has, or set [docker] image "
                f"to one with {dist} {version}"
            ) from None
