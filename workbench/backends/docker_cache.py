"""The bytecode cache of Docker tasks: one per project and image, filled by the runtime, read-only to steps.

Code is mounted read-only into task containers, so without a cache every container compiles the
workbench package and the flow again (~100 ms a task). A cache that tasks can write is a way for one
step to plant a ``.pyc`` that another task (of any project) then runs, so instead:

- the cache lives at ``~/.cache/workbench/pycache/<project>/<image>`` (a hash of the project root and
  the image id), so projects and images never share one;
- the runtime fills it before the first task of a run with that image, in a one-shot container that
  only runs ``python3 -m compileall`` over the workbench package and the project (compiling runs no
  project code), and skips that when no source file changed since the last fill;
- tasks get it mounted read-only (PYTHONPYCACHEPREFIX): they read bytecode, never write any.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any, Callable, Optional

STAMP = ".workbench-sources"
_MAX_FILES = 20000


def cache_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "workbench", "pycache")


def cache_dir_for(project_root: str, image_id: str) -> str:
    """The cache of one project and one image (by the image's id, so a rebuilt image gets a new one)."""
    project = hashlib.sha256(os.path.realpath(project_root).encode()).hexdigest()[:16]
    image = image_id.split(":", 1)[-1][:16] or "unknown"
    return os.path.join(cache_root(), project, image)


def sources_fingerprint(dirs: list[str]) -> str:
    """A hash of every .py file's path, size and mtime under ``dirs`` (hidden directories skipped)."""
    h = hashlib.sha256()
    count = 0
    for top in dirs:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
            for name in sorted(filenames):
                if not name.endswith(".py"):
                    continue
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except OSError:
                    continue
                h.update(f"{dirpath}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                count += 1
                if count > _MAX_FILES:
                    return h.hexdigest() + "+"
    return h.hexdigest()


class BytecodeCaches:
    """Fills each (project, image) cache at most once per run, tasks of the same image waiting for it."""

    def __init__(self, api: Callable[[], Any], labels: dict[str, str], remove: Callable[[str], None]):
        """``api()`` gives the engine's APIClient; ``labels`` go on the compile containers, ``remove``
        removes one."""
        self._api, self._labels, self._remove = api, labels, remove
        self._lock = threading.Lock()
        self._done: dict[str, tuple[threading.Lock, list]] = {}

    def for_image(self, image: str, project_root: str, pkg_dir: str, user: str) -> Optional[str]:
        """The filled, read-only bytecode cache of this project and image (None: run without one)."""
        try:
            image_id = self._api().inspect_image(image)["Id"]
        except Exception:  # noqa: BLE001 - a missing image fails the task later, in words
            return None
        return self.ready(image, image_id, project_root, pkg_dir, user)

    def _run_compile(self, image: str, cache: str, sources: list[str], user: str) -> Optional[str]:
        return compile_in_container(self._api(), image, cache, sources, user, self._labels, self._remove)

    def ready(self, image: str, image_id: str, project_root: str, pkg_dir: str, user: str) -> Optional[str]:
        """The cache directory to mount read-only, filled; None when it cannot be made (tasks then run
        without one, compiling in memory)."""
        path = cache_dir_for(project_root, image_id)
        with self._lock:
            entry = self._done.setdefault(path, (threading.Lock(), []))
        with entry[0]:
            if entry[1]:
                return entry[1][0]
            entry[1].append(self._fill(image, path, [pkg_dir, project_root], user))
            return entry[1][0]

    def _fill(self, image: str, path: str, sources: list[str], user: str) -> Optional[str]:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError:
            return None
        stamp = os.path.join(path, STAMP)
        fingerprint = sources_fingerprint(sources)
        try:
            with open(stamp) as f:
                if f.read() == fingerprint:
                    return os.path.realpath(path)
        except OSError:
            pass
        if self._run_compile(image, os.path.realpath(path), sources, user) is not None:
            return None
        with open(stamp, "w") as f:
            f.write(fingerprint)
        return os.path.realpath(path)


def compile_in_container(
    api, image: str, cache: str, sources: list[str], user: str, labels: dict[str, str], remove: Callable[[str], None]
) -> Optional[str]:
    """Fill ``cache`` in a one-shot container of ``image`` that only compiles ``sources`` (read-only,
    no network): ``python3 -m compileall``, which runs no project code. None, or why it failed."""
    binds = {src: {"bind": src, "mode": "ro"} for src in sources}
    binds[cache] = {"bind": cache, "mode": "rw"}
    cmd = ["python3", "-m", "compileall", "-q", "-x", r"/\.", *sources]
    cid = None
    try:
        cid = api.create_container(
            image=image,
            command=cmd,
            user=user,
            environment={"PYTHONPYCACHEPREFIX": cache},
            labels={**labels, "workbench.role": "bytecode-cache"},
            host_config=api.create_host_config(binds=binds, network_mode="none"),
        )["Id"]
        api.start(cid)
        code = api.wait(cid, timeout=300).get("StatusCode")
        return None if code in (0, 1) else f"compileall exited {code}"  # 1: some file has a syntax error
    except Exception as exc:  # noqa: BLE001 - no cache is a slower run, not a failed one
        return f"{type(exc).__name__}: {exc}"
    finally:
        if cid:
            remove(cid)
