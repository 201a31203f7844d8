"""Array jobs: one API call starts N sibling tasks (a Batch array job, a Kubernetes Indexed Job).

Every index runs the same command, so before the call the backend writes a small *manifest* to the run's
directory in the datastore (``<flow>/runs/<run>/array-<step>-<attempt>-<first task>.json``: index -> task
ref), and each container finds its own task from its index::

    python -m workbench.task run --datastore URL --root DIR --array FLOW/RUN/array-...

The index comes from ``JOB_COMPLETION_INDEX`` (Kubernetes Indexed Jobs) or ``AWS_BATCH_JOB_ARRAY_INDEX``
(AWS Batch); see :func:`array_index` for the moto fallback. The name ends in ``.json`` so that listing a
run's steps never sees it. No cloud library is imported here: the task entrypoint uses this module.
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Optional, Sequence

#: index variables, the first one set wins
INDEX_VARIABLES = ("JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX")


def manifest_name(step: str, attempt: int, first_task_id: str) -> str:
    """Unique in the run: task ids are, and an array holds one attempt of one step's tasks."""
    raw = f"array-{step}-{attempt}-{first_task_id}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)


def manifest_ref(flow: str, run_id: str, name: str) -> str:
    """What ``--array`` takes: ``FLOW/RUN/NAME``."""
    return f"{flow}/{run_id}/{name}"


def manifest_key(ds, run_id: str, name: str) -> str:
    """The datastore key of a manifest (in the run's directory, next to run.json)."""
    return f"{ds.flow}/runs/{run_id}/{name}.json"


def write_manifest(ds, run_id: str, name: str, refs: Sequence[str]) -> str:
    """Write index -> task ref (``refs[i]`` is index i) and return the ``--array`` argument."""
    ds._put_json(manifest_key(ds, run_id, name), {"refs": list(refs)})
    return manifest_ref(ds.flow, run_id, name)


def array_index(environ: Optional[Mapping[str, str]] = None) -> int:
    """This container's index in its array.

    AWS Batch sets AWS_BATCH_JOB_ARRAY_INDEX in every child of an array job; moto (the test server) does not,
    but it names each child ``<parent id>:<index>`` and sets AWS_BATCH_JOB_ID to that, as AWS does: so when
    no index variable is set, the index is what follows the last ':' of AWS_BATCH_JOB_ID."""
    env = os.environ if environ is None else environ
    for name in INDEX_VARIABLES:
        value = env.get(name)
        if value not in (None, ""):
            return _int(value, name)
    job_id = env.get("AWS_BATCH_JOB_ID", "")
    if ":" in job_id:
        return _int(job_id.rsplit(":", 1)[1], "AWS_BATCH_JOB_ID")
    raise SystemExit(
        "workbench.task: --array needs the array index: none of "
        f"{', '.join(INDEX_VARIABLES)} is set and AWS_BATCH_JOB_ID has no ':<index>'"
    )


def _int(value: str, name: str) -> int:
    try:
        index = int(value)
    except ValueError:
        raise SystemExit(f"workbench.task: {name}={value!r} is not an array index") from None
    if index < 0:
        raise SystemExit(f"workbench.task: {name}={value!r} is not an array index")
    return index


def task_ref_for(datastore_url: str, array_ref: str, environ: Optional[Mapping[str, str]] = None) -> str:
    """The ref (FLOW/RUN/STEP/TASK/ATTEMPT) this container runs: its index's entry in the manifest."""
    from .datastore import FlowDatastore

    parts = array_ref.split("/")
    if len(parts) != 3 or not all(parts):
        raise SystemExit(f"workbench.task: --array {array_ref!r} is not FLOW/RUN/NAME")
    flow, run_id, name = parts
    ds = FlowDatastore(datastore_url, flow)
    doc = ds._get_json(manifest_key(ds, run_id, name))
    if doc is None:
        raise SystemExit(f"workbench.task: no array manifest {array_ref} in {ds.url}")
    refs = doc.get("refs") or []
    index = array_index(environ)
    if index >= len(refs):
        raise SystemExit(f"workbench.task: index {index} is past the end of array {array_ref} ({len(refs)} tasks)")
    return refs[index]
