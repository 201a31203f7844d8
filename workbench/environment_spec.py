"""A step's Python environment: what it declares, normalised into a spec with a content hash.

The spec of a step is the project's environment (``uv.lock``, else ``requirements.txt``, else the
``[project] dependencies`` of ``pyproject.toml``) plus the flow's ``@pypi_base``/``@conda_base`` plus
the step's ``@pypi``/``@conda`` (later wins per package name), and the Python version asked for.
Nothing here runs uv or touches the cache: resolving, installing and the wheelhouse live in
:mod:`workbench.environment_uv`; this module is pure so ``workbench show`` and the TUI can use it.

A spec with no requirements and no Python version is "no declared environment": the step runs in
the interpreter workbench runs in (and the version-mismatch guard in
:mod:`workbench.environment_guard` protects containers from pickles they cannot read).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import ConfigError, FlowError

SPEC_FORMAT = 1  # bump when the meaning of a spec (and so of its hash) changes
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9._,\s-]*\])?$")
_OPERATORS = ("<", ">", "=", "!", "~")

# conda names whose PyPI distribution is called something else
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "matplotlib-base": "matplotlib",
    "tensorflow-base": "tensorflow",
    "pytables": "tables",
    "python-graphviz": "graphviz",
    "msgpack-python": "msgpack",
    "py-lightgbm": "lightgbm",
    "pyqt": "PyQt5",
    "libarrow": "",
    "arrow-cpp": "",
}
# conda packages that are libraries or toolchains, not Python distributions: nothing on PyPI matches
_CONDA_ONLY = re.compile(
    r"^(lib.*|_.*|r-.*|r|cuda.*|cudatoolkit|cudnn|nccl|mkl.*|openblas|blas|"
    r"ffmpeg|gcc.*|gxx.*|gfortran.*|compilers|openssl|zlib|xz|tk|ca-certificates|"
    r"nodejs|openjdk|git|curl|make|cmake|arrow-cpp|libarrow|python|pip)$"
)


@dataclass(frozen=True)
class PackageSet:
    """Packages one decorator (or the project) asks for: name -> PEP 508 requirement."""

    requirements: dict[str, str] = field(default_factory=dict)
    python: Optional[str] = None
    source: str = ""


@dataclass(frozen=True)
class EnvironmentSpec:
    """What an environment must contain. ``requirements`` are sorted PEP 508 lines."""

    requirements: tuple[str, ...] = ()
    python: Optional[str] = None  # "3.11"; None = the target's own Python
    sources: tuple[str, ...] = ()  # where the requirements came from, for `workbench env show`

    @property
    def declared(self) -> bool:
        return bool(self.requirements) or self.python is not None

    def key(self, python_version: str, platform: str) -> str:
        """Content hash of (spec, python version, platform): the environment's cache directory name."""
        doc = {
            "format": SPEC_FORMAT,
            "requirements": list(self.requirements),
            "python": python_version,
            "platform": platform,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]

    def to_dict(self) -> dict[str, Any]:
        return {"requirements": list(self.requirements), "python": self.python, "sources": list(self.sources)}


def normalise_name(name: str) -> str:
    """PEP 503 normalised distribution name (``Scikit_Learn`` -> ``scikit-learn``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    return normalise_name(re.split(r"[\s\[<>=!~;@(]", req.strip(), maxsplit=1)[0])


def host_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


# ------------------------------------------------------------------------------------------ project


def _read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=str(path)) from None


def _is_workbench_itself(root: Path) -> bool:
    """A pyproject naming workbench is workbench's own checkout: its dependencies are the front end's."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return False
    return normalise_name(str((_read_toml(pyproject).get("project") or {}).get("name") or "")) == "workbench"


def read_requirements_file(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            if line.startswith("-"):
                raise ConfigError(
                    f"pip option {line.split()[0]!r} is not supported in requirements; list packages only",
                    path=str(path),
                )
            lines.append(line)
    return lines


def project_requirements(root: Path) -> tuple[list[str], str]:
    """The project's requirements (normalised) and where they came from.

    ``uv.lock`` is read by :func:`workbench.environment_uv.export_uv_lock` (it needs uv); this reads
    requirements.txt, else pyproject's ``[project] dependencies``. workbench itself is never a
    requirement: it is mounted or shipped with the code.
    """
    req_file = root / "requirements.txt"
    if req_file.is_file():
        lines, source = read_requirements_file(req_file), "requirements.txt"
    else:
        lines, source = [], "no requirements"
        pyproject = root / "pyproject.toml"
        if pyproject.is_file() and not _is_workbench_itself(root):
            deps = (_read_toml(pyproject).get("project") or {}).get("dependencies") or []
            lines = [str(d).strip() for d in deps]
            source = "pyproject.toml [project] dependencies"
    return [r for r in lines if requirement_name(r) != "workbench"], source


def project_package_set(root: Path) -> PackageSet:
    """The project's environment as a PackageSet (uv.lock first, when there is one)."""
    if (root / "uv.lock").is_file() and not _is_workbench_itself(root):
        from .environment_uv import export_uv_lock

        lines, source = export_uv_lock(root), "uv.lock"
    else:
        lines, source = project_requirements(root)
    return PackageSet({requirement_name(r): r for r in lines}, None, source if lines else "")


# --------------------------------------------------------------------------------------- decorators


def _pin(name: str, version: Any, where: str) -> str:
    """Metaflow's ``{"pandas": "2.1.0"}`` means ``pandas==2.1.0``; an operator or empty string stands."""
    if not isinstance(name, str) or not _NAME.match(name.strip()):
        raise ValueError(f"{where}: {name!r} is not a package name")
    if version is None or (isinstance(version, str) and not version.strip()):
        return name.strip()
    if not isinstance(version, (str, int, float)):
        raise ValueError(f"{where}: the version of {name!r} must be a string, not {version!r}")
    text = str(version).strip()
    if any(c in text for c in ";\n\\") or " " in text.replace(", ", ","):
        raise ValueError(f"{where}: version {text!r} of {name!r} is not a version specifier")
    return f"{name.strip()}{text}" if text.startswith(_OPERATORS) else f"{name.strip()}=={text}"


def _conda_version(text: str) -> str:
    """A conda spec (``1.2``, ``1.2.*``, ``>=1.2``, ``1.2.3=py311_0``) as a PEP 440 specifier."""
    text = str(text).strip()
    if not text or text.startswith(_OPERATORS):
        return text
    if "=" in text:  # version=build string: keep the version
        text = text.split("=", 1)[0]
    return text


def conda_to_pypi(name: str, version: Any, where: str) -> tuple[str, str]:
    """Map one conda package onto its PyPI name, or raise ValueError naming it."""
    name = str(name).strip()
    if "::" in name:  # channel::package
        name = name.split("::", 1)[1]
    pypi = CONDA_TO_PYPI.get(name.lower(), name)
    if not pypi or _CONDA_ONLY.match(name.lower()):
        raise ValueError(
            f"{where}: {name!r} is a conda-only package (not a Python distribution on PyPI); "
            f"workbench installs from PyPI: drop it or use @pypi with PyPI names"
        )
    return pypi, _conda_version("" if version is None else str(version))


def decorator_packages(deco, owner: str, path: str) -> Optional[PackageSet]:
    """The packages of one @pypi/@pypi_base/@conda/@conda_base, or None when it is disabled.

    ``deco`` is a :class:`workbench.graph.DecoratorSpec`; ``owner`` names the step or flow for messages.
    """
    from .graph import Unresolved

    where = f"{owner}: @{deco.name}"
    for key, value in deco.kwargs.items():
        if isinstance(value, Unresolved):
            raise FlowError(
                f"{where}({key}={value.source}) must be a literal value to be read without running the flow",
                path=path,
                line=deco.lineno,
            )
    allowed = {"packages", "python", "disabled"} | (
        {"libraries", "channels", "pip"} if "conda" in deco.name else {"extra_indices"}
    )
    unknown = sorted(set(deco.kwargs) - allowed)
    if unknown:
        raise FlowError(
            f"{where} has no argument {unknown[0]!r} (it takes {', '.join(sorted(allowed))})",
            path=path,
            line=deco.lineno,
        )
    if deco.kwargs.get("disabled"):
        return None
    packages = dict(deco.kwargs.get("packages") or {})
    if "conda" in deco.name:
        packages.update(deco.kwargs.get("libraries") or {})
    if not isinstance(packages, dict):
        raise FlowError(f"{where}: packages must be a dict of name -> version", path=path, line=deco.lineno)
    python = deco.kwargs.get("python")
    if python is not None and not re.match(r"^\d+\.\d+(\.\d+)?$", str(python).strip()):
        raise FlowError(f"{where}: python={python!r} is not a version like '3.11'", path=path, line=deco.lineno)
    reqs: dict[str, str] = {}
    try:
        for name, version in packages.items():
            if "conda" in deco.name:
                name, version = conda_to_pypi(name, version, where)
            req = _pin(name, version, where)
            reqs[requirement_name(req)] = req
    except ValueError as exc:
        raise FlowError(str(exc), path=path, line=deco.lineno) from None
    py = ".".join(str(python).strip().split(".")[:2]) if python is not None else None
    return PackageSet(reqs, py, f"@{deco.name} (line {deco.lineno})")


def merge(*sets: PackageSet) -> EnvironmentSpec:
    """Later sets override earlier ones per package name (project < flow base < step)."""
    reqs: dict[str, str] = {}
    python, sources = None, []
    for ps in sets:
        if ps is None:
            continue
        reqs.update(ps.requirements)
        python = ps.python or python
        if ps.source and (ps.requirements or ps.python):
            sources.append(ps.source)
    return EnvironmentSpec(tuple(sorted(reqs.values(), key=str.lower)), python, tuple(sources))


def flow_package_set(graph) -> Optional[PackageSet]:
    """The flow's @pypi_base/@conda_base (at most one of them), or None."""
    bases = [d for d in graph.flow_decorators if d.name in ("pypi_base", "conda_base")]
    if len(bases) > 1:
        raise FlowError(
            f"flow {graph.name}: use one of @pypi_base and @conda_base, not both", path=graph.path, line=bases[1].lineno
        )
    return decorator_packages(bases[0], f"flow {graph.name}", graph.path) if bases else None


def step_package_set(graph, step_name: str) -> Optional[PackageSet]:
    """The step's @pypi/@conda (at most one of them), or None."""
    step = graph.steps[step_name]
    decos = [d for d in step.decorators if d.name in ("pypi", "conda")]
    if len(decos) > 1:
        raise FlowError(
            f"step {step_name}: use one of @pypi and @conda, not both", path=graph.path, line=decos[1].lineno
        )
    return decorator_packages(decos[0], f"step {step_name}", graph.path) if decos else None


def step_packages(graph, step_name: str) -> EnvironmentSpec:
    """What the flow file declares for one step: @pypi_base/@conda_base < @pypi/@conda."""
    base, own = flow_package_set(graph), step_package_set(graph, step_name)
    for deco in graph.steps[step_name].decorators:
        if deco.name in ("pypi", "conda") and deco.kwargs.get("disabled"):
            return EnvironmentSpec()  # Metaflow: disabled=True drops the flow's base too
    return merge(base or PackageSet(), own or PackageSet())


def step_environment(
    project: PackageSet, packages: list[str], python: Optional[str], source: str = ""
) -> EnvironmentSpec:
    """A step's whole environment: the project's requirements < the step's settings.packages."""
    own = PackageSet({requirement_name(r): r for r in packages}, python, source)
    return merge(project, own)
