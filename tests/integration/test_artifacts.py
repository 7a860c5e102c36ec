"""`mlctl artifacts` against the sandbox's S3, on the outputs of a real 3dgan trainer run.

alice's namespaces and Secret mlctl-s3 come from the real `mlctl admin sync` and `mlctl sandbox s3-secrets`;
the trainer runs as a local process (as in test_s3_sandbox.py) with OUTPUT_URL at the documented layout.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import mlctl
from tests.integration.support import wait_for
from tests.integration.test_s3_sandbox import client, run_trainer, trainer_env
from tests.integration.test_train import _base_env

pytestmark = pytest.mark.integration
MLCTL = str(Path(sys.executable).parent / "mlctl")
EPOCHS = 3
MiB = 1024 * 1024
# the sandbox's binaries cache, before the `home` fixture points XDG_CACHE_HOME at a test's own directory
BINARIES_CACHE = os.environ.get("MLCTL_CACHE_DIR") or str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlctl")


@pytest.fixture(scope="module")
def secrets(sandbox, tmp_path_factory):
    """Namespaces from `mlctl admin sync`, then every user's Secret mlctl-s3 from `mlctl sandbox s3-secrets`."""
    from mlctl.sandbox import keycloak, procs

    home = tmp_path_factory.mktemp("admin")
    kc = keycloak.info(procs.State.load(sandbox.root))
    env = {**_base_env(home), "MLCTL_CLIENT_SECRET": kc["admin_client_secret"],
           "MLCTL_SANDBOX_DIR": str(sandbox.root)}
    for argv in (["login", "--platform", str(sandbox.platform_file), "--client-credentials", "--client-id",
                  kc["admin_client_id"], "--no-kubeconfig"], ["admin", "sync"], ["sandbox", "s3-secrets", "-o", "json"]):
        proc = subprocess.run([MLCTL, *argv], capture_output=True, text=True, timeout=300, env=env,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
    written = json.loads(proc.stdout)
    assert {"cluster": "local", "namespace": "u-alice", "secret": "mlctl-s3"} in written
    return written


@pytest.fixture(scope="module")
def trained(sandbox, secrets, tmp_path_factory):
    """A 3-epoch trainer run of alice's job at s3://mlctl-outputs/alice/<job>/<run>/."""
    from mlctl.sandbox import images
    from mlctl.storage.layout import new_run_id

    image = images.ensure("3dgan")
    job, run = f"gan-{uuid.uuid4().hex[:8]}", new_run_id()
    tmp = tmp_path_factory.mktemp("trainer")
    env = trainer_env(sandbox, tmp, "alice", EPOCHS=str(EPOCHS), SAMPLES="64",
                      OUTPUT_URL=f"s3://mlctl-outputs/alice/{job}/{run}/")
    proc = run_trainer(image, env)
    assert proc.returncode == 0, proc.stderr
    return {"job": job, "run": run, "prefix": f"alice/{job}/{run}/", "stdout": proc.stdout}


@pytest.fixture
def alice(sandbox, secrets, home, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(home / "kubeconfig"))
    r = mlctl("login", "--platform", str(sandbox.platform_file), "--password", "-u", "alice", "--no-kubeconfig",
              stdin="alice-pw\n")
    assert r.code == 0, r.err
    return home


def subprocess_env(home: Path) -> dict:
    return {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache")}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            h.update(block)
    return h.hexdigest()


def s3_objects(sandbox, prefix: str) -> dict[str, str]:
    """key (relative) -> sha256 of the object, through an independent boto3 client."""
    s3 = client(sandbox, "alice")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="mlctl-outputs", Prefix=prefix)
            for o in page.get("Contents", [])]
    return {k[len(prefix):]: hashlib.sha256(s3.get_object(Bucket="mlctl-outputs", Key=k)["Body"].read()).hexdigest()
            for k in keys}


def big_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
    return path


def test_ls_lists_every_epochs_files_and_the_job(alice, trained):
    r = mlctl("artifacts", "ls", trained["job"], "-o", "json")
    assert r.code == 0, r.err
    paths = {o["path"] for o in json.loads(r.out)}
    want = {f"epoch-{n}/{net}.npz" for n in range(1, EPOCHS + 1) for net in ("generator", "discriminator")}
    assert want | {"metrics.jsonl", "model/generator.npz", "model/model.json"} <= paths
    assert {o["run"] for o in json.loads(r.out)} == {trained["run"]}

    jobs = mlctl("artifacts", "ls", "-o", "json")
    assert jobs.code == 0, jobs.err
    mine = [j for j in json.loads(jobs.out) if j["job"] == trained["job"]]
    assert mine and mine[0]["latest"] == trained["run"]
    one = mlctl("artifacts", "ls", f"{trained['job']}/epoch-2", "-o", "name")
    assert one.out.split() == [f"{trained['job']}/epoch-2/discriminator.npz", f"{trained['job']}/epoch-2/generator.npz"]


def test_get_of_the_whole_job_is_byte_identical_including_a_multipart_file(sandbox, alice, trained, tmp_path):
    big = big_file(tmp_path / "big.bin", 20 * MiB)
    put = mlctl("artifacts", "put", trained["job"], str(big))
    assert put.code == 0, put.err
    r = mlctl("artifacts", "get", trained["job"], "-d", str(tmp_path / "out"))
    assert r.code == 0, r.err
    remote = s3_objects(sandbox, trained["prefix"])
    local = {p.relative_to(tmp_path / "out").as_posix(): sha256(p) for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert local == remote
    assert local["big.bin"] == sha256(big)
    # put went through multipart (an ETag of <md5>-<parts>): the check then rests on the size
    head = client(sandbox, "alice").head_object(Bucket="mlctl-outputs", Key=trained["prefix"] + "big.bin")
    assert head["ETag"].strip('"').endswith("-3")


def test_a_presigned_url_works_with_urllib_and_is_refused_after_it_expires(sandbox, alice, trained):
    r = mlctl("artifacts", "url", trained["job"], "metrics.jsonl", "--expires", "2s")
    assert r.code == 0, r.err
    url = r.out.strip()
    ctx = ssl.create_default_context(cafile=str(sandbox.root / "pki" / "ca.crt"))
    body = urllib.request.urlopen(url, context=ctx, timeout=10).read()
    assert body == client(sandbox, "alice").get_object(Bucket="mlctl-outputs",
                                                       Key=trained["prefix"] + "metrics.jsonl")["Body"].read()

    def refused():
        try:
            urllib.request.urlopen(url, context=ctx, timeout=10).read()
        except urllib.error.HTTPError as e:
            return e.code
        return None

    assert wait_for(refused, 30, "the presigned URL to expire") == 403


def test_metrics_prints_the_trainers_losses(sandbox, alice, trained):
    body = client(sandbox, "alice").get_object(Bucket="mlctl-outputs", Key=trained["prefix"] + "metrics.jsonl")
    want = [json.loads(line) for line in body["Body"].read().decode().splitlines()]
    r = mlctl("artifacts", "metrics", trained["job"], "-o", "json")
    assert r.code == 0, r.err
    assert json.loads(r.out) == want and len(want) == EPOCHS
    table = mlctl("artifacts", "metrics", trained["job"])
    assert table.code == 0, table.err
    for m in want:
        assert f"{m['loss_g']:.4f}" in table.out and f"{m['loss_d']:.4f}" in table.out
        # and what the trainer printed
        assert f"epoch {m['epoch']}/{EPOCHS} loss_g={m['loss_g']:.3f} loss_d={m['loss_d']:.3f}" in trained["stdout"]
    assert "loss_g (epoch 1-3)" in table.out and "loss_d (epoch 1-3)" in table.out


def test_ctrl_c_leaves_no_final_file_and_a_second_get_resumes(sandbox, alice, trained, tmp_path):
    big = big_file(tmp_path / "huge.bin", 256 * MiB)
    put = mlctl("artifacts", "put", trained["job"], str(big), "--to", "ctrlc")
    assert put.code == 0, put.err
    out = tmp_path / "out"
    proc = subprocess.Popen([MLCTL, "artifacts", "get", trained["job"], "ctrlc/huge.bin", "-d", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(alice),
                            stdin=subprocess.DEVNULL)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "huge.bin: started" in line:
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, "".join(seen) + rest
    final = out / "ctrlc" / "huge.bin"
    assert not final.exists()
    assert (out / "ctrlc" / "huge.bin.part").exists()

    again = mlctl("artifacts", "get", trained["job"], "ctrlc/huge.bin", "-d", str(out))
    assert again.code == 0, again.err
    assert "resumed 1 interrupted download(s)" in again.err
    assert sha256(final) == sha256(big)
    assert not (out / "ctrlc" / "huge.bin.part").exists() and not (out / "ctrlc" / "huge.bin.part.json").exists()
    rm = mlctl("artifacts", "rm", trained["job"], "ctrlc/")
    assert rm.code == 2 and "pass --yes" in rm.err  # no terminal: refuses without --yes
    rm = mlctl("artifacts", "rm", trained["job"], "ctrlc/", "--yes")
    assert rm.code == 0, rm.err
    assert not [k for k in s3_objects(sandbox, trained["prefix"]) if k.startswith("ctrlc/")]


def test_alice_cannot_list_bobs_job(alice, trained):
    r = mlctl("artifacts", "ls", trained["job"], "--user", "bob")
    assert r.code == 5, r.err
    assert r.err.splitlines()[0] == f"error: S3 refused listing the runs of job {trained['job']}: access denied"


def test_credentials_are_never_printed_or_logged(sandbox, alice, trained, tmp_path):
    from mlctl.sandbox import s3

    secret = s3.user_credentials(sandbox.root, "alice")[1]
    forms = {secret, base64.b64encode(secret.encode()).decode()}
    runs = [("artifacts", "ls", trained["job"], "--debug"), ("artifacts", "ls", "-v", "-o", "yaml"),
            ("artifacts", "get", trained["job"], "metrics.jsonl", "-d", str(tmp_path), "--debug"),
            ("artifacts", "metrics", trained["job"], "-vv"), ("artifacts", "ls", "nosuchjob", "--debug")]
    for args in runs:
        r = mlctl(*args)
        assert r.code in (0, 4), r.err
        assert not [f for f in forms if f in r.out + r.err], f"{args} printed the S3 secret"
    assert "debug:" in mlctl(*runs[0]).err  # the debug log did run


def test_s3_stopped_is_one_clear_line_and_exit_7(sandbox, alice, trained, monkeypatch):
    from mlctl.sandbox import s3

    state = sandbox.state
    s3.stop(state)
    try:
        r = mlctl("artifacts", "ls", trained["job"])
        assert r.code == 7, r.err
        lines = r.err.splitlines()
        assert lines[0].startswith("error: S3 at https://127.0.0.1:") and "unavailable" in lines[0]
        assert len(lines) == 2 and lines[1].startswith("hint: ")
    finally:
        monkeypatch.setenv("MLCTL_CACHE_DIR", BINARIES_CACHE)  # restart with the cached binary, not a fresh build
        s3.start(sandbox.state)
    assert mlctl("artifacts", "ls", trained["job"]).code == 0


def test_a_hung_s3_server_is_exit_7_within_15_s(sandbox, alice, trained):
    from mlctl.sandbox import s3

    pid = sandbox.state.data["processes"][s3.PROCESS]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        proc = subprocess.run([MLCTL, "artifacts", "ls", trained["job"]], capture_output=True, text=True,
                              timeout=15, env=subprocess_env(alice), stdin=subprocess.DEVNULL)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert proc.returncode == 7, proc.stderr
    assert "timed out" in proc.stderr.splitlines()[0]
