"""Pods that really run (the pod runner), the gateway and the kserve model server, in the sandbox
(docs/workloads.md).

Every job here uses the sandbox's own images: the 3dgan trainer (`mlctl.sandbox/3dgan:1`, chosen in the spec
with `--set image=...`) and KServe's model server (`mlctl.sandbox/kserve:1`).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import struct
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.conftest import mlctl
from tests.integration.test_train import bob, tenants  # noqa: F401 - fixtures: bob logged in, admin sync done

pytestmark = pytest.mark.integration

TRAINER = "mlctl.sandbox/3dgan:1"
SERVER = "mlctl.sandbox/kserve:1"
SLEEPER = ["python", "-c", "import time; time.sleep(3600)"]


# ---- helpers ---------------------------------------------------------------------------------------------

def s3_secret(sandbox, namespace: str, user: str) -> None:
    """The Secret mlctl-s3 with user's S3 credentials (what `mlctl admin sync` is to write one day)."""
    from mlctl.sandbox import s3

    sandbox.kube().create(s3.user_secret_object(namespace, *s3.user_credentials(sandbox.root, user)))


def s3_client(sandbox, user: str):
    import boto3
    from botocore.config import Config

    from mlctl.sandbox import s3

    access_key, secret = s3.user_credentials(sandbox.root, user)
    part = sandbox.platform["s3"]
    return boto3.client("s3", endpoint_url=part["endpoint"], region_name=part["region"],
                        aws_access_key_id=access_key, aws_secret_access_key=secret,
                        verify=s3.info(sandbox.state)["ca_file"],
                        config=Config(request_checksum_calculation="when_required"))


def tfjob(sandbox, namespace: str, output: str, *, workers: int = 3, restart: str = "ExitCode",
          env: dict | None = None) -> dict:
    """A TFJob rendered by mlctl from a job spec whose image is set to the real trainer with --set."""
    import yaml

    from mlctl.jobs.render import render
    from mlctl.jobs.spec import load_spec

    name = f"g{uuid.uuid4().hex[:8]}"
    text = yaml.safe_dump({
        "apiVersion": "mlctl.io/v1alpha1", "kind": "TrainingJob", "name": name, "framework": "tensorflow",
        "image": "registry.example.org/ml/3dgan:1", "workers": workers, "restartPolicy": restart,
        "resources": {"gpus": 0, "cpu": "1", "memory": "2Gi", "pool": "cpu"},
        "output": {"url": output},
        "env": {"SAMPLES": "64", **(env or {})},
    })
    spec = load_spec(text, f"{name}.yaml", sets=[f"image={TRAINER}"])
    platform = sandbox.platform
    cluster = next(c for c in platform["clusters"] if c["name"] == "local")
    [job] = render(spec, cluster, user="alice", namespace=namespace, s3=platform["s3"])
    return sandbox.kube().create(job)


def job_condition(sandbox, namespace: str, name: str) -> str | None:
    """The TFJob's latest condition that is True (Created, Running, Restarting, Succeeded, Failed)."""
    job = sandbox.kube().get("TFJob", name, namespace)
    true = [c["type"] for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
    return true[-1] if true else None


def job_pods(sandbox, namespace: str, name: str) -> dict[str, dict]:
    """{"chief-0": pod, "worker-1": pod, ...}."""
    pods = sandbox.kube().list("Pod", namespace, selector=f"training.kubeflow.org/job-name={name}")
    return {"{}-{}".format(p["metadata"]["labels"]["training.kubeflow.org/replica-type"],
                           p["metadata"]["labels"]["training.kubeflow.org/replica-index"]): p for p in pods}


def container(pod: dict) -> dict:
    return ((pod.get("status") or {}).get("containerStatuses") or [{}])[0]


def pid_of(pod: dict) -> int | None:
    """The process of a running real pod (its containerID is mlctl://<pid>)."""
    cid = container(pod).get("containerID") or ""
    running = "running" in (container(pod).get("state") or {})
    return int(cid.removeprefix("mlctl://")) if running and cid.startswith("mlctl://") else None


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def plain_pod(name: str, command: list[str], image: str = TRAINER, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
                     "containers": [{"name": "main", "image": image, "command": command,
                                     "resources": {"limits": {"memory": "1Gi"}}}], **spec}}


def phase(sandbox, namespace: str, name: str) -> str | None:
    pod = sandbox.kube().find("Pod", name, namespace)
    return (pod.get("status") or {}).get("phase") if pod else None


# ---- the trainer as a TFJob ------------------------------------------------------------------------------

def test_a_tfjob_of_the_trainer_runs_for_real_logs_and_writes_every_epoch(sandbox, namespace):
    ns = namespace()
    s3_secret(sandbox, ns, "alice")
    prefix = f"alice/{uuid.uuid4().hex[:8]}/"
    job = tfjob(sandbox, ns, f"s3://mlctl-outputs/{prefix}", env={"EPOCHS": "3"})
    name = job["metadata"]["name"]
    sandbox.wait_for(lambda: job_condition(sandbox, ns, name) in ("Succeeded", "Failed"), 240,
                     f"tfjob {name} to finish")
    assert job_condition(sandbox, ns, name) == "Succeeded"

    pods = job_pods(sandbox, ns, name)
    assert sorted(pods) == ["chief-0", "worker-0", "worker-1"]
    ips = {p["status"]["podIP"] for p in pods.values()}
    assert len(ips) == 3 and all(ip.startswith("127.") and ip != "127.0.0.1" for ip in ips)
    for pod in pods.values():
        assert pod["status"]["phase"] == "Succeeded"
        assert container(pod)["state"]["terminated"]["exitCode"] == 0

    chief = pods["chief-0"]["metadata"]["name"]
    out = sandbox.kubectl("logs", "-n", ns, chief).stdout.splitlines()
    assert out[0].startswith("3dgan chief:0 of 3 replica(s)"), out
    assert [line.split()[1] for line in out if line.startswith("epoch ")] == ["1/3", "2/3", "3/3"]
    assert out[-1] == "training finished"
    worker = pods["worker-1"]["metadata"]["name"]
    assert sandbox.kubectl("logs", "-n", ns, worker).stdout.startswith("3dgan worker:1 of 3 replica(s)")

    alice = s3_client(sandbox, "alice")
    keys = {o["Key"][len(prefix):] for o in alice.list_objects_v2(Bucket="mlctl-outputs", Prefix=prefix)["Contents"]}
    want = {f"epoch-{n}/{net}.npz" for n in (1, 2, 3) for net in ("generator", "discriminator")}
    assert keys == want | {"metrics.jsonl", "model/generator.npz", "model/model.json"}
    metrics = alice.get_object(Bucket="mlctl-outputs", Key=prefix + "metrics.jsonl")["Body"].read().decode()
    assert [json.loads(line)["epoch"] for line in metrics.splitlines()] == [1, 2, 3]


def test_a_killed_worker_restarts_in_place_and_the_job_succeeds(sandbox, namespace):
    ns = namespace()
    s3_secret(sandbox, ns, "alice")
    job = tfjob(sandbox, ns, f"s3://mlctl-outputs/alice/{uuid.uuid4().hex[:8]}/", restart="OnFailure",
                env={"EPOCHS": "12"})
    name = job["metadata"]["name"]
    worker = sandbox.wait_for(lambda: (lambda p: p if p and pid_of(p) else None)(
        job_pods(sandbox, ns, name).get("worker-0")), 120, "worker 0 to run")
    pid = pid_of(worker)
    # mid-run: once it has trained an epoch
    sandbox.wait_for(lambda: "epoch 1/" in sandbox.kubectl("logs", "-n", ns, worker["metadata"]["name"]).stdout,
                     60, "worker 0's first epoch")
    os.kill(pid, 9)

    def restarted():
        pod = job_pods(sandbox, ns, name)["worker-0"]
        return pod if container(pod).get("restartCount", 0) >= 1 else None

    pod = sandbox.wait_for(restarted, 60, "worker 0 to restart")
    assert container(pod)["lastState"]["terminated"]["exitCode"] == 137
    assert pod["metadata"]["uid"] == worker["metadata"]["uid"]  # in place: the same pod
    assert pod["status"]["podIP"] == worker["status"]["podIP"]
    # kwok reads the pod's Logs object from its informer: poll until it has the new one
    previous = sandbox.wait_for(lambda: sandbox.kubectl("logs", "--previous", "-n", ns, pod["metadata"]["name"],
                                                        check=False).stdout, 30, "the previous run's logs")
    assert previous.startswith("3dgan worker:0 of 3 replica(s)") and "epoch 1/12" in previous
    sandbox.wait_for(lambda: job_condition(sandbox, ns, name) in ("Succeeded", "Failed"), 240,
                     f"tfjob {name} to finish")
    assert job_condition(sandbox, ns, name) == "Succeeded"
    assert not alive(pid)


def test_deleting_a_running_job_ends_its_processes_and_removes_its_pods(sandbox, namespace):
    ns = namespace()
    s3_secret(sandbox, ns, "alice")
    job = tfjob(sandbox, ns, f"s3://mlctl-outputs/alice/{uuid.uuid4().hex[:8]}/", env={"EPOCHS": "1000"})
    name = job["metadata"]["name"]

    def all_running():
        pods = job_pods(sandbox, ns, name)
        pids = [pid_of(p) for p in pods.values()]
        return pids if len(pids) == 3 and all(pids) else None

    pids = sandbox.wait_for(all_running, 120, "the job's three processes")
    assert all(alive(p) for p in pids)
    sandbox.kube().delete("TFJob", name, ns)
    sandbox.wait_for(lambda: not job_pods(sandbox, ns, name), 90, "the job's pods to go away")
    assert not [p for p in pids if alive(p)]


def test_mlctl_train_with_the_real_image_follows_the_trainers_own_output(bob, sandbox, tmp_path):  # noqa: F811
    """bob's `mlctl train SPEC --set image=mlctl.sandbox/3dgan:1 --follow`: his job really trains."""
    import yaml

    from mlctl.sandbox import s3

    sandbox.kube().apply(s3.user_secret_object("u-bob", *s3.user_credentials(sandbox.root, "bob")),
                         "mlctl-tests", force=True)
    name, prefix = f"r{uuid.uuid4().hex[:8]}", f"bob/{uuid.uuid4().hex[:8]}/"
    path = tmp_path / "3dgan.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "framework": "tensorflow", "image": "registry.example.org/ml/3dgan:1", "workers": 2,
        "resources": {"gpus": 0, "cpu": "1", "memory": "2Gi", "pool": "cpu"},
        "output": f"s3://mlctl-outputs/{prefix}",
        "env": {"EPOCHS": "2", "SAMPLES": "64"}}))
    r = mlctl("train", str(path), "--cluster", "local", "--set", f"image={TRAINER}", "--follow", "--timeout", "180")
    assert r.code == 0, r.err
    assert f"tfjob/{name} succeeded" in r.err
    lines = r.out.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"], r.out
    assert "3dgan chief:0 of 2 replica(s)" in r.out and lines[-1] == "training finished"
    listed = s3_client(sandbox, "bob").list_objects_v2(Bucket="mlctl-outputs", Prefix=prefix + "model/")
    assert {o["Key"][len(prefix):] for o in listed["Contents"]} == {"model/generator.npz", "model/model.json"}


# ---- the bound -------------------------------------------------------------------------------------------

def test_the_example_3dgan_spec_runs_unchanged_with_the_real_image(bob, sandbox):  # noqa: F811
    """examples/3dgan.yaml as the physicists wrote it (its own `python -m gan3d.train --epochs 30 ...`), with the
    sandbox's image, a chief and 2 workers sized to bob's quota, and the outputs in his prefix."""
    from mlctl.sandbox import s3
    from tests.conftest import REPO

    sandbox.kube().apply(s3.user_secret_object("u-bob", *s3.user_credentials(sandbox.root, "bob")),
                         "mlctl-tests", force=True)
    prefix = f"bob/{uuid.uuid4().hex[:8]}/"
    mlctl("train", "delete", "gan3d", "--cluster", "local", "--yes")
    try:
        r = mlctl("train", str(REPO / "examples" / "3dgan.yaml"), "--cluster", "local", "--set", f"image={TRAINER}",
                  "--set", "workers=3", "--set", "resources.gpus=1", "--set", "resources.cpu=1",
                  "--set", "resources.memory=2Gi", "--set", f"output=s3://mlctl-outputs/{prefix}",
                  "--set", "env.SAMPLES=64", "--follow", "--timeout", "240")
        assert r.code == 0, r.err
        epochs = [line.split()[1] for line in r.out.splitlines() if line.startswith("epoch ")]
        assert epochs == [f"{n}/30" for n in range(1, 31)], r.out
        assert "strategy multi-worker-mirrored" in r.out and "3dgan chief:0 of 3 replica(s)" in r.out
        listed = s3_client(sandbox, "bob").list_objects_v2(Bucket="mlctl-outputs", Prefix=prefix)
        keys = {o["Key"][len(prefix):] for o in listed.get("Contents", [])}
        assert {f"epoch-{n}/generator.npz" for n in range(1, 31)} <= keys
        assert {"metrics.jsonl", "model/generator.npz", "model/model.json"} <= keys
    finally:
        mlctl("train", "delete", "gan3d", "--cluster", "local", "--yes")


def test_pods_beyond_the_bound_stay_pending_with_an_event(sandbox, namespace):
    """The runner's bound counts every real pod of the sandbox: those already running elsewhere (the model
    server `make demo` leaves serving, say) hold their slots, and this test fills only the free ones."""
    from mlctl.sandbox import pods as real

    ns = namespace()
    cfg = real.info(sandbox.root)
    busy = sum(1 for cluster in cfg["clusters"] for pod in sandbox.kube(cluster).list("Pod")
               if (pod.get("status") or {}).get("phase") == "Running"
               and pod["spec"]["containers"][0].get("image") in cfg["images"])
    bound = cfg["maxPods"] - busy
    assert bound >= 1, f"all {cfg['maxPods']} real pods of the sandbox are taken by other pods"
    names = [f"p{i}" for i in range(bound + 2)]
    for name in names:
        sandbox.kube().create({**plain_pod(name, SLEEPER), "metadata": {"name": name, "namespace": ns}})

    def split():
        phases = {n: phase(sandbox, ns, n) for n in names}
        running = [n for n, p in phases.items() if p == "Running"]
        pending = [n for n, p in phases.items() if p == "Pending"]
        limited = {e["involvedObject"]["name"] for e in sandbox.kube().events(ns) if e["reason"] == "RealPodLimit"}
        return (running, pending) if len(running) == bound and set(pending) == limited and len(pending) == 2 \
            else None

    running, pending = sandbox.wait_for(split, 120, f"{bound} running and 2 pending pods")
    [event] = [e for e in sandbox.kube().events(ns, {pending[0]}) if e["reason"] == "RealPodLimit"]
    assert f"at most {cfg['maxPods']} real pods" in event["message"]

    sandbox.kube().delete("Pod", running[0], ns)
    sandbox.wait_for(lambda: phase(sandbox, ns, pending[0]) == "Running" or phase(sandbox, ns, pending[1]) ==
                     "Running", 60, "a pending pod to start when a slot is free")
    sandbox.kube().delete_collection("Pod", ns)
    sandbox.wait_for(lambda: not sandbox.kube().list("Pod", ns), 60, "the pods to go away")


# ---- the model server through the gateway ----------------------------------------------------------------

def user_token(sandbox, tmp_path: Path, user: str) -> str:
    """An access token of user for audience local (mlctl login + mlctl token, in a config of its own)."""
    env = {"XDG_CONFIG_HOME": str(tmp_path / user / "config"), "XDG_CACHE_HOME": str(tmp_path / user / "cache"),
           "KUBECONFIG": str(tmp_path / user / "kubeconfig")}
    r = mlctl("login", "--platform", str(sandbox.platform_file), "--password", "-u", user, "--no-kubeconfig",
              stdin=f"{user}-pw\n", env=env)
    assert r.code == 0, r.err
    r = mlctl("token", "--cluster", "local", env=env)
    assert r.code == 0, r.err
    return json.loads(r.out)["status"]["token"]


class Gateway:
    def __init__(self, sandbox, tmp_path: Path):
        part = sandbox.platform["gateway"]
        url = part["url"]
        self.host, self.port = url.removeprefix("https://").split(":")
        ca = tmp_path / "gateway-ca.crt"
        ca.write_bytes(base64.b64decode(part["certificateAuthorityData"]))
        self.ctx = ssl.create_default_context(cafile=str(ca))

    def call(self, method: str, path: str, body: dict | None = None, token: str | None = None):
        conn = http.client.HTTPSConnection(self.host, int(self.port), context=self.ctx, timeout=60)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw) if raw.startswith((b"{", b"[")) else raw
        finally:
            conn.close()


def floats(archive: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """A little-endian float32 .npy member as (shape, values in C order), without numpy."""
    import ast

    with archive.open(name + ".npy") as f:
        head = f.read(10)
        size = int.from_bytes(head[8:10], "little")
        header = ast.literal_eval(f.read(size).decode("latin1"))
        assert header["descr"] == "<f4" and not header["fortran_order"]
        data = f.read()
    return tuple(header["shape"]), struct.unpack(f"<{len(data) // 4}f", data)


def expected_voxel(arrays: dict, noise: list[float], energy: float, voxel: int) -> float:
    """One voxel of the generator's output in GeV, by hand (docs/storage.md's formula)."""
    import math

    (n_in, hidden), w1 = arrays["W1"]
    b1, w2, b2 = arrays["b1"][1], arrays["W2"][1], arrays["b2"][1]
    voxels = arrays["W2"][0][1]
    inp = [*noise, energy / 100]
    h = [sum(inp[i] * w1[i * hidden + j] for i in range(n_in)) + b1[j] for j in range(hidden)]
    h = [v if v > 0 else 0.2 * v for v in h]
    pre = sum(h[j] * w2[j * voxels + voxel] for j in range(hidden)) + b2[voxel]
    return math.log1p(math.exp(pre)) * energy / 100


@pytest.fixture(scope="module")
def trained_model(sandbox, tmp_path_factory):
    """A 3dgan model trained by a real single-replica pod in alice's prefix: (s3 URI, {array: (shape, data)})."""
    ns = f"t-model-{uuid.uuid4().hex[:6]}"
    kube = sandbox.kube()
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        sandbox.wait_for(lambda: kube.find("ServiceAccount", "default", ns), 30, "the default service account")
        s3_secret(sandbox, ns, "alice")
        prefix = f"alice/{uuid.uuid4().hex[:8]}/"
        pod = plain_pod("train", ["python", "trainer.py"])
        pod["metadata"]["namespace"] = ns
        pod["spec"]["containers"][0].update(
            env=[{"name": "OUTPUT_URL", "value": f"s3://mlctl-outputs/{prefix}"}, {"name": "EPOCHS", "value": "2"},
                 {"name": "SAMPLES", "value": "64"},
                 {"name": "AWS_ENDPOINT_URL", "value": sandbox.platform["s3"]["endpoint"]}],
            envFrom=[{"secretRef": {"name": "mlctl-s3"}}])
        kube.create(pod)
        sandbox.wait_for(lambda: phase(sandbox, ns, "train") in ("Succeeded", "Failed"), 180, "the trainer pod")
        assert phase(sandbox, ns, "train") == "Succeeded", sandbox.kubectl("logs", "-n", ns, "train").stdout
    finally:
        kube.delete("Namespace", ns)
    raw = s3_client(sandbox, "alice").get_object(Bucket="mlctl-outputs", Key=prefix + "model/generator.npz")
    path = tmp_path_factory.mktemp("model") / "generator.npz"
    path.write_bytes(raw["Body"].read())
    with zipfile.ZipFile(path) as archive:
        arrays = {k: floats(archive, k) for k in ("W1", "b1", "W2", "b2")}
    return f"s3://mlctl-outputs/{prefix}model/", arrays


def test_the_model_server_answers_v1_and_v2_through_the_gateway_for_its_owner_only(
        sandbox, namespace, trained_model, tmp_path):
    uri, arrays = trained_model
    ns = namespace()
    sandbox.kube().patch("Namespace", ns, {"metadata": {"annotations": {"mlctl.io/owner-username": "alice"}}})
    s3_secret(sandbox, ns, "alice")
    pod = plain_pod("gen", [], image=SERVER)
    main = pod["spec"]["containers"][0]
    del main["command"]
    main.update(args=["--model_name=gen3d", "--http_port=8080"], ports=[{"name": "http", "containerPort": 8080}],
                env=[{"name": "STORAGE_URI", "value": uri},
                     {"name": "AWS_ENDPOINT_URL", "value": sandbox.platform["s3"]["endpoint"]}],
                envFrom=[{"secretRef": {"name": "mlctl-s3"}}],
                readinessProbe={"httpGet": {"path": "/v2/models/gen3d/ready", "port": "http"}},
                resources={"limits": {"memory": "4Gi"}})
    pod["metadata"]["namespace"] = ns
    sandbox.kube().create(pod)
    sandbox.kube().create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gen3d", "namespace": ns},
                           "spec": {"selector": {"app": "gen"}, "ports": [{"port": 80, "targetPort": "http"}]}})

    def ready():
        p = sandbox.kube().get("Pod", "gen", ns)
        if (p.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
            pytest.fail(f"the model server exited: {sandbox.kubectl('logs', '-n', ns, 'gen').stdout[-2000:]}")
        return any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])

    sandbox.wait_for(ready, 180, "the model server to be ready")
    gateway = Gateway(sandbox, tmp_path)
    alice, bobs = user_token(sandbox, tmp_path, "alice"), user_token(sandbox, tmp_path, "bob")
    noise = [round(0.1 * ((i * 7) % 11 - 5), 3) for i in range(16)]

    status, v1 = gateway.call("POST", f"/serve/{ns}/gen3d/v1/models/gen3d:predict",
                              {"instances": [{"noise": noise, "energy": 50.0}]}, alice)
    assert status == 200, v1
    [shower] = v1["predictions"]
    assert (len(shower), len(shower[0]), len(shower[0][0])) == (25, 25, 25)
    status, v2 = gateway.call("POST", f"/serve/{ns}/gen3d/v2/models/gen3d/infer", {"inputs": [
        {"name": "noise", "shape": [1, 16], "datatype": "FP32", "data": noise},
        {"name": "energy", "shape": [1], "datatype": "FP32", "data": [50.0]}]}, alice)
    assert status == 200, v2
    [out] = v2["outputs"]
    assert (out["name"], out["shape"], out["datatype"]) == ("showers", [1, 25, 25, 25], "FP32")
    flat = [v for plane in shower for row in plane for v in row]
    for voxel in (0, 312, 6200, 15624):
        want = expected_voxel(arrays, noise, 50.0, voxel)
        assert flat[voxel] == pytest.approx(want, rel=1e-3, abs=1e-6)
        assert out["data"][voxel] == pytest.approx(want, rel=1e-3, abs=1e-6)

    status, body = gateway.call("POST", f"/serve/{ns}/gen3d/v1/models/gen3d:predict", {"instances": []})
    assert status == 401
    status, body = gateway.call("POST", f"/serve/{ns}/gen3d/v1/models/gen3d:predict",
                                {"instances": [{"noise": noise, "energy": 50.0}]}, bobs)
    assert status == 403, body
    status, body = gateway.call("POST", f"/serve/{ns}/gen3d/v1/models/gen3d:predict",
                                {"instances": [{"noise": noise, "energy": 50.0}]}, alice[:-4] + "AAAA")
    assert status == 401

    # shared with a group bob is in: now he gets through
    sandbox.kube().patch("Service", "gen3d", {"metadata": {"annotations": {"mlctl.io/shared-with": "gpu-power-users"}}},
                         ns)
    sandbox.wait_for(lambda: gateway.call("GET", f"/serve/{ns}/gen3d/v2/models/gen3d", token=bobs)[0] == 200, 30,
                     "bob to be let through once the service is shared with his group")


# ---- sandbox down ----------------------------------------------------------------------------------------

def test_sandbox_down_leaves_no_runner_and_no_pod_process(sandbox, namespace):
    """Last in this file: it stops the whole sandbox, then brings it up again for the tests after it."""
    from mlctl.sandbox import pods as real
    from mlctl.sandbox import runner

    ns = namespace()
    sandbox.kube().create({**plain_pod("sleeper", SLEEPER), "metadata": {"name": "sleeper", "namespace": ns}})
    pod = sandbox.wait_for(lambda: (lambda p: p if p and pid_of(p) else None)(
        sandbox.kube().find("Pod", "sleeper", ns)), 60, "the sleeper to run")
    pid = pid_of(pod)
    runner_pid = sandbox.state.data["processes"][real.PROCESS]["pid"]
    assert alive(pid) and alive(runner_pid)
    try:
        stopped = runner.down(sandbox.root)
        assert real.PROCESS in stopped and "gateway" in stopped
        assert not alive(pid) and not alive(runner_pid)
    finally:
        sandbox.close()
        runner.up(sandbox.root)
