"""What each backend can place, for the inspector's sliders, and the price of a request.

A backend's own ``capacity()`` is the source (Docker asks its engine; Batch its job queue; Kubernetes
its nodes). The local backend has none in its contract, so the TUI reads this machine. Reading may
contact a server: the app calls :func:`read_capacity` from a worker thread and caches the answer.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Optional

from ..units import format_memory

CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class Placement:
    """The largest single task a backend takes (None: unknown), and a line saying where that comes from."""

    backend: str
    cpu: Optional[float]
    memory: Optional[int]
    gpu: Optional[int]
    note: str

    @property
    def known(self) -> bool:
        return self.cpu is not None


def machine_capacity() -> tuple[float, int]:
    """This machine's CPUs and memory (MiB): what the local backend can give one task at most."""
    cpus = float(os.cpu_count() or 1)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        memory = 0
    return cpus, int(memory)


_cache: dict[tuple[str, str], tuple[float, Placement]] = {}


def read_capacity(name: str, config) -> Placement:
    """The placement limits of backend ``name``; never raises (an unreachable backend is 'unknown')."""
    key = (name, str(getattr(config, "path", "")))
    hit = _cache.get(key)
    if hit and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    placement = _read(name, config)
    _cache[key] = (time.monotonic(), placement)
    return placement


def _read(name: str, config) -> Placement:
    if name == "local":
        cpu, memory = machine_capacity()
        return Placement(name, cpu, memory or None, 0, f"local: this machine, {cpu:g} CPUs, {format_memory(memory)}")
    try:
        from ..backends import backend_class

        cap = backend_class(name)(config).capacity()
    except Exception as exc:  # noqa: BLE001 - unreachable or unconfigured: keep the sliders usable
        return Placement(
            name,
            None,
            None,
            None,
            f"{name}: what it can place is unknown ({_first_line(exc)}); sliders span the price table",
        )
    if cap is None:
        return Placement(
            name, None, None, None, f"{name}: what it can place is unknown here; sliders span the price table"
        )
    return Placement(
        name,
        float(cap.cpu),
        int(cap.memory),
        int(cap.gpu),
        f"{name}: at most cpu {cap.cpu:g}, memory {format_memory(cap.memory)}, gpu {cap.gpu}"
        + (f" ({cap.source})" if cap.source else ""),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__


def clamp(values: list, limit: Optional[float], keep) -> list:
    """The notches up to ``limit`` (all when unknown), always with ``keep`` (the current setting) so that
    a step already asking for more is shown as it is, not silently lowered."""
    if limit is None:
        out = list(values)
    else:
        out = [v for v in values if float(v) <= float(limit)] or list(values[:1])
    if keep is not None and not any(float(v) == float(keep) for v in out):
        out = sorted(out + [keep], key=float)
    return out


def price_line(backend: str, cpu: float, memory: int, gpu: int, current=None) -> str:
    """The hourly price of a request on a cloud backend (and the change from the current settings)."""
    if backend not in ("batch", "kubernetes"):
        return f"price: none ({backend} runs on a machine you have)"
    from ..pricing import estimate

    price = estimate(cpu, memory, gpu)
    if price is None:
        return "price: no common instance type fits this request"
    line = f"price: {price.describe()}"
    if current is not None and current.backend in ("batch", "kubernetes"):
        before = estimate(current.cpu, current.memory, current.gpu)
        if before is not None and before.hourly_usd != price.hourly_usd:
            line += f"; now ${before.hourly_usd:.3f}/hour ({price.hourly_usd - before.hourly_usd:+.3f})"
    return line
