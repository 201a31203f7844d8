"""The premise of the Batch array tests: on the moto server they run against, each child of an array job sees
its own AWS_BATCH_JOB_ID (from which the task finds its index, as moto sets no AWS_BATCH_JOB_ARRAY_INDEX).

moto 5 appends each child's id to one list shared by the whole array, so without
:func:`tests.support.moto_server.mend_moto_batch` a child sees several ids, the last one a sibling's; a
400-wide foreach then ran some siblings' tasks twice and others never ("the task exited 0 but saved no
result"). This test fails on unmended moto."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.support.engine import base_image, docker_client_or_skip  # noqa: E402
from tests.support.moto_server import aws, moto_server  # noqa: E402,F401  (fixtures)

pytest.importorskip("boto3")


def test_each_child_of_an_array_sees_only_its_own_job_id(aws):
    image = base_image(docker_client_or_skip())
    queue = aws.batch_queue("mend-queue")
    batch = aws.client("batch")
    definition = batch.register_job_definition(
        jobDefinitionName="mend",
        type="container",
        containerProperties={
            "image": image,
            "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
            "environment": [{"name": "FROM_DEFINITION", "value": "1"}],
        },
    )["jobDefinitionArn"]
    parent = batch.submit_job(
        jobName="mend-array",
        jobQueue=queue,
        jobDefinition=definition,
        arrayProperties={"size": 3},
        containerOverrides={"environment": [{"name": "FROM_OVERRIDES", "value": "1"}]},  # as workbench submits
    )["jobId"]
    children = [f"{parent}:{i}" for i in range(3)]
    for job_id in [*children, children[2], children[1]]:  # each describe used to append to the shared list
        batch.describe_jobs(jobs=[job_id])
    for job_id in children:
        (job,) = batch.describe_jobs(jobs=[job_id])["jobs"]
        env = job["container"]["environment"]
        ids = [e["value"] for e in env if e["name"] == "AWS_BATCH_JOB_ID"]
        assert ids == [job_id], f"{job_id} sees AWS_BATCH_JOB_ID {ids}"
        assert {"FROM_DEFINITION", "FROM_OVERRIDES"} <= {e["name"] for e in env}
