"""CPU and memory of a task sampled over time: its usage timeline.

Where it can be read:
- local: the worker samples each task's process group from /proc (every process whose group is the
  task's: its own subprocesses count) at SAMPLE_INTERVAL, in its event loop (no thread: it forks);
- docker: the engine's stats API for the task's container (cgroup memory usage and CPU time);
- not read: AWS Batch (moto runs the container but exposes no metrics; real Batch puts them in
  CloudWatch Container Insights, not read here) and Kubernetes (the emulator has no metrics API; a real
  cluster's metrics-server is not read here). Those tasks keep the peak their exit reports, if any.

A timeline is bounded: at most MAX_SAMPLES points. When it fills, neighbouring points are merged (memory
keeps the higher, CPU the mean) and the interval doubles, so a task of a week costs the same as one of a
minute. Stored in the task's usage record as ``usage["timeline"]``:
``{"interval": s, "cpu": [cores...], "mem_mib": [...], "source": "proc" | "docker-stats"}``.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional

SAMPLE_INTERVAL = 0.5  # seconds between samples at the start (doubles as the timeline fills)
MAX_SAMPLES = 120
NOT_READ = {
    "batch": "AWS Batch exposes no per-job CPU/memory series to workbench (moto: none at all)",
    "kubernetes": "no metrics API is read for pods (the emulator has none)",
}

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Timeline:
    """A bounded series of (cpu cores, memory MiB) samples at a regular interval."""

    def __init__(self, interval: float = SAMPLE_INTERVAL, source: str = "proc"):
        self.interval = interval
        self.source = source
        self.cpu: list[float] = []
        self.mem: list[float] = []

    def add(self, cpu_cores: float, mem_mib: float) -> None:
        self.cpu.append(round(cpu_cores, 2))
        self.mem.append(round(mem_mib, 1))
        if len(self.cpu) >= MAX_SAMPLES:
            self._halve()

    def _halve(self) -> None:
        """Merge neighbours (memory: the higher, CPU: the mean); the interval doubles."""
        self.cpu = [round((a + b) / 2, 2) for a, b in zip(self.cpu[::2], self.cpu[1::2], strict=False)]
        self.mem = [max(a, b) for a, b in zip(self.mem[::2], self.mem[1::2], strict=False)]
        self.interval *= 2

    def peak_mib(self) -> float:
        return max(self.mem, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"interval": self.interval, "cpu": self.cpu, "mem_mib": self.mem, "source": self.source}


def read_groups(pgids: set[int]) -> dict[int, tuple[float, float]]:
    """pgid -> (CPU seconds so far, resident MiB) summed over the processes of each group, from one pass
    over /proc; a group that is gone (or a system without /proc) is absent."""
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return {}
    out: dict[int, tuple[float, float]] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2 :].split()
            pgid = int(fields[2])  # field 5 of stat: the process group
            if pgid not in pgids:
                continue
            cpu, mem = out.get(pgid, (0.0, 0.0))
            out[pgid] = (
                cpu + (int(fields[11]) + int(fields[12])) / _TICKS,  # utime + stime
                mem + int(fields[21]) * _PAGE / (1 << 20),
            )  # rss pages
        except (OSError, ValueError, IndexError):
            continue
    return out


class GroupSampler:
    """Samples process groups (one per running task) when :meth:`tick` finds a sample due."""

    def __init__(self, interval: float = SAMPLE_INTERVAL):
        self.interval = interval
        self.groups: dict[str, dict[str, Any]] = {}  # task ref -> {pgid, timeline, last: (t, cpu), due}

    def watch(self, ref: str, pgid: int) -> None:
        self.groups[ref] = {"pgid": pgid, "timeline": Timeline(self.interval), "last": None, "due": time.monotonic()}

    def seconds_to_next(self) -> Optional[float]:
        if not self.groups:
            return None
        return max(0.0, min(g["due"] for g in self.groups.values()) - time.monotonic())

    def tick(self) -> None:
        now = time.monotonic()
        due = [g for g in self.groups.values() if now >= g["due"]]
        if not due:
            return
        reads = read_groups({g["pgid"] for g in due})
        for g in due:
            timeline: Timeline = g["timeline"]
            g["due"] = now + timeline.interval
            read = reads.get(g["pgid"])
            if read is None:
                continue
            cpu_s, mem = read
            last = g["last"]
            cores = max(0.0, (cpu_s - last[1]) / max(now - last[0], 1e-3)) if last else 0.0
            timeline.add(cores, mem)
            g["last"] = (now, cpu_s)

    def finish(self, ref: str) -> Optional[dict[str, Any]]:
        """The task's timeline (None when nothing was sampled), and stop watching it."""
        g = self.groups.pop(ref, None)
        if g is None or not g["timeline"].mem:
            return None
        return g["timeline"].to_dict()


def timeline_of(usage: dict[str, Any]) -> Optional[dict[str, Any]]:
    t = usage.get("timeline") if isinstance(usage, dict) else None
    return t if isinstance(t, dict) and isinstance(t.get("mem_mib"), list) else None


def timeline_peak_mib(usage: dict[str, Any]) -> float:
    """The highest memory a task's timeline saw (0 without one): with the exit's peak, the suggestion's base."""
    t = timeline_of(usage)
    return max((float(v) for v in t["mem_mib"] if isinstance(v, (int, float))), default=0.0) if t else 0.0


BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 40, top: Optional[float] = None) -> str:
    """Values as block characters, resampled to at most ``width`` (each cell keeps its highest value)."""
    vals = [float(v) for v in values if isinstance(v, (int, float))]
    if not vals:
        return ""
    if len(vals) > width:
        step = len(vals) / width
        vals = [max(vals[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)]) for i in range(width)]
    hi = top if top else max(vals)
    if hi <= 0:
        return BARS[0] * len(vals)
    return "".join(BARS[min(len(BARS) - 1, int(v / hi * (len(BARS) - 1) + 0.5))] for v in vals)


def describe_timeline(usage: dict[str, Any], backend: str = "", width: int = 40) -> list[str]:
    """Two lines (memory, CPU) for the TUI, or one saying why no timeline exists for this backend."""
    t = timeline_of(usage)
    if t is None:
        why = NOT_READ.get(backend)
        return [f"usage over time: not read on {backend} ({why})"] if why else []
    mem, cpu = t.get("mem_mib") or [], t.get("cpu") or []
    span = len(mem) * float(t.get("interval") or 0)
    return [
        f"memory {sparkline(mem, width)} peak {max(mem, default=0):.0f}M",
        f"cpu    {sparkline(cpu, width)} peak {max(cpu, default=0):.1f} cores  ({len(mem)} samples, {span:.0f}s)",
    ]


def docker_stats_point(stats: dict[str, Any], previous: Optional[dict[str, Any]]) -> Optional[tuple[float, float]]:
    """(CPU cores, memory MiB) from one reading of the engine's stats API. Memory is the cgroup's usage
    less its page cache (what `docker stats` shows); CPU is the container's share of the host's CPU time
    since ``previous`` (or the reading's own precpu part), times the host's CPUs."""
    mem_stats = stats.get("memory_stats") or {}
    usage = mem_stats.get("usage")
    if usage is None:
        return None  # the container has gone: the engine sends an empty reading
    detail = mem_stats.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", detail.get("cache", 0))) or 0
    mem = max(0, int(usage) - int(cache)) / (1 << 20)
    cpu, pre = stats.get("cpu_stats") or {}, (previous or {}).get("cpu_stats") or stats.get("precpu_stats") or {}
    try:
        d_cpu = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        d_sys = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
        ncpu = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or []) or 1
        cores = d_cpu / d_sys * ncpu if d_sys > 0 else 0.0
    except (KeyError, TypeError):
        cores = 0.0
    return max(0.0, cores), mem


class DockerStatsSampler:
    """Follows a running container's stats stream (the engine sends a reading about every second) in a
    thread, into a Timeline; :meth:`finish` returns ``{"timeline": ...}`` for the task's usage."""

    def __init__(self, api, container_id: str):
        import threading

        self.timeline = Timeline(interval=1.0, source="docker-stats")
        self._api, self._cid = api, container_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name=f"stats {container_id[:12]}")
        self._thread.start()

    def _follow(self) -> None:
        previous = None
        try:
            for n, stats in enumerate(self._api.stats(self._cid, stream=True, decode=True)):
                if self._stop.is_set():
                    return
                point = docker_stats_point(stats, previous)
                if point is None:
                    return
                if n % max(1, int(self.timeline.interval)) == 0:  # readings come each second; keep the pace
                    self.timeline.add(*point)
                previous = stats
        except Exception:  # noqa: BLE001 - a stats stream that breaks only costs the timeline
            return

    def finish(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=2)
        return {"timeline": self.timeline.to_dict()} if self.timeline.mem else {}
