"""How a task's container ended and what it used, in words: pure functions over what the engine reports.

The task's entrypoint runs under :data:`USAGE_SCRIPT`, which reports the container's cgroup high-water
marks (peak memory, CPU time) on stderr behind :data:`USAGE_MARK`; :func:`parse_usage` reads that line and
:func:`classify_exit` turns the inspected ``State`` (exit code, OOMKilled) into a :class:`TaskExit`.
"""

from __future__ import annotations

from typing import Optional

from ..exitcodes import exit_from_code
from ..units import format_memory
from .base import TaskExit

MIB = 1024 * 1024
USAGE_MARK = "\x1eworkbench-usage "

# "$@" is the task entrypoint. After it ends, report the cgroup's peak memory (bytes) and CPU time (ns):
# cgroup v1 first, then v2. Errors of the reads go to /dev/null; the report goes to stderr.
USAGE_SCRIPT = (
    '"$@"; rc=$?; '
    "if read m 2>/dev/null </sys/fs/cgroup/memory/memory.max_usage_in_bytes && "
    "read c 2>/dev/null </sys/fs/cgroup/cpuacct/cpuacct.usage; then "
    'printf \'\\036workbench-usage %s %s\\n\' "$m" "$c" >&2; '
    "elif read m 2>/dev/null </sys/fs/cgroup/memory.peak && read k u 2>/dev/null </sys/fs/cgroup/cpu.stat; then "
    'printf \'\\036workbench-usage %s %s000\\n\' "$m" "$u" >&2; '
    "fi; exit $rc"
)


def classify_exit(
    state: dict, requested: Optional[str], memory_mib: int, usage: dict, *, timeout: bool = False
) -> TaskExit:
    """Words for how a container ended, from its inspected ``State``."""
    code = state.get("ExitCode")
    if requested:
        return exit_from_code(code, requested, usage, timeout=timeout)
    if state.get("OOMKilled"):
        usage = dict(usage)
        usage.setdefault("peak_memory_mib", float(memory_mib))
        return TaskExit("oom", code, f"killed: out of memory (limit {format_memory(memory_mib)})", usage)
    if isinstance(code, int) and 128 < code < 160:  # 128 + signal number, as sh reports it
        result = exit_from_code(-(code - 128), None, usage)
        result.exit_code = code
        return result
    return exit_from_code(code, None, usage)


def parse_usage(line: str) -> dict[str, float]:
    try:
        mem, cpu = line.split(USAGE_MARK, 1)[1].split()[:2]
        return {"peak_memory_mib": round(int(mem) / MIB, 1), "cpu_seconds": round(int(cpu) / 1e9, 3)}
    except (ValueError, IndexError):
        return {}
