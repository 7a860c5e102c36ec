"""The sandbox's S3 server (versitygw) and the 3dgan trainer image against it.

Each test writes under a fresh run prefix, so tests never see each other's objects.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import signal
import subprocess
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.integration.support import unavailable, wait_for

pytestmark = pytest.mark.integration
UNIT_TESTS = Path(__file__).resolve().parents[1] / "unit" / "test_3dgan_trainer.py"


def client(sandbox, user: str):
    """boto3 S3 client of a sandbox user, from the platform document and the user's credentials file."""
    import boto3
    from botocore.config import Config

    from mlctl.sandbox import s3

    part = sandbox.platform["s3"]
    access_key, secret = s3.user_credentials(sandbox.root, user)
    return boto3.client(
        "s3", endpoint_url=part["endpoint"], region_name=part["region"], verify=s3.info(sandbox.state)["ca_file"],
        aws_access_key_id=access_key, aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                      retries={"max_attempts": 1}),
    )


def error_code(call) -> str:
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return "no error"


def run_prefix(user: str) -> str:
    return f"{user}/t-{uuid.uuid4().hex[:10]}/"


@pytest.fixture(scope="module")
def image():
    from mlctl.sandbox import images

    try:
        return images.ensure("3dgan")
    except Exception as exc:  # noqa: BLE001 - no registry, no image: the same as no sandbox
        unavailable(f"cannot build the 3dgan image: {exc}")


def test_the_server_runs_and_the_platform_document_points_at_it(sandbox):
    from mlctl.sandbox import s3

    state = sandbox.state
    assert state.is_running(s3.PROCESS)
    assert state.data["processes"][s3.PROCESS]["port"] == state.data["ports"][s3.PROCESS]
    part = sandbox.platform["s3"]
    assert part["endpoint"] == f"https://127.0.0.1:{state.data['ports'][s3.PROCESS]}"
    assert part["buckets"] == {"outputs": "mlctl-outputs", "models": "mlctl-models"}
    assert part["prefix"] == "{user}/" and part["region"] == "us-east-1"
    assert base64.b64decode(part["certificateAuthorityData"]) == (sandbox.root / "pki" / "ca.crt").read_bytes()
    text = sandbox.platform_file.read_text()
    leaked = [u for u in (*s3.USERS, s3.ROOT_ACCOUNT)
              if s3._read_credentials(s3._credentials_file(sandbox.root, u))[1] in text]
    assert not leaked, "the platform document holds S3 secrets"
    assert s3.ready(s3.info(state))


def test_a_second_start_keeps_the_server_and_a_dead_one_is_restarted(sandbox):
    from mlctl.sandbox import procs, s3

    alice = client(sandbox, "alice")
    key = run_prefix("alice") + "kept.txt"
    alice.put_object(Bucket="mlctl-outputs", Key=key, Body=b"still here")
    pid = sandbox.state.data["processes"][s3.PROCESS]["pid"]
    assert s3.start(sandbox.state)["action"] == "kept"
    assert sandbox.state.data["processes"][s3.PROCESS]["pid"] == pid

    port = sandbox.state.data["ports"][s3.PROCESS]
    os.kill(pid, signal.SIGKILL)
    argv0 = sandbox.state.data["processes"][s3.PROCESS]["argv"][0]
    wait_for(lambda: not procs.running(pid, argv0), 10, "versitygw to die")
    out = s3.start(sandbox.state)
    assert out["action"] == "started"
    assert sandbox.state.data["processes"][s3.PROCESS]["pid"] != pid
    # the dying process's threads held the port for a moment; it is kept, and the document still right
    assert sandbox.state.data["ports"][s3.PROCESS] == port
    assert sandbox.platform["s3"]["endpoint"] == out["endpoint"] == f"https://127.0.0.1:{port}"
    assert client(sandbox, "alice").get_object(Bucket="mlctl-outputs", Key=key)["Body"].read() == b"still here"


@pytest.mark.parametrize("bucket", ["mlctl-outputs", "mlctl-models"])
def test_bob_reaches_his_prefix_and_not_alices(sandbox, bucket):
    alice, bob = client(sandbox, "alice"), client(sandbox, "bob")
    alices, bobs = run_prefix("alice"), run_prefix("bob")
    alice.put_object(Bucket=bucket, Key=alices + "secret.txt", Body=b"alice's")

    assert error_code(lambda: bob.get_object(Bucket=bucket, Key=alices + "secret.txt")) == "AccessDenied"
    assert error_code(lambda: bob.head_object(Bucket=bucket, Key=alices + "secret.txt")) == "403"
    assert error_code(lambda: bob.put_object(Bucket=bucket, Key=alices + "x", Body=b"bob's")) == "AccessDenied"
    assert error_code(lambda: bob.delete_object(Bucket=bucket, Key=alices + "secret.txt")) == "AccessDenied"
    assert error_code(lambda: bob.list_objects_v2(Bucket=bucket, Prefix=alices)) == "AccessDenied"
    assert error_code(lambda: bob.list_objects_v2(Bucket=bucket)) == "AccessDenied"
    assert error_code(lambda: bob.put_bucket_policy(Bucket=bucket, Policy="{}")) == "AccessDenied"

    bob.put_object(Bucket=bucket, Key=bobs + "mine.txt", Body=b"bob's")
    assert bob.get_object(Bucket=bucket, Key=bobs + "mine.txt")["Body"].read() == b"bob's"
    listed = bob.list_objects_v2(Bucket=bucket, Prefix=bobs)
    assert [o["Key"] for o in listed["Contents"]] == [bobs + "mine.txt"]
    assert alice.get_object(Bucket=bucket, Key=alices + "secret.txt")["Body"].read() == b"alice's"


def trainer_env(sandbox, tmp_path: Path, user: str, **extra: str) -> dict[str, str]:
    """A pod-like environment: no variable of this machine's own leaks in except PATH."""
    from mlctl.sandbox import s3

    access_key, secret = s3.user_credentials(sandbox.root, user)
    part = sandbox.platform["s3"]
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret, "AWS_ENDPOINT_URL": part["endpoint"],
            "AWS_CA_BUNDLE": s3.info(sandbox.state)["ca_file"], "AWS_DEFAULT_REGION": part["region"], **extra}


def run_trainer(image: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    from mlctl.sandbox import images

    return subprocess.run([str(image), str(images.entrypoint("3dgan"))], env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def npy_shape(archive: zipfile.ZipFile, name: str) -> tuple[str, tuple[int, ...]]:
    """(dtype, shape) from an .npy member's header, without numpy."""
    with archive.open(name) as f:
        head = f.read(10)
        assert head[:6] == b"\x93NUMPY", name
        size = int.from_bytes(head[8:10], "little") if head[6] == 1 else int.from_bytes(head[8:10] + f.read(2),
                                                                                        "little")
        header = ast.literal_eval(f.read(size).decode("latin1"))
    return header["descr"], tuple(header["shape"])


def test_the_trainer_writes_every_epoch_the_metrics_and_the_model(sandbox, image, tmp_path):
    from mlctl.sandbox import s3

    prefix = run_prefix("alice")
    tf_config = {"cluster": {"chief": ["127.0.0.1:2222"]}, "task": {"type": "chief", "index": 0}}
    env = trainer_env(sandbox, tmp_path, "alice", TF_CONFIG=json.dumps(tf_config), EPOCHS="3", SAMPLES="64",
                      OUTPUT_URL=f"s3://mlctl-outputs/{prefix}")
    proc = run_trainer(image, env)
    assert proc.returncode == 0, proc.stderr
    leaked = s3.user_credentials(sandbox.root, "alice")[1] in proc.stdout + proc.stderr
    assert not leaked, "the trainer printed its secret"
    epochs = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 3
    for n, line in enumerate(epochs, 1):
        assert re.fullmatch(rf"epoch {n}/3 loss_g=\d+\.\d{{3}} loss_d=\d+\.\d{{3}} time=\d+\.\ds", line), line
    assert proc.stdout.splitlines()[-1] == "training finished"

    alice = client(sandbox, "alice")
    keys = {o["Key"][len(prefix):] for o in alice.list_objects_v2(Bucket="mlctl-outputs", Prefix=prefix)["Contents"]}
    want = {f"epoch-{n}/{net}.npz" for n in (1, 2, 3) for net in ("generator", "discriminator")}
    assert keys == want | {"metrics.jsonl", "model/generator.npz", "model/model.json"}

    body = alice.get_object(Bucket="mlctl-outputs", Key=prefix + "metrics.jsonl")["Body"].read().decode()
    metrics = [json.loads(line) for line in body.splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert all(set(m) == {"epoch", "loss_g", "loss_d", "time"} for m in metrics)
    for m, line in zip(metrics, epochs, strict=True):
        assert f"loss_g={m['loss_g']:.3f}" in line and f"loss_d={m['loss_d']:.3f}" in line

    meta = json.loads(alice.get_object(Bucket="mlctl-outputs", Key=prefix + "model/model.json")["Body"].read())
    assert meta["format"] == "mlctl-3dgan-generator/v1" and meta["epochs"] == 3
    assert meta["output"]["shape"] == [25, 25, 25]
    model = tmp_path / "generator.npz"
    model.write_bytes(alice.get_object(Bucket="mlctl-outputs", Key=prefix + "model/generator.npz")["Body"].read())
    with zipfile.ZipFile(model) as archive:
        arrays = {n.removesuffix(".npy"): npy_shape(archive, n) for n in archive.namelist()}
    assert arrays == {k: ("<f4", tuple(v)) for k, v in meta["arrays"].items()}


def test_a_worker_trains_its_shard_writes_nothing_and_exits_0(sandbox, image, tmp_path):
    tf_config = {"cluster": {"chief": ["127.0.0.1:2222"], "worker": ["127.0.0.2:2222"]},
                 "task": {"type": "worker", "index": 0}}
    prefix = run_prefix("alice")
    env = trainer_env(sandbox, tmp_path, "alice", TF_CONFIG=json.dumps(tf_config), EPOCHS="2", SAMPLES="32",
                      OUTPUT_URL=f"s3://mlctl-outputs/{prefix}")
    proc = run_trainer(image, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("3dgan worker:0 of 2 replica(s)")
    assert proc.stdout.splitlines()[-1] == "training finished"
    assert client(sandbox, "alice").list_objects_v2(Bucket="mlctl-outputs", Prefix=prefix)["KeyCount"] == 0


def test_the_trainer_refused_another_users_prefix_says_so(sandbox, image, tmp_path):
    from mlctl.sandbox import s3

    env = trainer_env(sandbox, tmp_path, "alice", OUTPUT_URL=f"s3://mlctl-outputs/{run_prefix('bob')}")
    proc = run_trainer(image, env)
    assert proc.returncode == 1
    assert proc.stderr == "3dgan: error: S3 PutObject failed: AccessDenied Access Denied.\n"
    leaked = s3.user_credentials(sandbox.root, "alice")[1] in proc.stdout + proc.stderr
    assert not leaked, "the trainer printed its secret"


def test_the_trainer_rejects_a_bad_environment(image, tmp_path):
    proc = run_trainer(image, {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "EPOCHS": "0",
                               "OUTPUT_URL": "s3://mlctl-outputs/alice/x/"})
    assert (proc.returncode, proc.stderr) == (2, "3dgan: error: EPOCHS must be at least 1, got 0\n")


def test_the_trainer_numerics_pass_in_the_image(image):
    proc = subprocess.run([str(image), str(UNIT_TESTS)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.fullmatch(r"\d+ passed, 0 failed", proc.stdout.strip().splitlines()[-1])
