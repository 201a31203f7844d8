"""Safe summaries of artifact values, made by the task that saves them, and read back without unpickling.

The task that saves an artifact calls :func:`describe` on the live value and stores the result next
to the artifact's record (type, size, shape/dtype/min/max for arrays, a head for data frames, a
truncated repr for the rest, and a multi-line ``preview`` text). Viewers (``workbench artifacts``, the
TUI's Artifacts tab, the client's previews) render that record with :func:`summary_text` and never
load the blob: unpickling is running code, and a blob may come from a step the viewer did not write.
"""

from __future__ import annotations

import reprlib
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .datastore.records import TaskRecord

_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 8
_short.maxlevel = 3


def type_name(value: Any) -> str:
    t = type(value)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


PREVIEW_LINES = 200
PREVIEW_CHARS = 20000


def describe(value: Any) -> dict[str, Any]:
    """A small dict saved with each artifact: type, a short repr, shape/dtype/min/max for arrays and a
    bounded multi-line ``preview``. Runs in the task (the only place the value is live)."""
    info: dict[str, Any] = {"type": type_name(value)}
    stats = _array_stats(value)
    info.update(stats)
    try:
        text = preview(value, max_lines=PREVIEW_LINES, stats=stats)
    except Exception as exc:  # noqa: BLE001 - a user's __repr__ may raise anything
        text = f"<{info['type']}: no preview ({type(exc).__name__})>"
    info["preview"] = text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "\n... (preview cut)"
    shape = getattr(value, "shape", None)
    if shape is not None and not callable(shape):
        try:
            info["shape"] = list(shape)
        except TypeError:
            pass
        dtype = getattr(value, "dtype", None) or getattr(value, "dtypes", None)
        if dtype is not None:
            info["dtype"] = str(dtype) if not hasattr(dtype, "to_dict") else "mixed"
    else:
        try:
            info["repr"] = _short.repr(value)
        except Exception:  # a user's __repr__ may raise
            info["repr"] = f"<{info['type']}>"
    if hasattr(value, "__len__") and not isinstance(value, (str, bytes)):
        try:
            info["len"] = len(value)
        except Exception:
            pass
    return info


def preview(value: Any, width: int = 100, max_lines: int = 40, stats: Optional[dict] = None) -> str:
    """A multi-line preview: pretty repr, or shape/dtype/summary for arrays and a head for dataframes."""
    mod = type(value).__module__.split(".")[0]
    if mod == "numpy" and hasattr(value, "shape"):
        import numpy as np

        lines = [f"numpy.ndarray shape={tuple(value.shape)} dtype={value.dtype} size={value.nbytes:,} bytes"]
        if stats:
            lines.append(" ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items()))
        elif stats is None and value.size and np.issubdtype(value.dtype, np.number):
            lines.append(f"min={value.min():.6g} max={value.max():.6g} mean={value.mean():.6g} std={value.std():.6g}")
        with np.printoptions(threshold=50, edgeitems=3, linewidth=width):
            lines.extend(str(value).splitlines()[: max_lines - len(lines)])
        return "\n".join(lines)
    if mod == "pandas" and hasattr(value, "head"):
        head = value.head(max_lines - 2).to_string(max_cols=12, line_width=width)
        return f"{type(value).__name__} shape={getattr(value, 'shape', '?')}\n{head}"
    import pprint

    text = pprint.pformat(value, width=width, compact=True, sort_dicts=False)
    lines = text.splitlines()
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... ({len(lines) - max_lines} more lines)"]
    return "\n".join(line if len(line) <= width * 2 else line[: width * 2] + "..." for line in lines)


def _array_stats(value: Any) -> dict[str, Any]:
    """min/max/mean of a numeric numpy array (JSON-safe floats), nothing for anything else."""
    if type(value).__module__.split(".")[0] != "numpy" or not hasattr(value, "dtype"):
        return {}
    try:
        import numpy as np

        if not value.size or not np.issubdtype(value.dtype, np.number) or np.iscomplexobj(value):
            return {}
        stats = {"min": float(value.min()), "max": float(value.max()), "mean": float(value.mean())}
        return {k: v if np.isfinite(v) else str(v) for k, v in stats.items()}
    except Exception:  # noqa: BLE001
        return {}


def summary_text(info: dict[str, Any], max_lines: int = PREVIEW_LINES) -> str:
    """What viewers show for an artifact: the summary the saving task stored, never the blob itself."""
    text = info.get("preview")
    if not isinstance(text, str):
        parts = [str(info.get("type", "?"))]
        if "shape" in info:
            parts.append(f"shape={tuple(info['shape'])} dtype={info.get('dtype')}")
        if isinstance(info.get("size"), int):
            parts.append(f"size={info['size']:,} bytes")
        text = " ".join(parts)
        if "repr" in info:
            text += "\n" + str(info["repr"])
        text += "\n(saved before summaries were kept: this is all that is known without loading it)"
    lines = text.splitlines()
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... ({len(lines) - max_lines} more lines)"]
    return "\n".join(lines)


def artifact_origin(ds, run_id: str, art: dict, doc: Optional["TaskRecord"]) -> tuple[dict, Optional["TaskRecord"]]:
    """The stored summary of an artifact and the record of the task that saved it: ``doc`` itself, or,
    for an inherited artifact, the task of the same run whose record has the same sha and a summary."""
    if not art.get("inherited"):
        return art, doc
    for other in _run_task_docs(ds, run_id):
        for a in other.artifacts.values():
            if a.get("sha") == art.get("sha") and not a.get("inherited") and a.get("type"):
                return {**a, **art}, other
    return art, None


def _run_task_docs(ds, run_id: str) -> list["TaskRecord"]:
    docs = []
    for step in ds.list_steps(run_id):
        for task_id in ds.list_tasks(run_id, step):
            d = ds.read_task(run_id, step, task_id)
            if d:
                docs.append(d)
    return docs


REMOTE_BACKENDS = {"docker": "in a container", "batch": "on AWS Batch", "kubernetes": "on Kubernetes"}


def provenance_note(name: str, maker: Optional["TaskRecord"]) -> Optional[str]:
    """A warning for loading (unpickling) a blob that a step wrote outside this process's control."""
    backend = maker.settings.get("backend") if maker else None
    where = REMOTE_BACKENDS.get(str(backend)) if backend else "by a task whose record is not found"
    if backend == "local":
        return None
    return (
        f"loading {name} unpickles a blob written {where} ({(maker.pathspec or '?') if maker else '?'}); "
        f"unpickling runs code: load only runs whose steps you trust"
    )
