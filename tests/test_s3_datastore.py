"""The S3 storage against moto's server: round trips, multipart, listing, logs, retries, credentials."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.support.moto_server import aws, moto_server  # noqa: E402,F401  (fixtures)

pytest.importorskip("boto3")


@pytest.fixture
def store(aws):
    from workbench.datastore.s3 import S3Storage

    bucket = aws.bucket()
    return S3Storage(f"s3://{bucket}/some/prefix")


def test_round_trip_list_delete(store, aws):
    store.put("F/runs/1/run.json", [b'{"a":', b"1}"])
    store.put("F/runs/2/run.json", [b"{}"])
    store.put("F/data/ab/abcdef", [memoryview(b"xyz")])
    store.put("G/empty", [])
    assert store.get("G/empty") == bytearray()
    assert bytes(store.get("F/runs/1/run.json")) == b'{"a":1}'
    assert isinstance(store.get("F/runs/1/run.json"), bytearray)
    assert store.exists("F/runs/1/run.json") and not store.exists("F/runs/3/run.json")
    assert store.list("F") == ["data", "runs"]
    assert store.list("F/runs") == ["1", "2"]
    assert store.list("F/runs/1") == ["run.json"]
    assert store.list("") == ["F", "G"]
    assert store.list("nothing/here") == []
    with pytest.raises(KeyError):
        store.get("F/missing")
    store.put("F/runs/1/run.json", [b"new"], overwrite=False)
    assert bytes(store.get("F/runs/1/run.json")) == b'{"a":1}'
    store.delete("F/runs/1")
    assert store.list("F/runs") == ["2"]
    # the prefix is honoured: objects live under some/prefix/
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=store.bucket)["Contents"]]
    assert all(k.startswith(("some/prefix/F/", "some/prefix/G/")) for k in keys)


def test_large_artifact_is_multipart_and_round_trips(store, aws):
    np = pytest.importorskip("numpy")
    from workbench.datastore import FlowDatastore

    ds = FlowDatastore(store, "F")
    value = np.random.default_rng(0).random(12 * 1024 * 1024 // 8)  # 12 MiB: above the 8 MiB threshold
    t0 = time.perf_counter()
    sha, size = ds.save_artifact(value)
    up = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = ds.load_artifact(sha)
    down = time.perf_counter() - t0
    assert np.array_equal(back, value)
    head = aws.client("s3").head_object(Bucket=store.bucket, Key=f"some/prefix/{ds.artifact_key(sha)}")
    assert "-" in head["ETag"], "a multipart upload has an ETag of the form <md5>-<parts>"
    mib = size / 2**20
    print(f"\nS3 (moto) {mib:.0f} MiB artifact: up {mib / up:.0f} MiB/s, down {mib / down:.0f} MiB/s")


def test_logs_buffer_until_flush(store):
    store.append_text("F/runs/1/s/1/0.log", "line 1\n")
    store.append_text("F/runs/1/s/1/0.log", "line 2\n")
    assert not store.exists("F/runs/1/s/1/0.log")
    store.flush("F/runs/1/s/1/0.log")
    assert bytes(store.get("F/runs/1/s/1/0.log")) == b"line 1\nline 2\n"
    store.append_text("F/runs/1/s/1/0.log", "line 3\n")  # after a flush: appends to what is there
    store.flush()
    assert bytes(store.get("F/runs/1/s/1/0.log")) == b"line 1\nline 2\nline 3\n"


def test_flow_datastore_logs_on_s3(store):
    from workbench.datastore import FlowDatastore

    ds = FlowDatastore(store, "F")
    key = ds.log_key("1", "s", "1", 0)
    ds.append_log(key, [(time.time(), "stdout", "hello")])
    ds.storage.flush(key)
    assert [(s, t) for _, s, t in ds.read_log("1", "s", "1", 0)] == [("stdout", "hello")]


def test_throttling_and_5xx_are_retried(store, aws):
    """Fault injection: the first answers are 503 SlowDown / 500; botocore's retry handler backs off and retries."""
    from botocore.awsrequest import AWSResponse

    faults = [
        (503, b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"),
        (500, b"<Error><Code>InternalError</Code><Message>oops</Message></Error>"),
    ]
    sent = []

    class _Raw:
        def __init__(self, body):
            self.body = body

        def stream(self, **kwargs):
            yield self.body

    def before_send(request, **kwargs):
        sent.append(request.method)
        if faults:
            status, body = faults.pop(0)
            return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(body))
        return None

    client = store.client
    client.meta.events.register("before-send.s3.PutObject", before_send)
    try:
        store.put("F/throttled", [b"payload"])
    finally:
        client.meta.events.unregister("before-send.s3.PutObject", before_send)
    assert len(sent) == 3, sent
    assert bytes(store.get("F/throttled")) == b"payload"


def test_missing_credentials_is_one_line(monkeypatch, tmp_path):
    from workbench import aws as wb_aws
    from workbench.datastore.s3 import S3Storage
    from workbench.errors import CredentialsError

    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    wb_aws._sessions.clear()
    try:
        with pytest.raises(CredentialsError) as err:
            S3Storage("s3://bucket/x").get("k")
        assert "\n" not in str(err.value) and "credentials" in str(err.value)
    finally:
        wb_aws._sessions.clear()


def test_endpoint_from_workbench_toml(tmp_path, monkeypatch):
    from workbench import aws as wb_aws

    monkeypatch.delenv("WORKBENCH_S3_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("WORKBENCH_S3_REGION", raising=False)
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    (tmp_path / "workbench.toml").write_text(
        '[datastore]\nroot = "s3://b/p"\nendpoint_url = "http://127.0.0.1:9"\nregion = "eu-west-1"\n'
    )
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert wb_aws.s3_settings() == ("http://127.0.0.1:9", "eu-west-1")
    monkeypatch.setenv("WORKBENCH_S3_ENDPOINT_URL", "")  # set but empty: "no endpoint", as in a remote task
    assert wb_aws.s3_settings() == (None, "eu-west-1")


def test_modules_import_boto3_lazily():
    import subprocess

    code = (
        "import sys, workbench.aws, workbench.datastore.s3, workbench.package, workbench.backends.batch; "
        "print(sorted(m for m in ('boto3', 'botocore', 'pathspec') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=_REPO)
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_put_without_overwrite_is_one_conditional_request(store):
    sent = []

    def count(request, **kwargs):
        sent.append(request.method)

    store.client.meta.events.register("before-send.s3", count)
    try:
        store.put("F/data/aa/blob", [b"first"], overwrite=False)
        store.put("F/data/aa/blob", [b"second"], overwrite=False)
    finally:
        store.client.meta.events.unregister("before-send.s3", count)
    assert sent == ["PUT", "PUT"]
    assert bytes(store.get("F/data/aa/blob")) == b"first"
