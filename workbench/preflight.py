"""Pre-flight: what a backend still needs before a step can run there, said in one line, from the
configuration alone (no API call), and requests no machine could hold refused before any run.

Used by ``workbench promote`` (a note, and a refusal for an impossible request) and ``workbench check``
(a ``warn`` line per step that cannot run yet). What the runtime checks again at launch is the same
list, so "check says ok" and "the run starts" agree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .errors import ResourceError, WorkbenchError

if TYPE_CHECKING:
    from .config import ProjectConfig
    from .settings import StepSettings


def backend_needs(config: "ProjectConfig", settings: "StepSettings") -> list[str]:
    """What ``settings.backend`` still needs (words, with where to set it); empty when nothing."""
    from .backends import backend_class

    name = settings.backend
    cls = backend_class(name)
    needs: list[str] = []
    if cls.remote and not config.datastore_url.startswith("s3://") and not config.remote_url:
        needs.append(
            'an S3 datastore ([datastore] root = "s3://bucket/prefix", or [datastore] remote = '
            '"s3://bucket/prefix" to keep the local one)'
        )
    if name == "batch":
        b = config.model.batch
        if not (settings.queue or b.job_queue):
            needs.append('a job queue ([batch] job_queue = "..." or @batch(queue=...))')
    if name == "kubernetes":
        k = config.model.kubernetes
        if not (
            k.kubeconfig
            or os.environ.get("KUBECONFIG")
            or (Path.home() / ".kube" / "config").exists()
            or os.environ.get("KUBERNETES_SERVICE_HOST")
        ):
            needs.append('a kubeconfig ([kubernetes] kubeconfig = "...", KUBECONFIG or ~/.kube/config)')
    if cls.image_requirement or name in ("docker", "batch", "kubernetes"):
        try:
            cls(config).image_for(settings)
        except WorkbenchError:
            needs.append(f'an image ([{name}] image = "...", @{name}(image=...) or --image)')
    return needs


def image_warning(config: "ProjectConfig", settings: "StepSettings") -> Optional[str]:
    """A warning when a remote step's image names no registry: Batch and Kubernetes nodes pull images,
    and an image built on this machine only (``workbench-base:bookworm``) is not there to pull."""
    from .backends import backend_class

    cls = backend_class(settings.backend)
    if not cls.remote:
        return None
    try:
        image = cls(config).image_for(settings)
    except WorkbenchError:
        return None
    first = image.split("/")[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return None
    return (
        f"image {image} names no registry: {settings.backend} nodes pull images, so an image built only on "
        f"this machine will not be found (push it to a registry and name it registry.example.com/{image})"
    )


def refuse_impossible(settings: "StepSettings") -> None:
    """Refuse a Batch request that no listed EC2 instance type can hold (when the queue's own limits
    could not be read); Kubernetes and Docker are judged from their nodes / engine (Backend.capacity)."""
    if settings.backend != "batch":
        return
    from .pricing import estimate, largest
    from .units import format_memory

    if estimate(settings.cpu, settings.memory, settings.gpu) is None:
        cpu, mem_gib, gpu = largest()
        raise ResourceError(
            f"batch: no EC2 instance type can hold cpu {settings.cpu:g}, memory "
            f"{format_memory(settings.memory)}, gpu {settings.gpu} (the largest listed: "
            f"{cpu} vCPU, {mem_gib:g} GiB, {gpu} GPUs)"
        )


def summary_line(step: str, config: "ProjectConfig", settings: "StepSettings") -> Optional[str]:
    """One line for `check`/`promote`: what the step's backend still needs, or None."""
    needs = backend_needs(config, settings)
    if not needs:
        return None
    return f"step {step} on {settings.backend} still needs: " + "; ".join(needs)
