"""A moto server on 127.0.0.1 for tests of the S3 datastore and the Batch backend.

Use as a pytest plugin module (``pytest_plugins = ["tests.support.moto_server"]``) or import the fixtures:

- ``moto_server`` (session): a ``ThreadedMotoServer`` on a free loopback port, started with
  ``MOTO_DOCKER_NETWORK_MODE=host`` in the environment so Batch job containers reach it on 127.0.0.1.
- ``aws`` (function): dummy credentials and ``AWS_ENDPOINT_URL`` in os.environ, a fresh server state
  (``POST /moto-api/reset``) and an :class:`AwsTestbed` with helpers: ``bucket()``, ``batch_queue()``.
- :func:`use_moto`: the same environment for a fixture of a wider scope (through its own MonkeyPatch).

Stopping the server orphans running job containers, so the session fixture resets before it stops.
"""

from __future__ import annotations

import os
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Optional

import pytest

REGION = "us-east-1"
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def mend_moto_batch() -> None:
    """Work around a moto 5 Batch bug that gives a child of an array job a sibling's job id (and index).

    moto builds a job's container environment by appending ``AWS_BATCH_JOB_ID`` to the ``environment`` list of
    the job's ``containerOverrides``: the very list the job was submitted with, which every child of an array
    shares with its parent. Each child that starts, and each describe_jobs of a child, appends its own id to
    that one list; the container gets the last entry. So under polling a child runs with a sibling's
    ``AWS_BATCH_JOB_ID``, and (as moto sets no ``AWS_BATCH_JOB_ARRAY_INDEX``) with that sibling's index: at
    400 wide, 4 to 19 children ran a sibling's task and theirs never ran. AWS sets each child's own
    variables. Here each call builds a fresh list, otherwise as moto does (overrides first, then the job
    definition's, then the job id). Idempotent; applies to the moto in this process."""
    import moto.batch.models as models

    original = models.Job._get_container_property
    if getattr(original, "mended", False):
        return

    def get_container_property(self, p, default):
        if p != "environment":
            return original(self, p, default)
        env = {e["name"]: e["value"] for e in self.job_definition.container_properties.get(p, default)}
        env.update({e["name"]: e["value"] for e in self.container_overrides.get(p, default)})
        env["AWS_BATCH_JOB_ID"] = self.job_id
        return [{"name": k, "value": v} for k, v in env.items()]

    get_container_property.mended = True  # type: ignore[attr-defined]
    models.Job._get_container_property = get_container_property  # type: ignore[method-assign]


def reset(endpoint: str) -> None:
    req = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    urllib.request.urlopen(req, timeout=30).read()


@pytest.fixture(scope="session")
def moto_server():
    pytest.importorskip("moto.server")
    from moto.server import ThreadedMotoServer

    mend_moto_batch()
    saved = {k: os.environ.get(k) for k in ("MOTO_DOCKER_NETWORK_MODE",)}
    os.environ["MOTO_DOCKER_NETWORK_MODE"] = "host"  # read by moto's Batch when it starts job containers
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        yield endpoint
    finally:
        try:
            reset(endpoint)  # terminates running jobs, so no container is orphaned
        except Exception:  # noqa: BLE001
            pass
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class AwsTestbed:
    endpoint: str
    region: str = REGION
    created: dict = field(default_factory=dict)

    def client(self, service: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def bucket(self, name: Optional[str] = None) -> str:
        name = name or f"wb-test-{uuid.uuid4().hex[:8]}"
        self.client("s3").create_bucket(Bucket=name)
        return name

    def batch_queue(self, name: str = "wb-queue", *, managed: Optional[dict] = None) -> str:
        """An IAM role, a compute environment (UNMANAGED, or MANAGED with ``managed`` computeResources) and a
        job queue on it; returns the queue's name."""
        iam = self.client("iam")
        role = iam.create_role(
            RoleName=f"wb-batch-{uuid.uuid4().hex[:6]}",
            AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}',
        )["Role"]["Arn"]
        batch = self.client("batch")
        kwargs = {"type": "UNMANAGED"}
        if managed is not None:
            ec2 = self.client("ec2")
            vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
            sg = ec2.create_security_group(GroupName=f"wb-{uuid.uuid4().hex[:6]}", Description="wb", VpcId=vpc)[
                "GroupId"
            ]
            profile = iam.create_instance_profile(InstanceProfileName=f"wb-ip-{uuid.uuid4().hex[:6]}")[
                "InstanceProfile"
            ]["Arn"]
            resources = {
                "type": "EC2",
                "minvCpus": 0,
                "desiredvCpus": 0,
                "instanceRole": profile,
                "subnets": [subnet],
                "securityGroupIds": [sg],
                **managed,
            }
            kwargs = {"type": "MANAGED", "computeResources": resources}
        ce = batch.create_compute_environment(
            computeEnvironmentName=f"{name}-ce", state="ENABLED", serviceRole=role, **kwargs
        )["computeEnvironmentArn"]
        batch.create_job_queue(
            jobQueueName=name,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
        )
        self.created["role"] = role
        return name

    def jobs(self, queue: str) -> list[dict]:
        batch = self.client("batch")
        out = []
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
            out += batch.list_jobs(jobQueue=queue, jobStatus=status).get("jobSummaryList", [])
        return out

    def wait_jobs_settled(self, queue: str, timeout: float = 30) -> list[dict]:
        deadline = time.time() + timeout
        while True:
            active = [j for j in self.jobs(queue) if j["status"] not in ("SUCCEEDED", "FAILED")]
            if not active or time.time() > deadline:
                return active
            time.sleep(0.5)


def use_moto(env: pytest.MonkeyPatch, endpoint: str) -> None:
    """Dummy credentials and moto's endpoint in os.environ (through ``env``, which undoes it), for this process
    and the local tasks it starts; workbench's cached AWS sessions are dropped so they see it."""
    for k, v in DUMMY_ENV.items():
        env.setenv(k, v)
    env.setenv("AWS_ENDPOINT_URL", endpoint)
    env.setenv("WORKBENCH_S3_ENDPOINT_URL", endpoint)
    env.setenv("WORKBENCH_S3_REGION", REGION)
    env.delenv("AWS_PROFILE", raising=False)
    from workbench import aws as wb_aws

    wb_aws._sessions.clear()  # sessions cache credentials: start from this environment


@pytest.fixture
def aws(moto_server, monkeypatch):
    """Dummy credentials and the endpoint in os.environ, a reset server, helpers."""
    use_moto(monkeypatch, moto_server)
    reset(moto_server)
    yield AwsTestbed(moto_server)
    from workbench import aws as wb_aws

    wb_aws._sessions.clear()
