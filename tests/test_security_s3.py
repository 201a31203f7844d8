"""The task boundary on an S3 datastore (moto's server, and the real Docker engine for the hostile step).

- ingest: what a task left in its outbox prefix enters the store only as new blobs that hash to their
  names and its own attempt record; a forged blob, a replacement for an existing blob, a record for
  another task are refused, named, and the prefix is deleted;
- scoped credentials: with ``[datastore] task_role`` each Docker task gets STS AssumeRole credentials.
  moto's server enforces the *role's* IAM policy when IAM authentication is on (INITIAL_NO_AUTH_ACTION_COUNT,
  set through /moto-api/reset-auth) but not the per-task *session* policy, so here the role's own policy
  (Put only under ``.outbox/``) is what the hostile step meets; the session policy that narrows it to the
  task's own prefix is checked for its shape only (AWS enforces it).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pytest

from workbench.config import load_config
from workbench.datastore import FlowDatastore, encode_artifact

from .support.moto_server import aws, moto_server  # noqa: F401 - fixtures
from .support.remote_projects import fast_batch_polling
from .test_docker_backend import engine, run_flow  # noqa: F401 - fixtures and helpers
from .test_kubernetes_backend import kube  # noqa: F401 - the emulator fixture

pytest.importorskip("boto3")
IAMRequestBase = pytest.importorskip("moto.iam.access_control").IAMRequestBase
_moto_create_aws_request = IAMRequestBase._create_aws_request


def _blob(value) -> tuple[str, bytes]:
    sha, chunks, _ = encode_artifact(value)
    return sha, b"".join(bytes(c) for c in chunks)


@pytest.fixture
def s3ds(aws):  # noqa: F811
    bucket = aws.bucket()
    return FlowDatastore(f"s3://{bucket}/wb", "F")


# ----------------------------------------------------------------------------------------- ingest


def test_ingest_takes_new_checked_blobs_and_the_own_record_and_refuses_the_rest(s3ds):
    from workbench.datastore.outbox_s3 import ingest_s3, new_outbox_prefix

    storage = s3ds.storage
    old_sha, _ = _blob("the honest value")
    s3ds.save_artifact("the honest value")  # an earlier run's blob
    other_record = f"{s3ds.task_key('1', 'start', '1')}/attempt-0.json"
    storage.put(other_record, [b'{"status": "succeeded"}'])

    prefix = new_outbox_prefix("2", "start", "1", 0)
    new_sha, new_blob = _blob(list(range(100)))
    forged = "ab" + new_sha[2:]
    own_record = f"{s3ds.task_key('2', 'start', '1')}/attempt-0.json"
    writes = {
        f"F/data/{new_sha[:2]}/{new_sha}": new_blob,  # legitimate: taken
        f"F/data/{old_sha[:2]}/{old_sha}": b"EVIL",  # a 'replacement' of the earlier run's blob: never taken
        f"F/data/ab/{forged}": new_blob,  # content that does not hash to its name
        own_record: b'{"status": "succeeded", "attempt": 0, "pathspec": "F/2/start/1"}',
        other_record: b'{"status": "failed"}',  # another task's record
        "F/runs/2/run.json": b"{}",
    }
    for key, data in writes.items():
        storage.put(f"{prefix}/{key}", [data])

    refused = ingest_s3(s3ds, prefix, "2", "start", "1", 0)

    text = "\n".join(refused)
    assert f"F/data/ab/{forged}: blob refused: content hash" in text
    assert f"{other_record}: outside the task's outputs" in text
    assert "F/runs/2/run.json: outside the task's outputs" in text
    assert len(refused) == 3, refused
    # its own record's key, but claiming another task: refused
    lying = new_outbox_prefix("2", "start", "1", 0)
    storage.put(f"{lying}/{own_record}", [b'{"status": "succeeded", "attempt": 0, "pathspec": "F/1/start/1"}'])
    assert ingest_s3(s3ds, lying, "2", "start", "1", 0) == [
        f"{own_record}: record claims to be F/1/start/1 attempt 0, not F/2/start/1 attempt 0"
    ]
    assert s3ds.load_artifact(new_sha) == list(range(100))
    assert s3ds.load_artifact(old_sha) == "the honest value"  # the store's copy, untouched
    assert not s3ds.has_artifact(forged)
    assert json.loads(bytes(storage.get(other_record))) == {"status": "succeeded"}
    assert json.loads(bytes(storage.get(own_record)))["status"] == "succeeded"
    assert storage.walk(prefix) == []  # the outbox is gone


def test_ingest_of_a_large_blob_goes_through_a_staging_copy_and_is_checked(s3ds):
    from workbench.datastore.outbox_s3 import INGEST_DIR, ingest_s3, new_outbox_prefix
    from workbench.datastore.s3 import MULTIPART_THRESHOLD

    storage = s3ds.storage
    big = bytearray(os.urandom(MULTIPART_THRESHOLD + 4096))  # an out-of-band buffer: not compressed
    sha, blob = _blob(big)
    assert len(blob) >= MULTIPART_THRESHOLD
    bad = bytearray(blob)
    bad[-1] ^= 1  # one flipped byte in the last buffer
    prefix = new_outbox_prefix("3", "start", "1", 0)
    storage.put(f"{prefix}/F/data/{sha[:2]}/{sha}", [blob])
    storage.put(f"{prefix}/F/data/ab/ab{sha[2:]}", [bytes(bad)])

    refused = ingest_s3(s3ds, prefix, "3", "start", "1", 0)

    assert [r.split(":")[0] for r in refused] == [f"F/data/ab/ab{sha[2:]}"] and "blob refused" in refused[0]
    assert s3ds.load_artifact(sha) == big
    assert not s3ds.has_artifact("ab" + sha[2:])
    assert storage.walk(INGEST_DIR) == [] and storage.walk(prefix) == []


def test_the_task_session_policy_writes_only_its_own_outbox():
    from workbench.aws import task_policy

    doc = json.loads(task_policy("bkt", "wb/", ".outbox/5/start/2/0-abc"))
    by_action = {a: s for s in doc["Statement"] for a in s["Action"]}
    assert by_action["s3:PutObject"]["Resource"] == ["arn:aws:s3:::bkt/wb/.outbox/5/start/2/0-abc/*"]
    assert by_action["s3:GetObject"]["Resource"] == ["arn:aws:s3:::bkt/wb/*"]
    assert set(by_action) == {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:AbortMultipartUpload"}
    assert all(s["Effect"] == "Allow" for s in doc["Statement"])  # no delete, no copy, nothing else
    assert len(json.dumps(doc)) < 2048  # STS's limit for a session policy


def test_task_credentials_are_minted_per_task_with_long_lived_keys_else_shared_and_said(aws, monkeypatch):  # noqa: F811
    """Long-lived user keys and no role: GetFederationToken per task (each its own directory, removed with
    the task); session credentials and no role: one file for the run, and the reason kept for the warning."""
    from workbench import aws as wb_aws

    monkeypatch.delenv("AWS_SESSION_TOKEN")
    wb_aws._sessions.clear()
    creds = wb_aws.TaskCredentials(aws.endpoint)
    try:
        assert creds.mode == "federation"
        one = creds.for_task("s3://bkt/wb", ".outbox/1/start/1/0-a", "wb-1-1")
        two = creds.for_task("s3://bkt/wb", ".outbox/1/start/2/0-b", "wb-1-2")
        assert one != two and creds.scoped()
        for d in (one, two):
            assert oct(os.stat(d).st_mode & 0o777) == "0o700"
            assert oct(os.stat(Path(d, "credentials.json")).st_mode & 0o777) == "0o600"
            assert json.loads(Path(d, "credentials.json").read_text())["SessionToken"]
        creds.release(one)
        assert not os.path.exists(one) and os.path.exists(two)
    finally:
        creds.close()
    assert not os.path.exists(creds.dir)

    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    wb_aws._sessions.clear()
    shared = wb_aws.TaskCredentials(aws.endpoint)
    try:
        assert shared.mode == "run"
        a = shared.for_task("s3://bkt/wb", ".outbox/1/start/1/0-a", "wb-1-1")
        assert a == shared.for_task("s3://bkt/wb", ".outbox/1/start/2/0-b", "wb-1-2") and not shared.scoped()
        assert "session credentials" in shared.unscoped_warning() and "task_role" in shared.unscoped_warning()
    finally:
        shared.close()


def test_a_tasks_credentials_are_refreshed_in_place_and_botocore_reads_them(aws, monkeypatch):  # noqa: F811
    """AssumeRole credentials last an hour on many roles: the runtime re-mints them before they expire and
    replaces credentials.json in the task's (mounted) directory; botocore's credential_process reads it."""
    import subprocess
    import sys

    from workbench import aws as wb_aws

    creds = wb_aws.TaskCredentials(aws.endpoint, role_arn="arn:aws:iam::123456789012:role/wb-task")
    try:
        d = creds.for_task("s3://bkt/wb", ".outbox/1/start/1/0-a", "wb-1-1")
        first = json.loads(Path(d, "credentials.json").read_text())
        assert creds.refresh_due() == 0  # twelve hours left (or one): nothing due yet
        creds.REFRESH_BEFORE = 13 * 3600.0  # everything is due now
        assert creds.refresh_due() == 1
        second = json.loads(Path(d, "credentials.json").read_text())
        assert second["AccessKeyId"] != first["AccessKeyId"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_CONFIG_FILE=str(Path(d, "config")), AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        code = "import boto3; print(boto3.Session().get_credentials().get_frozen_credentials().access_key)"
        got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert got.stdout.strip() == second["AccessKeyId"], got.stderr[-500:]
        creds.release(d)
        assert not os.path.exists(d) and creds.refresh_due() == 0
    finally:
        creds.close()


# ------------------------------------------------------------------------- a hostile Docker step


HOSTILE = """
import os
from workbench import FlowSpec, Parameter, current, step

class HostileS3Flow(FlowSpec):
    victim = Parameter("victim", default="")  # an earlier run's blob, key relative to the store
    record = Parameter("record", default="")  # another task's attempt record, same
    store = Parameter("store", default="")  # the datastore's URL

    @step
    def start(self):
        if not self.victim:
            self.treasure = "the honest value " * 10
            self.next(self.end)
            return
        from workbench.datastore.s3 import S3Storage

        outbox = os.environ["WORKBENCH_OUTBOX"]
        if outbox == "per-task":  # a Batch job: the task works its outbox out from its reference
            outbox = f"{self.store}/.outbox/{current.run_id}/{current.step_name}/{current.task_id}/0"
        store = S3Storage(self.store)
        s3, bucket = store.client, store.bucket

        def attempt(action):
            try:
                action()
                return "done"
            except Exception as exc:
                return "refused: " + str(getattr(exc, "response", {}).get("Error", {}).get("Code") or exc)

        victim, record = store._key(self.victim), store._key(self.record)
        self.results = {
            "overwrite blob": attempt(lambda: s3.put_object(Bucket=bucket, Key=victim, Body=b"EVIL")),
            "copy over blob": attempt(lambda: s3.copy_object(
                Bucket=bucket, Key=victim, CopySource={"Bucket": bucket, "Key": record})),
            "delete blob": attempt(lambda: s3.delete_object(Bucket=bucket, Key=victim)),
            "overwrite record": attempt(lambda: s3.put_object(Bucket=bucket, Key=record, Body=b"{}")),
            "read blob": attempt(lambda: s3.get_object(Bucket=bucket, Key=victim)["Body"].read()),
        }
        # what it can write: its outbox. A 'replacement' for the victim, a forged blob, another task's record
        out = S3Storage(outbox)
        name = self.victim.rsplit("/", 1)[-1]
        out.put(self.victim, [b"EVIL"])
        out.put("HostileS3Flow/data/ab/ab" + name[2:], [b"WBA2 garbage"])
        out.put(self.record, [b'{"status": "failed"}'])
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _reset_auth(endpoint: str, count: str) -> None:
    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        method="POST",
        data=count.encode(),
        headers={"Content-Type": "text/plain"},  # form-encoded, the body would not reach moto's handler
    )
    urllib.request.urlopen(req, timeout=30).read()


def _canonical_query_request(self):
    """moto 5.2's signature check rebuilds the request from its *decoded* query string, so every
    ListObjectsV2 with a '/' in its prefix fails with SignatureDoesNotMatch once IAM authentication is on;
    AWS canonicalizes the query percent-encoded. This puts the encoding back (a fidelity fix of the
    emulator, as tests/k8s_emulator gets; nothing is allowed that moto would refuse otherwise)."""
    req = _moto_create_aws_request(self)
    parts = urlsplit(req.url)
    if parts.query:
        pairs = (p.partition("=") for p in parts.query.split("&"))
        req.url = urlunsplit(
            parts._replace(
                query="&".join(
                    quote(unquote(k), safe="-_.~") + (f"={quote(unquote(v), safe='-_.~')}" if sep else "")
                    for k, sep, v in pairs
                )
            )
        )
    return req


@pytest.fixture
def iam_enforced(aws, monkeypatch):  # noqa: F811
    """IAM authentication on in moto: the runtime runs as an IAM user allowed everything, tasks assume
    a role allowed to read the store and write only under its outbox area; the bucket exists already."""
    monkeypatch.setattr(IAMRequestBase, "_create_aws_request", _canonical_query_request)
    bucket = aws.bucket()
    iam = aws.client("iam")
    iam.create_user(UserName="runner")
    iam.put_user_policy(
        UserName="runner",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName="runner")["AccessKey"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    role = iam.create_role(RoleName="wb-task", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    role_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{bucket}/wb/*"]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"]},
            {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [f"arn:aws:s3:::{bucket}/wb/.outbox/*"]},
        ],
    }
    iam.put_role_policy(RoleName="wb-task", PolicyName="outbox-only", PolicyDocument=json.dumps(role_policy))
    iam.create_user(UserName="batch-job")  # what a Batch job role is on AWS; here its keys reach the job
    iam.put_user_policy(UserName="batch-job", PolicyName="outbox-only", PolicyDocument=json.dumps(role_policy))
    job_key = iam.create_access_key(UserName="batch-job")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)  # long-lived user keys
    from workbench import aws as wb_aws

    wb_aws._sessions.clear()
    _reset_auth(aws.endpoint, "0")  # from now on every request is authenticated and authorized
    try:
        yield bucket, role, job_key
    finally:
        _reset_auth(aws.endpoint, "inf")
        wb_aws._sessions.clear()


@pytest.fixture
def hostile_s3_project(tmp_path, engine, aws, iam_enforced, monkeypatch):  # noqa: F811
    client, image = engine
    bucket, role, _ = iam_enforced
    name = f"wbs3-{uuid.uuid4().hex[:8]}"
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hostile.py").write_text(HOSTILE)
    (tmp_path / "workbench.toml").write_text(
        f'[project]\nname = "{name}"\nbackend = "docker"\n\n[docker]\nimage = "{image}"\n\n'
        f'[datastore]\nroot = "s3://{bucket}/wb"\nendpoint_url = "{aws.endpoint}"\ntask_role = "{role}"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_DATASTORE", raising=False)
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    yield tmp_path
    for c in client.containers.list(all=True, filters={"label": [f"workbench.project={name}"]}):
        c.remove(force=True)


@pytest.mark.docker
def test_a_hostile_docker_step_cannot_change_an_s3_datastore(hostile_s3_project):
    root = hostile_s3_project
    first, events, _, _ = run_flow(root, "flows/hostile.py")
    ds = FlowDatastore(load_config(root).datastore_url, "HostileS3Flow")
    assert first.status == "succeeded", [text for _, _, text in ds.read_log(first.run_id, "start", "1")][-5:]
    assert not any("task_role" in str(getattr(e, "message", "")) for e in events), "tasks got scoped credentials"
    sha = ds.read_task(first.run_id, "start", "1")["artifacts"]["treasure"]["sha"]
    victim = ds.artifact_key(sha)
    record = f"{ds.task_key(first.run_id, 'start', '1')}/attempt-0.json"
    blob_before, record_before = bytes(ds.storage.get(victim)), bytes(ds.storage.get(record))

    params = {"victim": victim, "record": record, "store": ds.url}
    second, events, _, _ = run_flow(root, "flows/hostile.py", params=params)
    assert second.status == "succeeded", second.message

    results = ds.load_artifact(ds.read_task(second.run_id, "start", "1")["artifacts"]["results"]["sha"])
    assert results["read blob"] == "done", results
    for what in ("overwrite blob", "copy over blob", "delete blob", "overwrite record"):
        assert results[what] == "refused: AccessDenied", (what, results)
    assert bytes(ds.storage.get(victim)) == blob_before and ds.load_artifact(sha) == "the honest value " * 10
    assert bytes(ds.storage.get(record)) == record_before
    assert not ds.has_artifact("ab" + sha[2:])
    log = "\n".join(text for _, _, text in ds.read_log(second.run_id, "start", "1"))
    assert f"refused from the container's outputs: HostileS3Flow/data/ab/ab{sha[2:]}: blob refused" in log
    assert f"{record}: outside the task's outputs" in log
    assert any("refused" in str(getattr(e, "message", "")) for e in events)
    assert ds.storage.walk(".outbox") == []  # every task's outbox prefix was deleted after ingest


@pytest.fixture
def batch_queue(aws):  # noqa: F811 - made before IAM authentication is on
    return aws.batch_queue()


@pytest.fixture(params=["batch", "kubernetes"])
def hostile_remote_project(request, tmp_path, engine, aws, batch_queue, iam_enforced, monkeypatch):  # noqa: F811
    """A project whose start step runs on AWS Batch (moto) or Kubernetes (the emulator), with the keys of
    an IAM user whose policy is what a job role should be: read the store, Put only under .outbox/."""
    _client, image = engine
    bucket, _, job_key = iam_enforced
    if request.param == "batch":
        backend = f'[batch]\njob_queue = "{batch_queue}"\nimage = "{image}"\nendpoint_url = "{aws.endpoint}"\n'
    else:
        kube = request.getfixturevalue("kube")
        backend = f'[kubernetes]\nkubeconfig = "{kube.kubeconfig}"\nimage = "{image}"\nnamespace = "default"\n'
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hostile.py").write_text(HOSTILE)
    (tmp_path / "workbench.toml").write_text(
        f'[project]\nname = "wbs3r"\nbackend = "{request.param}"\n\n'
        f'[datastore]\nroot = "s3://{bucket}/wb"\nendpoint_url = "{aws.endpoint}"\nregion = "us-east-1"\n\n'
        f"{backend}\n"
        f'[flows.HostileS3Flow.steps.start]\ncpu = 1\nmemory = "512M"\n'
        f'env = {{ AWS_ACCESS_KEY_ID = "{job_key["AccessKeyId"]}", '
        f'AWS_SECRET_ACCESS_KEY = "{job_key["SecretAccessKey"]}" }}\n'
        f'[flows.HostileS3Flow.steps.end]\nbackend = "local"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_DATASTORE", raising=False)
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    fast_batch_polling(monkeypatch)
    return tmp_path


@pytest.mark.docker
def test_a_hostile_remote_step_cannot_change_an_s3_datastore(hostile_remote_project, aws):  # noqa: F811
    """The same attack from an AWS Batch job (moto runs it as a container) or a Kubernetes pod (the emulator
    runs it on the engine) whose credentials allow Put only under .outbox/ (a job role's policy): refused
    by IAM, and what it planted in its outbox refused at ingest."""
    root = hostile_remote_project
    first, _, _, _ = run_flow(root, "flows/hostile.py")
    ds = FlowDatastore(load_config(root).datastore_url, "HostileS3Flow")
    assert first.status == "succeeded", [text for _, _, text in ds.read_log(first.run_id, "start", "1")][-5:]
    sha = ds.read_task(first.run_id, "start", "1")["artifacts"]["treasure"]["sha"]
    victim = ds.artifact_key(sha)
    record = f"{ds.task_key(first.run_id, 'start', '1')}/attempt-0.json"
    blob_before, record_before = bytes(ds.storage.get(victim)), bytes(ds.storage.get(record))

    params = {"victim": victim, "record": record, "store": ds.url}
    second, events, _, _ = run_flow(root, "flows/hostile.py", params=params)
    assert second.status == "succeeded", [text for _, _, text in ds.read_log(second.run_id, "start", "1")][-5:]

    results = ds.load_artifact(ds.read_task(second.run_id, "start", "1")["artifacts"]["results"]["sha"])
    assert results["read blob"] == "done", results
    for what in ("overwrite blob", "copy over blob", "delete blob", "overwrite record"):
        assert results[what] == "refused: AccessDenied", (what, results)
    assert bytes(ds.storage.get(victim)) == blob_before and bytes(ds.storage.get(record)) == record_before
    assert not ds.has_artifact("ab" + sha[2:])
    log = "\n".join(text for _, _, text in ds.read_log(second.run_id, "start", "1"))
    assert f"refused from the task's outputs: HostileS3Flow/data/ab/ab{sha[2:]}: blob refused" in log
    assert any("refused" in str(getattr(e, "message", "")) for e in events)
    assert ds.storage.walk(".outbox") == []
    spec = ds.storage.get(f"{ds.task_key(second.run_id, 'start', '1')}/spec-0.json")
    assert b"<redacted>" in spec and b"AKIA" not in spec  # the keys came in containerOverrides / the pod's env


# ------------------------------------------------------------------------- secret step env in specs

SECRET_ENV_FLOW = """
import hashlib, os
from workbench import FlowSpec, step

class SecretEnvFlow(FlowSpec):
    @step
    def start(self):  # the secret's hash, not the secret: artifacts and their summaries are stored
        token = os.environ.get("API_TOKEN", "")
        self.seen = {"API_TOKEN": hashlib.sha256(token.encode()).hexdigest(), "MODE": os.environ.get("MODE")}
        self.next(self.end)

    @step
    def end(self):
        pass
"""
STEP_TOKEN = "step-token-" + "q" * 24


@pytest.mark.parametrize("pool", ["1", "0"], ids=["warm-worker", "process"])
def test_a_secret_step_env_reaches_the_local_task_but_not_its_spec(tmp_path, monkeypatch, pool):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "secret_env.py").write_text(SECRET_ENV_FLOW)
    (tmp_path / "workbench.toml").write_text(
        '[project]\nname = "t"\n\n'
        f'[flows.SecretEnvFlow.steps.start]\nenv = {{ API_TOKEN = "{STEP_TOKEN}", MODE = "fast" }}\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_DATASTORE", raising=False)
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    monkeypatch.setenv("WORKBENCH_LOCAL_POOL", pool)
    result, _, _, _ = run_flow(tmp_path, "flows/secret_env.py", backend="local")
    assert result.status == "succeeded", result.message
    ds = FlowDatastore(load_config(tmp_path).datastore_url, "SecretEnvFlow")
    seen = ds.load_artifact(ds.read_task(result.run_id, "start", "1")["artifacts"]["seen"]["sha"])
    assert seen == {"API_TOKEN": hashlib.sha256(STEP_TOKEN.encode()).hexdigest(), "MODE": "fast"}
    spec = ds.read_spec(result.run_id, "start", "1", 0)
    assert spec.settings["env"] == {"API_TOKEN": "<redacted>", "MODE": "fast"}
    holding = [str(p) for p in Path(ds.url).rglob("*.json") if STEP_TOKEN.encode() in p.read_bytes()]
    assert not holding
