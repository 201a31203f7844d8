"""What the job queue of AWS Batch can place in one job: the pre-flight check of a step's request.

:class:`BatchCapacity` is a mixin of :class:`workbench.backends.batch.BatchBackend` (its only user): it reads
the queue's compute environments (managed ones: maxvCpus and their instance types) once per queue, so
``check`` refuses before the run a request none of them can fit, and ``capacity`` tells ``workbench promote``
the largest one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..errors import ConfigError, ResourceError
from ..units import format_memory
from .batch_jobs import describe_request


@dataclass
class _Fit:
    cpu: float = math.inf
    memory: float = math.inf  # MiB
    gpu: float = math.inf
    source: str = ""

    def fits(self, settings) -> bool:
        return settings.cpu <= self.cpu and settings.memory <= self.memory and settings.gpu <= self.gpu


def _fmt(value: float, kind: str) -> str:
    if math.isinf(value):
        return "?"
    return format_memory(value) if kind == "memory" else f"{value:g}"


class BatchCapacity:
    """The pre-flight half of BatchBackend; ``_fits`` caches each queue's answer for the backend's life."""

    _fits: dict[str, list[_Fit]]

    if TYPE_CHECKING:  # provided by the backend this is mixed into
        config: Any

        def _client(self, service: str) -> Any: ...
        def _call(self, what: str, fn: Callable, **kwargs) -> Any: ...
        def queue_for(self, settings) -> str: ...
        def image_for(self, settings) -> str: ...

    def _queue_fits(self, queue: str) -> list[_Fit]:
        """What each compute environment of ``queue`` can place in one job (inf where the API does not say)."""
        if queue in self._fits:
            return self._fits[queue]
        batch = self._client("batch")
        queues = self._call(f"describe job queue {queue}", batch.describe_job_queues, jobQueues=[queue])["jobQueues"]
        if not queues:
            raise ConfigError(f"batch: job queue {queue!r} does not exist (in the configured region)")
        arns = [ce["computeEnvironment"] for ce in queues[0].get("computeEnvironmentOrder", [])]
        ces = (
            self._call("describe compute environments", batch.describe_compute_environments, computeEnvironments=arns)[
                "computeEnvironments"
            ]
            if arns
            else []
        )
        fits = []
        for ce in ces:
            res = ce.get("computeResources")
            name = ce.get("computeEnvironmentName", "?")
            if ce.get("type") != "MANAGED" or not res:
                fits.append(_Fit(source=f"compute environment {name} is unmanaged"))
                continue
            fit = _Fit(cpu=float(res.get("maxvCpus") or math.inf), source=f"compute environment {name}")
            if res.get("type") in ("FARGATE", "FARGATE_SPOT"):
                fit.cpu, fit.memory, fit.gpu = min(fit.cpu, 16), 120 * 1024, 0
            else:
                largest = self._largest_instance(res.get("instanceTypes") or [])
                if largest is not None:
                    vcpu, mem, gpu, names = largest
                    fit.cpu, fit.memory, fit.gpu = min(fit.cpu, vcpu), mem, gpu
                    fit.source += f" (instance types {', '.join(names)}, maxvCpus {res.get('maxvCpus')})"
            fits.append(fit)
        self._fits[queue] = fits
        return fits

    def _largest_instance(self, types: list[str]) -> Optional[tuple[float, float, float, list[str]]]:
        """(vCPUs, MiB, GPUs) of the largest of ``types`` by each measure; None when they cannot be read
        (families such as "m5" or "optimal" are not expanded)."""
        exact = [t for t in types if "." in t]
        if not exact or len(exact) != len(types):
            return None
        try:
            found = self._client("ec2").describe_instance_types(InstanceTypes=exact)["InstanceTypes"]
        except Exception:  # noqa: BLE001 - no ec2:DescribeInstanceTypes permission: cannot tell
            return None
        if not found:
            return None
        vcpu = max(t["VCpuInfo"]["DefaultVCpus"] for t in found)
        mem = max(t["MemoryInfo"]["SizeInMiB"] for t in found)
        gpu = max(sum(g.get("Count", 0) for g in t.get("GpuInfo", {}).get("Gpus", [])) for t in found)
        return float(vcpu), float(mem), float(gpu), exact

    def check(self, settings) -> None:
        self.image_for(settings)
        queue = self.queue_for(settings)
        fits = self._queue_fits(queue)
        if not fits:
            raise ConfigError(f"batch: job queue {queue!r} has no compute environment")
        if any(f.fits(settings) for f in fits):
            return
        best = max(fits, key=lambda f: (f.cpu, f.memory, f.gpu))
        raise ResourceError(
            f"asks for {describe_request(settings, queue)}, more than any of its compute "
            f"environments can place in one job (largest: cpu {_fmt(best.cpu, 'cpu')}, memory "
            f"{_fmt(best.memory, 'memory')}, gpu {_fmt(best.gpu, 'gpu')}; {best.source})"
        )

    def capacity(self):
        """The largest request the default job queue can schedule, where the API says (for `workbench promote`)."""
        from .base import Capacity

        queue = self.config.model.batch.job_queue
        if not queue:
            return None
        fits = self._queue_fits(queue)
        if not fits or any(math.isinf(v) for f in fits for v in (f.cpu, f.memory, f.gpu)):
            return None
        best = max(fits, key=lambda f: (f.cpu, f.memory, f.gpu))
        return Capacity(cpu=best.cpu, memory=int(best.memory), gpu=int(best.gpu), source=best.source)
