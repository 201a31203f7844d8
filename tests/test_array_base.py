"""Arrays without any API: the index -> task manifest and the index variables, the grouping of a burst of
submissions into arrays, and stopping a whole array in one call (the remote base, with a scripted API)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from workbench.arrays import array_index, manifest_name, task_ref_for, write_manifest
from workbench.backends.base import TaskExit, TaskSpec
from workbench.backends.remote import RemoteBackend
from workbench.config import ProjectConfig
from workbench.datastore import FlowDatastore
from workbench.settings import StepSettings


def test_the_index_comes_from_kubernetes_or_batch_and_falls_back_to_the_moto_job_id():
    assert array_index({"JOB_COMPLETION_INDEX": "7"}) == 7
    assert array_index({"AWS_BATCH_JOB_ARRAY_INDEX": "12", "AWS_BATCH_JOB_ID": "p:3"}) == 12
    assert array_index({"AWS_BATCH_JOB_ID": "4c1d-aa:41"}) == 41  # moto: only the job id says it
    for env in (
        {},
        {"AWS_BATCH_JOB_ID": "no-index"},
        {"JOB_COMPLETION_INDEX": "x"},
        {"AWS_BATCH_JOB_ARRAY_INDEX": "-1"},
    ):
        with pytest.raises(SystemExit) as err:
            array_index(env)
        assert "index" in str(err.value) and "\n" not in str(err.value)


def test_the_manifest_maps_each_index_to_its_task_and_stays_out_of_the_step_listing(tmp_path):
    ds = FlowDatastore(str(tmp_path), "F")
    refs = [f"F/1/work/{i}/0" for i in range(2, 6)]
    name = manifest_name("work", 0, "2")
    ref = write_manifest(ds, "1", name, refs)
    assert ref == "F/1/array-work-0-2"
    for i, want in enumerate(refs):
        assert task_ref_for(str(tmp_path), ref, {"JOB_COMPLETION_INDEX": str(i)}) == want
    with pytest.raises(SystemExit, match="past the end"):
        task_ref_for(str(tmp_path), ref, {"JOB_COMPLETION_INDEX": "4"})
    with pytest.raises(SystemExit, match="no array manifest"):
        task_ref_for(str(tmp_path), "F/1/array-nope", {"JOB_COMPLETION_INDEX": "0"})
    assert ds.list_steps("1") == []  # the manifest is not a step


def _spec(task_id: str, step: str = "work", attempt: int = 0) -> TaskSpec:
    return TaskSpec(
        flow="F",
        run_id="1",
        step=step,
        task_id=task_id,
        attempt=attempt,
        settings=StepSettings(),
        datastore_url="s3://b/p",
        project_root="/p",
        flow_file="f.py",
        class_name="F",
    )


class ArrayRemote(RemoteBackend):
    """A remote backend whose API is a list of calls; arrays of up to 4 jobs."""

    name = "arrays"
    poll_env = "WORKBENCH_TEST_NO_SUCH_VARIABLE"
    poll_default = 0.05
    log_drain = 0.5
    end_run_wait = 2.0
    array_max = 4
    submit_batch = 100
    coalesce_quiet, coalesce_linger = 0.1, 1.0
    submit_rate = submit_rate_max = 1000.0

    def __init__(self):
        super().__init__(ProjectConfig(root=Path("/tmp")))
        self.api: list[tuple] = []
        self.caller_threads: set[str] = set()

    def upload_package(self, ctx) -> str:
        return "s3://b/p/package"

    def submit_job(self, job):
        self.api.append(("submit", job.spec.task_id))

    def submit_array(self, jobs):
        from workbench.backends.remote import JobArray

        array = JobArray(list(jobs), name=f"array-{jobs[0].spec.task_id}")
        for i, job in enumerate(jobs):
            job.array, job.index = array, i
        self.api.append(("array", tuple(j.spec.task_id for j in jobs)))

    def poll(self, active):
        return False

    def terminate(self, job):
        self.caller_threads.add(threading.current_thread().name)
        self.api.append(("terminate", job.spec.task_id))
        self.conclude(job, self._requested_exit(job))

    def terminate_array(self, array):
        self.caller_threads.add(threading.current_thread().name)
        self.api.append(("terminate array", array.name))
        for job in array.unreported():
            self.conclude(job, self._requested_exit(job))

    def _requested_exit(self, job):
        return TaskExit("cancelled", None, job.requested or "cancelled")


@pytest.fixture
def arrays():
    backend = ArrayRemote()
    ctx = SimpleNamespace(warn=lambda m: None, datastore=SimpleNamespace(storage=None), run_id="1")
    backend.start_run(ctx)
    exits: dict[str, list] = {}

    def submit(task_id, step="work", attempt=0):
        exits[task_id] = []
        return backend.submit(_spec(task_id, step, attempt), lambda *a: None, exits[task_id].append)

    yield SimpleNamespace(backend=backend, submit=submit, exits=exits, ctx=ctx)
    backend.end_run(ctx)


def _wait(pred, timeout=3.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def test_a_burst_goes_out_as_arrays_of_siblings_and_a_lone_task_as_a_single_job(arrays):
    for i in range(10):
        arrays.submit(str(i))
        time.sleep(0.01)  # the runtime writes each task's spec between submits: a burst, not one call
    arrays.submit("r", attempt=1)  # a retry of another task: not a sibling of attempt 0
    arrays.submit("j", step="join")
    assert _wait(lambda: len(arrays.backend.api) == 5)
    assert arrays.backend.api == [
        ("array", ("0", "1", "2", "3")),
        ("array", ("4", "5", "6", "7")),
        ("array", ("8", "9")),
        ("submit", "r"),
        ("submit", "j"),
    ]
    assert arrays.backend.calls["submit"] == 5


def test_cancelling_every_task_of_an_array_is_one_call_off_the_callers_thread(arrays):
    handles = [arrays.submit(str(i)) for i in range(4)]
    assert _wait(lambda: len(arrays.backend.api) == 1)
    handles[2].cancel("only this one")  # one index alone: that job only
    assert _wait(lambda: arrays.exits["2"])
    for h in handles:
        h.cancel("the run is cancelled")
    assert _wait(lambda: all(arrays.exits[str(i)] for i in range(4)))
    assert arrays.backend.api[1:] == [("terminate", "2"), ("terminate array", "array-0")]
    assert threading.current_thread().name not in arrays.backend.caller_threads
    assert [e.reason for e in arrays.exits["2"]] == ["only this one"]
    assert all(len(arrays.exits[str(i)]) == 1 for i in range(4))


def test_cancels_that_trickle_in_still_stop_the_array_in_one_call(arrays):
    # the runtime cancels a run's tasks one by one, and the poller may wake between two of them (seen in CI:
    # index 0's pod deleted alone, then the rest of the Indexed Job): stops arriving close together wait for
    # each other
    handles = [arrays.submit(str(i)) for i in range(4)]
    assert _wait(lambda: len(arrays.backend.api) == 1)
    for h in handles:
        h.cancel("the run is cancelled")
        time.sleep(0.01)  # a busy runtime thread between two cancels; the poller is free to run meanwhile
    assert _wait(lambda: all(arrays.exits[str(i)] for i in range(4)))
    assert arrays.backend.api[1:] == [("terminate array", "array-0")]
