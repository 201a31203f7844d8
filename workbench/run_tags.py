"""A run's tags, as Metaflow has them: user tags (``--tag``, ``Run.add_tag``) and system tags.

System tags say who ran it and how (``user:NAME``, ``runtime:dev``, ``python_version:...``,
``date:YYYY-MM-DD``, and ``project:``/``project_branch:`` under ``@project``); they define the namespaces
``Flow(...)`` searches. They live next to the run's record, in ``tags.json``.
"""

from __future__ import annotations

import platform
import time
from typing import Iterable, Optional

from .exception import MetaflowTaggingError

MAX_TAG_SIZE = 500


def _key(ds, run_id: str) -> str:
    return f"{ds._run_key(run_id)}/tags.json"


def read_tags(ds, run_id: str) -> Optional[dict]:
    """{"user": [...], "system": [...]} or None for a run started without a tags record."""
    return ds._get_json(_key(ds, run_id))


def write_tags(ds, run_id: str, user: Iterable[str], system: Iterable[str]) -> None:
    ds._put_json(_key(ds, run_id), {"user": sorted(set(user)), "system": sorted(set(system))})


class tags_lock:
    """Serialise read-modify-write of one run's tags between processes (tasks may tag their run at once).
    A local datastore gets an flock; other stores are last-writer-wins."""

    def __init__(self, ds, run_id: str):
        self._path = None
        root = getattr(ds.storage, "root", None)
        if root is not None:
            self._path = root / ds._run_key(run_id) / "tags.lock.json"
        self._fh = None

    def __enter__(self):
        if self._path is not None:
            import fcntl
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self._path, "a")
            fcntl.flock(self._fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()


def validate_tag(tag) -> str:
    """Metaflow's rules: a non-empty str of at most 500 characters, valid UTF-8."""
    if not isinstance(tag, str):
        raise MetaflowTaggingError(f"Tags must be strings, got {tag!r}")
    if not tag:
        raise MetaflowTaggingError("Tags must not be empty strings")
    if len(tag) > MAX_TAG_SIZE:
        raise MetaflowTaggingError(f"Tag is too long ({len(tag)} characters; at most {MAX_TAG_SIZE})")
    try:
        tag.encode("utf-8")
    except UnicodeEncodeError:
        raise MetaflowTaggingError("Tags must be valid UTF-8") from None
    return tag


def system_tags_for(user: Optional[str], project: Optional[dict]) -> list[str]:
    """The system tags a new run gets."""
    tags = [f"runtime:dev", f"python_version:{platform.python_version()}",
            f"date:{time.strftime('%Y-%m-%d')}", "metaflow_version:workbench"]
    if user:
        tags.append(f"user:{user}")
    if project:
        tags += [f"project:{project['name']}", f"project_branch:{project['branch']}"]
    return tags
