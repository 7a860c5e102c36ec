"""mlctl serve against the sandbox: KServe's real controller (RawDeployment), the sandbox's model server
loading the generator a real training run wrote, the gateway with Keycloak tokens, and the HPA acting on the
model server's real CPU (docs/serve.md).

One service for the module (created from a 3dgan job that the real trainer image runs first), so the model
is trained and loaded once; the load test at the end is the long one (90 s of load, then the scale-down).
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import uuid
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import mlctl
from tests.integration.test_train import tenants  # noqa: F401 - fixture: admin sync done
from tests.integration.test_workloads_sandbox import expected_voxel, floats, s3_client

pytestmark = pytest.mark.integration

NOISE = [round(0.1 * ((i * 7) % 11 - 5), 3) for i in range(16)]


def _env(home: Path) -> dict:
    return {"XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"),
            "KUBECONFIG": str(home / "kubeconfig")}


def login(sandbox, home: Path, user: str) -> dict:
    env = _env(home)
    r = mlctl("login", "--platform", str(sandbox.platform_file), "--password", "-u", user, "--no-kubeconfig",
              stdin=f"{user}-pw\n", env=env)
    assert r.code == 0, r.err
    return env


@pytest.fixture(scope="module")
def served(sandbox, tenants, tmp_path_factory):  # noqa: F811
    """bob's InferenceService (min 1, max 4, CPU target 50% of 250m) of the model his 3dgan job just wrote."""
    from mlctl.sandbox import s3

    if not sandbox.state.is_running("kserve-controller"):
        from tests.integration.support import unavailable

        unavailable("the sandbox runs no KServe controller (component kserve)")
    sandbox.kube().apply(s3.user_secret_object("u-bob", *s3.user_credentials(sandbox.root, "bob")),
                         "mlctl-tests", force=True)
    home = tmp_path_factory.mktemp("bob-serve")
    env = login(sandbox, home, "bob")
    job, name = f"gan{uuid.uuid4().hex[:6]}", f"gen{uuid.uuid4().hex[:6]}"
    spec = home / "gan.yaml"
    spec.write_text(yaml.safe_dump({"name": job, "framework": "tensorflow", "image": "mlctl.sandbox/3dgan:1",
                                    "workers": 1, "env": {"EPOCHS": 2, "SAMPLES": 32},
                                    "resources": {"gpus": 0, "cpu": "1", "memory": "2Gi", "pool": "cpu"}}))
    r = mlctl("train", str(spec), "--cluster", "local", "--wait", "--timeout", "240", env=env)
    assert r.code == 0, r.err
    # a quarter CPU per replica: the sandbox's two shared cores give one model server well under a whole
    # CPU, so a target relative to a 1-CPU request would never be reached
    r = mlctl("serve", "create", name, "--model", job, "--min-replicas", "1", "--max-replicas", "4",
              "--cpu", "250m", "--target-utilization", "50", "--wait", "--timeout", "240", "-o", "json", env=env)
    assert r.code == 0, r.err
    created = json.loads(r.out)
    data = home / "v1.json"
    data.write_text(json.dumps({"instances": [{"noise": NOISE, "energy": 50.0}]}))
    v2 = home / "v2.json"
    v2.write_text(json.dumps({"inputs": [
        {"name": "noise", "shape": [1, 16], "datatype": "FP32", "data": NOISE},
        {"name": "energy", "shape": [1], "datatype": "FP32", "data": [50.0]}]}))
    yield {"env": env, "home": home, "job": job, "name": name, "isvc": created, "v1": data, "v2": v2}
    mlctl("serve", "delete", name, "--yes", env=env)
    mlctl("train", "delete", job, "--cluster", "local", "--yes", env=env)


def test_kserve_made_the_predictor_with_the_requested_bounds(sandbox, served):
    name = served["name"]
    uri = served["isvc"]["spec"]["predictor"]["model"]["storageUri"]
    assert uri.startswith(f"s3://mlctl-outputs/bob/{served['job']}/") and uri.endswith("/model/")
    kube = sandbox.kube()
    deployment = kube.get("Deployment", f"{name}-predictor", "u-bob")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "mlctl.sandbox/kserve:1"
    assert kube.get("Service", f"{name}-predictor", "u-bob")["spec"]["ports"]
    hpa = kube.get("HorizontalPodAutoscaler", f"{name}-predictor", "u-bob")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 4)
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 50
    status = json.loads(mlctl("serve", "status", name, "-o", "json", env=served["env"]).out)
    assert status["state"] == "Ready" and status["replicas"]["ready"] >= 1
    listed = mlctl("serve", "list", "-o", "name", env=served["env"])
    assert f"inferenceservice/{name}" in listed.out.splitlines()


def test_predict_returns_the_real_generators_output_over_v1_and_v2(sandbox, served):
    name, env = served["name"], served["env"]
    r1 = mlctl("serve", "predict", name, "--data", str(served["v1"]), "-v", env=env)
    assert r1.code == 0, r1.err
    assert "HTTP 200" in r1.err and " ms" in r1.err  # the latency line of -v
    [shower] = json.loads(r1.out)["predictions"]
    assert (len(shower), len(shower[0]), len(shower[0][0])) == (25, 25, 25)
    r2 = mlctl("serve", "predict", name, "--data", str(served["v2"]), "--protocol", "v2", env=env)
    assert r2.code == 0, r2.err
    [out] = json.loads(r2.out)["outputs"]
    assert (out["name"], out["shape"]) == ("showers", [1, 25, 25, 25])
    # the generator's formula evaluated by hand on the arrays the training run wrote
    uri = served["isvc"]["spec"]["predictor"]["model"]["storageUri"]
    key = uri.removeprefix("s3://mlctl-outputs/") + "generator.npz"
    path = served["home"] / "generator.npz"
    s3_client(sandbox, "bob").download_file("mlctl-outputs", key, str(path))
    with zipfile.ZipFile(path) as archive:
        arrays = {k: floats(archive, k) for k in ("W1", "b1", "W2", "b2")}
    flat = [v for plane in shower for row in plane for v in row]
    for voxel in (0, 4321, 15624):
        want = expected_voxel(arrays, NOISE, 50.0, voxel)
        assert flat[voxel] == pytest.approx(want, rel=1e-3, abs=1e-6)
        assert out["data"][voxel] == pytest.approx(want, rel=1e-3, abs=1e-6)


def test_a_job_whose_spec_names_its_output_is_found_too(sandbox, served):
    """A spec with an explicit `output:` URL (as examples/3dgan.yaml has) writes outside the runs layout; its
    final model is still found from the job's own record of where it wrote."""
    env, home = served["env"], served["home"]
    job, prefix = f"out{uuid.uuid4().hex[:6]}", f"bob/explicit-{uuid.uuid4().hex[:6]}/"
    spec = home / "explicit.yaml"
    spec.write_text(yaml.safe_dump({"name": job, "framework": "tensorflow", "image": "mlctl.sandbox/3dgan:1",
                                    "workers": 1, "env": {"EPOCHS": 1, "SAMPLES": 16},
                                    "output": f"s3://mlctl-outputs/{prefix}",
                                    "resources": {"gpus": 0, "cpu": "1", "memory": "2Gi", "pool": "cpu"}}))
    try:
        r = mlctl("train", str(spec), "--cluster", "local", "--wait", "--timeout", "240", env=env)
        assert r.code == 0, r.err
        r = mlctl("serve", "create", "explicit", "--model", job, "--dry-run=client", "-o", "json", env=env)
        assert r.code == 0, r.err
        obj = json.loads(r.out)
        assert obj["spec"]["predictor"]["model"]["storageUri"] == f"s3://mlctl-outputs/{prefix}model/"
        assert obj["spec"]["predictor"]["model"]["modelFormat"]["name"] == "3dgan"  # from its model.json
        listed = mlctl("artifacts", "ls", job, "-o", "name", env=env)  # artifacts finds it there as well
        assert listed.code == 0 and f"{job}/model/model.json" in listed.out.splitlines(), listed.err
        every = mlctl("artifacts", "ls", "-o", "json", env=env)  # and among the jobs with outputs
        assert every.code == 0, every.err
        mine = [j for j in json.loads(every.out) if j["job"] == job]
        assert [j["url"] for j in mine] == [f"s3://mlctl-outputs/{prefix}"], every.out
    finally:
        mlctl("train", "delete", job, "--cluster", "local", "--yes", env=env)


def _one_line(r, code: int, words: str) -> None:
    assert r.code == code, (r.code, r.err)
    errors = [ln for ln in r.err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and words in errors[0], r.err
    assert "Traceback" not in r.err


def test_bad_input_gets_one_line_and_its_exit_code(served, tmp_path):
    env, name = served["env"], served["name"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"instances": [')
    _one_line(mlctl("serve", "predict", name, "--data", str(bad), env=env), 2, "malformed JSON")
    _one_line(mlctl("serve", "create", "other", "--model", "s3://mlctl-outputs/bob/no-such-model/", env=env), 4,
              "no model at s3://mlctl-outputs/bob/no-such-model/")
    _one_line(mlctl("serve", "create", "other", "--model", served["job"], "--framework", "caffe", env=env), 2,
              "unknown framework 'caffe'")
    _one_line(mlctl("serve", "create", "other", "--model", "no-such-job", env=env), 4, "no-such-job")
    _one_line(mlctl("serve", "predict", "no-such-service", "--data", str(served["v1"]), env=env), 4,
              "inferenceservice 'no-such-service' not found")
    _one_line(mlctl("serve", "status", "no-such-service", env=env), 4, "not found")
    # a model server's own refusal (the noise has the wrong length) is the user's input: exit 2
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"instances": [{"noise": [0.1], "energy": 50.0}]}))
    _one_line(mlctl("serve", "predict", name, "--data", str(short), env=env), 2, "answered 400")
    assert mlctl("serve", "list", env=env).code == 0
    assert "other" not in mlctl("serve", "list", "-o", "name", env=env).out  # nothing half-created


def test_carol_is_refused_and_a_request_without_a_token_gets_401(sandbox, served, tmp_path):
    name = served["name"]
    carol = login(sandbox, tmp_path / "carol", "carol")
    r = mlctl("serve", "predict", name, "-n", "u-bob", "--data", str(served["v1"]), env=carol)
    _one_line(r, 5, "forbidden")
    part = sandbox.platform["gateway"]
    host, port = part["url"].removeprefix("https://").split(":")
    ca = tmp_path / "ca.crt"
    ca.write_bytes(base64.b64decode(part["certificateAuthorityData"]))
    body = served["v1"].read_bytes()
    path = f"/serve/u-bob/{name}/v1/models/{name}:predict"

    def post(token: str | None) -> int:
        conn = http.client.HTTPSConnection(host, int(port), context=ssl.create_default_context(cafile=str(ca)),
                                           timeout=60)
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        conn.request("POST", path, body=body, headers=headers)
        status = conn.getresponse().status
        conn.close()
        return status

    assert post(None) == 401
    token = json.loads(mlctl("token", "--cluster", "local", env=carol).out)["status"]["token"]
    assert post(token) == 403  # the gateway refuses her too, not only the API server


def test_load_scales_the_predictor_up_and_back_down(sandbox, served):
    """32 requests in flight for 90 s: the HPA (on the model server's real CPU) raises the replicas to at least
    2, and lowers them again after the load; its decisions are its events."""
    name, env = served["name"], served["env"]
    r = mlctl("serve", "load", name, "--data", str(served["v1"]), "--concurrency", "32", "--duration", "90",
              "--cooldown", "150", "-o", "json", env=env)
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["requests"] > 100 and summary["ok"] > 0.9 * summary["requests"], summary
    lat = summary["latencyMs"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    timeline = summary["replicas"]
    peak = max(p["replicas"] for p in timeline)
    assert peak >= 2, timeline
    assert timeline[-1]["replicas"] == 1, timeline
    rescales = [e["message"] for e in sandbox.kube().events("u-bob", {f"{name}-predictor"})
                if e.get("reason") == "SuccessfulRescale"]
    sizes = [int(m.split("New size: ")[1].split(";")[0]) for m in rescales if "New size: " in m]
    assert any(s >= 2 for s in sizes) and sizes[-1] == 1, rescales


def test_scale_and_delete(sandbox, served):
    env, name = served["env"], served["name"]
    r = mlctl("serve", "scale", name, "--max-replicas", "3", env=env)
    assert r.code == 0, r.err
    sandbox.wait_for(lambda: sandbox.kube().get("HorizontalPodAutoscaler", f"{name}-predictor", "u-bob")["spec"][
        "maxReplicas"] == 3, 60, "KServe to reconcile the HPA's new bound")
    _one_line(mlctl("serve", "delete", name, env=env), 2, "refusing without confirmation")
    assert mlctl("serve", "delete", name, "--yes", env=env).code == 0
    sandbox.wait_for(lambda: sandbox.kube().find("Deployment", f"{name}-predictor", "u-bob") is None, 120,
                     "the predictor's Deployment to be garbage-collected")
