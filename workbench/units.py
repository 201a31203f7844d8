"""Resource quantities: parse what users write (``16G``, ``512Mi``, ``16000``, ``2h``) into numbers."""

from __future__ import annotations

import math
import re

from .errors import ResourceError

_MEMORY_UNITS = {
    "": 1,  # bare numbers are MiB, as in Metaflow's @resources(memory=16000)
    "m": 1,
    "mb": 1,
    "mi": 1,
    "mib": 1,
    "g": 1024,
    "gb": 1024,
    "gi": 1024,
    "gib": 1024,
    "t": 1024 * 1024,
    "tb": 1024 * 1024,
    "ti": 1024 * 1024,
    "tib": 1024 * 1024,
    "k": 1 / 1024,
    "kb": 1 / 1024,
    "ki": 1 / 1024,
    "kib": 1 / 1024,
}
_MEM_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")
_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h|hr|d)?\s*$", re.I)
_DURATION_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def parse_memory(value: object, what: str = "memory") -> int:
    """Return MiB. Accepts ints (MiB) and strings like ``16G``, ``512Mi``, ``1.5GiB``."""
    if isinstance(value, bool):
        raise ResourceError(f"{what} = {value!r} is not a size (write e.g. 16G or 4096)")
    if isinstance(value, (int, float)):
        mib = _finite(value, what)
    elif isinstance(value, str):
        m = _MEM_RE.match(value)
        if not m or m.group(2).lower() not in _MEMORY_UNITS:
            raise ResourceError(f"{what} = {_show(value)} is not a size (write e.g. 16G, 512M or 4096 for MiB)")
        mib = _finite(float(m.group(1)) * _MEMORY_UNITS[m.group(2).lower()], what, value)
    else:
        raise ResourceError(f"{what} = {_show(value)} is not a size (write e.g. 16G or 4096)")
    if mib <= 0:
        raise ResourceError(f"{what} = {_show(value)} must be greater than zero")
    return int(math.ceil(mib))


def _show(value: object) -> str:
    """A value as it goes into a one-line message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _finite(value: float, what: str, shown: object = None) -> float:
    """``value`` as a float, refusing what no machine can be asked for (inf, nan, 10**400)."""
    shown = value if shown is None else shown
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if math.isnan(number) or math.isinf(number):
        raise ResourceError(f"{what} = {_show(shown)} is not a finite number")
    return number


def parse_cpu(value: object, what: str = "cpu") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ResourceError(f"{what} = {_show(value)} is not a number of CPUs")
    try:
        cpu = float(value[:-1]) / 1000 if isinstance(value, str) and value.endswith("m") else float(value)
    except ValueError:
        raise ResourceError(f"{what} = {_show(value)} is not a number of CPUs (write e.g. 4 or 0.5)") from None
    except OverflowError:
        cpu = math.inf
    if math.isnan(cpu) or math.isinf(cpu):
        raise ResourceError(f"{what} = {_show(value)} is not a finite number")
    if cpu <= 0:
        raise ResourceError(f"{what} = {_show(value)} must be greater than zero")
    return cpu


def parse_gpu(value: object, what: str = "gpu") -> int:
    if isinstance(value, bool):
        raise ResourceError(f"{what} = {_show(value)} is not a GPU count")
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise ResourceError(f"{what} = {_show(value)} is not a GPU count (a whole number, 0 or more)") from None
    if not isinstance(number, (int, float)):
        raise ResourceError(f"{what} = {_show(value)} must be a whole number of GPUs, 0 or more")
    count = _finite(number, what, value)
    if count < 0 or count != int(count):
        raise ResourceError(f"{what} = {_show(value)} must be a whole number of GPUs, 0 or more")
    return int(count)


def parse_duration(value: object, what: str = "timeout") -> int:
    """Return seconds. Accepts ints (seconds) and strings like ``90s``, ``30m``, ``2h``."""
    if isinstance(value, bool):
        raise ResourceError(f"{what} = {_show(value)} is not a duration")
    if isinstance(value, (int, float)):
        secs = _finite(value, what)
    elif isinstance(value, str):
        m = _DURATION_RE.match(value)
        if not m:
            raise ResourceError(f"{what} = {_show(value)} is not a duration (write e.g. 90, 30m or 2h)")
        secs = _finite(float(m.group(1)) * _DURATION_UNITS[m.group(2).lower() if m.group(2) else None], what, value)
    else:
        raise ResourceError(f"{what} = {_show(value)} is not a duration")
    if secs <= 0:
        raise ResourceError(f"{what} = {_show(value)} must be greater than zero")
    return int(math.ceil(secs))


def format_memory(mib: int | float | None) -> str:
    if mib is None:
        return "-"
    if mib >= 1024 and float(mib) % 1024 == 0:
        return f"{int(mib) // 1024}G"
    if mib >= 1024:
        return f"{mib / 1024:.1f}G"
    return f"{int(mib)}M"


def format_duration(secs: float | None) -> str:
    if secs is None:
        return "-"
    secs = int(secs)
    if secs % 3600 == 0 and secs >= 3600:
        return f"{secs // 3600}h"
    if secs % 60 == 0 and secs >= 60:
        return f"{secs // 60}m"
    return f"{secs}s"
