"""The lean client for small objects (mlctl/storage/lean.py) against the sandbox's S3 server (versitygw):
what it writes botocore reads back byte for byte (and the other way), Range and If-Match behave as S3
says, and each failure is the botocore exception that client.translate turns into the right exit code:
another user's prefix (exit 5), a missing key (exit 4), a changed object (412), a stopped server (exit 7),
a hung server (exit 7, timed out)."""

from __future__ import annotations

import hashlib
import os
import signal
import uuid

import pytest

from tests.integration.test_s3_sandbox import client

pytestmark = pytest.mark.integration

BINARIES_CACHE = os.environ.get("MLCTL_CACHE_DIR") or os.path.expanduser("~/.cache/mlctl")


def lean_for(sandbox, user: str, *, read_timeout: float = 5.0):
    from mlctl.sandbox import s3
    from mlctl.storage.lean import LeanS3

    access_key, secret = s3.user_credentials(sandbox.root, user)
    return LeanS3(sandbox.platform["s3"], access_key, secret, verify=s3.info(sandbox.state)["ca_file"],
                  connect_timeout=2.0, read_timeout=read_timeout)


@pytest.fixture
def place(sandbox):
    bucket = sandbox.platform["s3"]["buckets"]["outputs"]
    prefix = f"alice/lean-{uuid.uuid4().hex[:8]}/"
    yield bucket, prefix
    boto = client(sandbox, "alice")
    listed = boto.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents") or []
    if listed:
        boto.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in listed]})


def translated(e: Exception):
    from mlctl.storage.client import translate

    return translate(e, "the test's request", "S3")


def test_what_it_puts_botocore_reads_and_the_other_way(sandbox, place):
    bucket, prefix = place
    lean, boto = lean_for(sandbox, "alice"), client(sandbox, "alice")
    body = os.urandom(64 * 1024)
    key = prefix + "dir with space/é.bin"  # a key that needs quoting
    answer = lean.put_object(Bucket=bucket, Key=key, Body=body)
    assert answer["ETag"].strip('"') == hashlib.md5(body, usedforsecurity=False).hexdigest()
    assert boto.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    other = os.urandom(1000)
    boto.put_object(Bucket=bucket, Key=prefix + "b.bin", Body=other)
    got = lean.get_object(Bucket=bucket, Key=prefix + "b.bin")
    assert got["ContentLength"] == 1000 and got["Body"].read() == other
    part = lean.get_object(Bucket=bucket, Key=prefix + "b.bin", Range="bytes=100-199",
                           IfMatch=got["ETag"])["Body"].read()
    assert part == other[100:200]
    for _ in range(20):  # one kept-alive connection serves request after request
        assert lean.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def test_each_refusal_is_the_exit_code_s3_means(sandbox, place):
    from botocore.exceptions import ClientError

    bucket, prefix = place
    lean = lean_for(sandbox, "alice")
    with pytest.raises(ClientError) as denied:
        lean.put_object(Bucket=bucket, Key=f"bob/lean-{uuid.uuid4().hex[:8]}", Body=b"x")
    assert translated(denied.value).exit_code == 5
    with pytest.raises(ClientError) as missing:
        lean.get_object(Bucket=bucket, Key=prefix + "no-such-key")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    assert translated(missing.value).exit_code == 4
    lean.put_object(Bucket=bucket, Key=prefix + "c", Body=b"one")
    with pytest.raises(ClientError) as changed:
        lean.get_object(Bucket=bucket, Key=prefix + "c", IfMatch='"00000000000000000000000000000000"')
    assert changed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert "changed in S3" in translated(changed.value).message
    assert lean.get_object(Bucket=bucket, Key=prefix + "c")["Body"].read() == b"one"  # and it goes on


def test_a_stopped_and_a_hung_server_are_exit_7(sandbox, place, monkeypatch):
    from botocore import exceptions as bx

    from mlctl.sandbox import s3

    bucket, prefix = place
    lean = lean_for(sandbox, "alice", read_timeout=2.0)
    lean.put_object(Bucket=bucket, Key=prefix + "d", Body=b"d")  # a kept-alive connection, then:
    pid = sandbox.state.data["processes"][s3.PROCESS]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(bx.ReadTimeoutError) as hung:
            lean.get_object(Bucket=bucket, Key=prefix + "d")
    finally:
        os.kill(pid, signal.SIGCONT)
    err = translated(hung.value)
    assert err.exit_code == 7 and "timed out" in err.message
    s3.stop(sandbox.state)
    try:
        with pytest.raises((bx.EndpointConnectionError, bx.ConnectionClosedError)) as stopped:
            lean.get_object(Bucket=bucket, Key=prefix + "d")
        err = translated(stopped.value)
        assert err.exit_code == 7 and "unavailable" in err.message
    finally:
        monkeypatch.setenv("MLCTL_CACHE_DIR", BINARIES_CACHE)  # restart with the cached binary
        s3.start(sandbox.state)
    assert lean.get_object(Bucket=bucket, Key=prefix + "d")["Body"].read() == b"d"
