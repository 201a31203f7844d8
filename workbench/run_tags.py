"""A run's tags, as Metaflow has them: user tags (``--tag``, ``Run.add_tag``) and system tags.

System tags say who ran it and how (``user:NAME``, ``runtime:dev``, ``python_version:...``,
``date:YYYY-MM-DD``, and ``project:``/``project_branch:`` under ``@project``); they define the namespaces
``Flow(...)`` searches. They live next to the run's record, in ``tags.json``.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, TextIO

from .exception import MetaflowTaggingError

if TYPE_CHECKING:
    from .datastore import FlowDatastore

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
        self._path: Optional[Path] = None
        root = getattr(ds.storage, "root", None)
        if root is not None:
            self._path = root / ds._run_key(run_id) / "tags.lock.json"
        self._fh: Optional[TextIO] = None

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
    tags = [
        "runtime:dev",
        f"python_version:{platform.python_version()}",
        f"date:{time.strftime('%Y-%m-%d')}",
        "metaflow_version:workbench",
    ]
    if user:
        tags.append(f"user:{user}")
    if project:
        tags += [f"project:{project['name']}", f"project_branch:{project['branch']}"]
    return tags


class RunTags:
    """The tag half of the client's Run (``self._ds`` and ``self.id`` are the run's)."""

    _ds: FlowDatastore  # set by the client's Run
    id: str

    def _tags_record(self, fresh: bool = False) -> dict:
        """The run's tags as this object knows them: read once, then what its own changes left (as a
        Metaflow Run object does; another process's later change is seen by a new object)."""
        cached = self.__dict__.get("_wb_tags")
        if cached is not None and not fresh:
            return cached
        rec = read_tags(self._ds, self.id)
        if rec is None:  # started without a tags record (`workbench run`): found in every namespace
            rec = {"user": [], "system": [], "untracked": True}
        self.__dict__["_wb_tags"] = rec
        return rec

    @property
    def user_tags(self) -> frozenset:
        return frozenset(self._tags_record()["user"])

    @property
    def system_tags(self) -> frozenset:
        return frozenset(self._tags_record()["system"])

    @property
    def tags(self) -> frozenset:
        rec = self._tags_record()
        tags = frozenset(rec["user"]) | frozenset(rec["system"])
        if rec.get("untracked"):
            ns = _get_namespace()
            tags |= {ns} if ns else frozenset()
        return tags

    def replace_tags(self, tags_to_remove, tags_to_add) -> None:
        """Remove and add user tags in one change (system tags cannot be removed)."""
        if isinstance(tags_to_remove, str) or isinstance(tags_to_add, str):
            raise MetaflowTaggingError("replace_tags takes lists of tags")
        remove = {validate_tag(t) for t in tags_to_remove}
        add = {validate_tag(t) for t in tags_to_add}
        if not remove and not add:
            raise MetaflowTaggingError("Must add or remove at least one tag")
        with tags_lock(self._ds, self.id):
            rec = self._tags_record(fresh=True)
            add -= set(rec["system"])  # a system tag is already there: only user tags are added
            if remove & set(rec["system"]) - set(rec["user"]):
                raise MetaflowTaggingError(f"cannot remove system tags {sorted(remove & set(rec['system']))}")
            user = sorted((set(rec["user"]) - remove) | add)
            system = list(rec["system"])
            if rec.get("untracked"):  # its first tags record: the owner the run recorded becomes a system tag
                owner = getattr(getattr(self, "_doc", None), "user", None)
                system = [f"user:{owner}"] if owner else []
            write_tags(self._ds, self.id, user, system)
            self.__dict__["_wb_tags"] = {"user": user, "system": sorted(system)}

    # the singular forms also take lists (Metaflow keeps that older usage working)
    def add_tag(self, tag) -> None:
        self.add_tags(tag if isinstance(tag, (list, tuple)) else [tag])

    def add_tags(self, tags) -> None:
        self.replace_tags([], _tag_list(tags))

    def remove_tag(self, tag) -> None:
        self.remove_tags(tag if isinstance(tag, (list, tuple)) else [tag])

    def remove_tags(self, tags) -> None:
        self.replace_tags(_tag_list(tags), [])

    def replace_tag(self, tag_to_remove, tag_to_add) -> None:
        self.replace_tags(
            tag_to_remove if isinstance(tag_to_remove, (list, tuple)) else [tag_to_remove],
            tag_to_add if isinstance(tag_to_add, (list, tuple)) else [tag_to_add],
        )


def _tag_list(tags) -> list:
    if isinstance(tags, str) or not isinstance(tags, (list, tuple, set, frozenset)):
        raise MetaflowTaggingError(f"expected a list of tags, got {tags!r}")
    return list(tags)


def _get_namespace():
    from .client import get_namespace

    return get_namespace()


def username() -> Optional[str]:
    """Who runs flows, as Metaflow finds it: METAFLOW_USER, then SUDO_USER, USERNAME, USER."""
    import os

    for var in ("METAFLOW_USER", "SUDO_USER", "USERNAME", "USER"):
        if os.environ.get(var):
            return os.environ[var]
    return None


def write_run_tags(ds: "FlowDatastore", run_id: str, project: Optional[dict], user_tags) -> None:
    """Record a new run's tags (user tags validated) before it starts; the namespace check reads them."""
    write_tags(ds, run_id, [validate_tag(t) for t in user_tags], system_tags_for(username(), project))


def forget_unstarted_run(ds: "FlowDatastore", run_id: str) -> None:
    """Remove the tags :func:`write_run_tags` recorded for a run the runtime then refused before it wrote the run's
    record (a bad setting, a missing package): no reader should list a run that never started."""
    if ds.read_run(run_id, observed=False) is None:
        ds.storage.delete(ds._run_key(run_id))
