"""Short, safe descriptions of artifact values for listings, and longer previews for inspection."""

from __future__ import annotations

import reprlib
from typing import Any

_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 8
_short.maxlevel = 3


def type_name(value: Any) -> str:
    t = type(value)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def describe(value: Any) -> dict[str, Any]:
    """A small dict saved with each artifact: type, a short repr, and shape/dtype for arrays."""
    info: dict[str, Any] = {"type": type_name(value)}
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


def preview(value: Any, width: int = 100, max_lines: int = 40) -> str:
    """A multi-line preview: pretty repr, or shape/dtype/summary for arrays and a head for dataframes."""
    mod = type(value).__module__.split(".")[0]
    if mod == "numpy" and hasattr(value, "shape"):
        import numpy as np
        lines = [f"numpy.ndarray shape={tuple(value.shape)} dtype={value.dtype} size={value.nbytes:,} bytes"]
        if value.size and np.issubdtype(value.dtype, np.number):
            lines.append(f"min={value.min():.6g} max={value.max():.6g} mean={value.mean():.6g} "
                         f"std={value.std():.6g}")
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
