"""The version-mismatch guard: which packages a pickle needs, and whether a target has them.

A pickle names the classes and functions it rebuilds with ``GLOBAL``/``STACK_GLOBAL`` opcodes
(``numpy._core.multiarray _reconstruct``). Reading those opcodes with :func:`pickletools.genops`
tells which top-level modules an artifact needs without unpickling anything. Each artifact records
the versions of the distributions behind those modules where it was made; before a container or
remote task starts, :func:`check_inputs` compares them with the target environment's versions and
refuses, in one line, an input the target cannot read.

Pure functions (no docker, no datastore): the runtime supplies the recorded versions and the
target's versions (see the wave-2 hook in the environment report).
"""

from __future__ import annotations

import pickletools
import sys
from functools import lru_cache
from typing import Mapping, Optional, cast

from .errors import WorkbenchError

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_SILENT_OPS = {"FRAME", "PROTO", "MEMOIZE", "STOP"} | _PUT_OPS
# modules every Python has: an artifact needing only these needs no package
_STDLIB = set(getattr(sys, "stdlib_module_names", ())) | {"builtins", "__builtin__", "copy_reg", "copyreg"}


class EnvironmentMismatch(WorkbenchError):
    """A task's input was pickled with a package version its target environment does not have."""


def pickle_modules(data: bytes) -> set[str]:
    """Top-level modules referenced by a pickle's GLOBAL/STACK_GLOBAL opcodes (never unpickles).

    STACK_GLOBAL takes module and name from the stack, pushed as strings or fetched from the memo,
    so the last two pushed values and the memo of strings are tracked; other pushes count as opaque.
    """
    modules: set[str] = set()
    recent: list[Optional[str]] = []
    memo: dict[int, Optional[str]] = {}
    try:
        for opcode, arg, _pos in pickletools.genops(data):
            name = opcode.name
            if name == "GLOBAL" or name == "INST":
                modules.add(str(arg).split(" ", 1)[0].split(".", 1)[0])
                recent.append(None)
            elif name == "STACK_GLOBAL":
                if len(recent) >= 2 and isinstance(recent[-2], str):
                    modules.add(recent[-2].split(".", 1)[0])
                recent[-2:] = [None]
            elif name in _STRING_OPS:
                recent.append(
                    arg if isinstance(arg, str) else arg.decode("latin-1") if isinstance(arg, bytes) else None
                )
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif name in _PUT_OPS:
                memo[cast(int, arg)] = recent[-1] if recent else None  # pickletools decodes PUT args as ints
            elif name in _GET_OPS:
                recent.append(memo.get(cast(int, arg)))
            elif name not in _SILENT_OPS:
                recent.append(None)
            if len(recent) > 64:
                del recent[:-8]
    except Exception:  # noqa: BLE001 - a truncated or foreign blob: report what was found so far
        pass
    return {m for m in modules if m and m not in _STDLIB}


@lru_cache(maxsize=1)
def _module_distributions() -> dict[str, list[str]]:
    from importlib.metadata import packages_distributions

    return dict(packages_distributions())


def module_versions(modules: set[str]) -> dict[str, str]:
    """Distribution name -> installed version for the modules given (here, in this interpreter)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for module in sorted(modules):
        for dist in _module_distributions().get(module, []):
            try:
                out[dist.lower()] = version(dist)
            except PackageNotFoundError:
                continue
    return out


def artifact_requirements(data: bytes) -> dict[str, str]:
    """What to record with an artifact: the versions of the packages its pickle needs."""
    return module_versions(pickle_modules(data))


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split("+", 1)[0].split(".")[:2])


def compatible(made_with: str, target: Optional[str]) -> bool:
    """Same major.minor release: pickles of numpy, pandas, scikit-learn... are not portable across them."""
    return target is not None and _major_minor(made_with) == _major_minor(target)


def check_inputs(
    recorded: Mapping[str, Mapping[str, str]], target_versions: Mapping[str, str], *, step: str, target: str
) -> None:
    """Refuse, before a task starts, an input artifact its target environment cannot unpickle.

    ``recorded`` maps artifact name -> {distribution: version it was pickled with};
    ``target_versions`` maps distribution -> version installed where the task will run (absent =
    not installed); ``target`` names that place in the message ("image workbench-base:bookworm").
    """
    wanted = {k.lower(): v for k, v in target_versions.items()}
    for artifact in sorted(recorded):
        for dist, made_with in sorted(recorded[artifact].items()):
            have = wanted.get(dist.lower())
            if compatible(made_with, have):
                continue
            found = f"has {dist} {have}" if have else f"does not have {dist}"
            raise EnvironmentMismatch(
                f"step {step}: input {artifact!r} was pickled with {dist} {made_with} but {target} {found}; "
                f"declare it: @pypi(packages={{{dist!r}: {made_with!r}}}) on the step, or {dist}=={made_with} "
                f"in requirements.txt and `workbench image build`"
            )


def host_version_requirements(recorded: Mapping[str, Mapping[str, str]]) -> tuple[str, ...]:
    """The pins that give a target the versions the inputs were pickled with (``numpy==2.1.3``).

    With no environment declared, the runtime may install these into the task's environment (the
    "host's versions" branch) instead of refusing; two artifacts pinning one package differently
    cannot both be satisfied, so the first (by artifact name) wins and check_inputs names the other.
    """
    pins: dict[str, str] = {}
    for artifact in sorted(recorded):
        for dist, made_with in sorted(recorded[artifact].items()):
            pins.setdefault(dist.lower(), f"{dist.lower()}=={made_with}")
    return tuple(sorted(pins.values()))
