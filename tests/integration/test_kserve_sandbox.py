"""KServe in the sandbox (docs/serving-sandbox.md): the real controller manager (v0.15.2, RawDeployment) serves
an InferenceService that alice creates with her own Keycloak token, from a 3dgan model a real trainer pod
wrote to S3; KServe makes its Deployment, Service and HPA, the pod really runs the sandbox's model server
(which reads S3 itself: no storage-initializer), and v1 and v2 predictions go through the gateway for the
owner only, or a group the InferenceService is shared with."""

from __future__ import annotations

import base64
import os
import signal
import time
import uuid

import pytest

from tests.integration.test_train import tenants  # noqa: F401 - fixture: admin sync done
from tests.integration.test_workloads_sandbox import (  # noqa: F401 - trained_model is a fixture
    Gateway,
    expected_voxel,
    trained_model,
    user_token,
)

pytestmark = pytest.mark.integration

NS = "u-alice"
RUNTIME = "mlctl-3dgan"


def as_user(sandbox, token: str):
    """mlctl's Kubernetes layer for cluster local, as the owner of token (RBAC applies)."""
    from mlctl.kube.api import Kube

    entry = next(c for c in sandbox.platform["clusters"] if c["name"] == "local")
    return Kube(entry["server"], "local", ca_data=base64.b64decode(entry["certificateAuthorityData"]),
                token=lambda: token)


def condition(obj: dict | None, kind: str) -> str | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c.get("status")
    return None


def isvc_object(name: str, uri: str, endpoint: str) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"predictor": {
            "minReplicas": 1, "maxReplicas": 3,
            "model": {"modelFormat": {"name": "3dgan"}, "storageUri": uri,
                      "env": [{"name": "AWS_ENDPOINT_URL", "value": endpoint}]},
        }},
    }


def test_alice_serves_a_trained_model_through_kserve_and_the_gateway(
        sandbox, tenants, trained_model, tmp_path):  # noqa: F811
    from mlctl.sandbox import s3

    uri, arrays = trained_model
    admin = sandbox.kube()
    admin.apply(s3.user_secret_object(NS, *s3.user_credentials(sandbox.root, "alice")), "mlctl-tests", force=True)
    tokens = {u: user_token(sandbox, tmp_path, u) for u in ("alice", "bob", "carol")}
    alice = as_user(sandbox, tokens["alice"])
    name = f"gen{uuid.uuid4().hex[:6]}"
    try:
        # the CLI validates --framework against the cluster's runtimes: every signed-in user may read them
        runtime = alice.get("ClusterServingRuntime", RUNTIME)
        assert [f["name"] for f in runtime["spec"]["supportedModelFormats"]] == ["3dgan"]

        created = time.monotonic()
        alice.create(isvc_object(name, uri, sandbox.platform["s3"]["endpoint"]))
        predictor = f"{name}-predictor"
        deployment = sandbox.wait_for(lambda: alice.find("Deployment", predictor, NS), 60, "the predictor Deployment")
        service = sandbox.wait_for(lambda: alice.find("Service", predictor, NS), 60, "the predictor Service")
        hpa = sandbox.wait_for(lambda: alice.find("HorizontalPodAutoscaler", predictor, NS), 60, "the HPA")
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": predictor}
        template = deployment["spec"]["template"]
        assert not template["spec"].get("initContainers"), "no storage-initializer"
        [container] = template["spec"]["containers"]
        assert container["image"] == "mlctl.sandbox/kserve:1"
        assert container["resources"]["limits"]["memory"] == "4Gi"
        assert template["metadata"]["annotations"]["internal.serving.kserve.io/storage-initializer-sourceuri"] == uri
        assert service["spec"]["selector"] == {"app": f"isvc.{predictor}"}

        def ready():
            isvc = alice.get("InferenceService", name, NS)
            failed = [p for p in alice.list("Pod", NS, selector=f"app=isvc.{predictor}")
                      if (p.get("status") or {}).get("phase") == "Failed"]
            if failed:
                pytest.fail(f"the model server failed: {failed[0]['status']}")
            return isvc if condition(isvc, "Ready") == "True" else None

        isvc = sandbox.wait_for(ready, 240, f"inferenceservice {name} to be Ready")
        print(f"\ninferenceservice created -> Ready: {time.monotonic() - created:.1f} s")
        assert isvc["status"]["url"] == f"https://{name}-{NS}.serve.sandbox.mlctl.test"
        assert isvc["spec"]["predictor"]["model"]["runtime"] == RUNTIME
        [pod] = alice.list("Pod", NS, selector=f"app=isvc.{predictor}")
        assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"].startswith("127.")
        assert pod["metadata"]["labels"]["mlctl.io/model-storage"] == "runtime"
        assert not pod["spec"].get("initContainers")
        # the owner reads what explains her service: the server's own log and the pod's events
        pod_name = pod["metadata"]["name"]
        logs = "".join(alice.lines(f"/api/v1/namespaces/{NS}/pods/{pod_name}/log", what="pod logs", timeout=30))
        assert f"loaded mlctl-3dgan-generator/v1 (2 epochs) from {uri}" in logs, logs[-2000:]
        assert "Started" in {e["reason"] for e in alice.events(NS, {pod_name})}

        gateway = Gateway(sandbox, tmp_path)
        base = f"/serve/{NS}/{name}"
        noise = [round(0.1 * ((i * 5) % 13 - 6), 3) for i in range(16)]
        status, v1 = gateway.call("POST", f"{base}/v1/models/{name}:predict",
                                  {"instances": [{"noise": noise, "energy": 80.0}]}, tokens["alice"])
        assert status == 200, v1
        [shower] = v1["predictions"]
        assert (len(shower), len(shower[0]), len(shower[0][0])) == (25, 25, 25)
        for voxel in (0, 7 * 625 + 12 * 25 + 12, 15624):
            want = expected_voxel(arrays, noise, 80.0, voxel)
            got = shower[voxel // 625][(voxel // 25) % 25][voxel % 25]
            assert got == pytest.approx(want, rel=1e-4, abs=1e-6)

        v2_request = {"inputs": [{"name": "noise", "shape": [1, 16], "datatype": "FP32", "data": noise},
                                 {"name": "energy", "shape": [1], "datatype": "FP32", "data": [80.0]}]}
        status, v2 = gateway.call("POST", f"{base}/v2/models/{name}/infer", v2_request, tokens["alice"])
        assert status == 200, v2
        [out] = v2["outputs"]
        assert out["name"] == "showers" and out["shape"] == [1, 25, 25, 25]
        flat = [v for plane in shower for row in plane for v in row]
        assert out["data"] == pytest.approx(flat, rel=1e-5, abs=1e-6)

        for stranger in ("bob", "carol"):
            status, _ = gateway.call("POST", f"{base}/v1/models/{name}:predict",
                                     {"instances": [{"noise": noise, "energy": 80.0}]}, tokens[stranger])
            assert status == 403, stranger
        status, _ = gateway.call("POST", f"{base}/v1/models/{name}:predict", {"instances": []})
        assert status == 401

        # shared with bob's group on the InferenceService itself: bob gets through, carol still not
        alice.patch("InferenceService", name, {"metadata": {"annotations": {
            "mlctl.io/shared-with": "gpu-power-users"}}}, NS)
        sandbox.wait_for(lambda: gateway.call("GET", f"{base}/v2/models/{name}/ready", token=tokens["bob"])[0] == 200,
                         30, "bob to get through once the service is shared with gpu-power-users")
        assert gateway.call("GET", f"{base}/v2/models/{name}/ready", token=tokens["carol"])[0] == 403

        alice.delete("InferenceService", name, NS)
        sandbox.wait_for(lambda: not alice.list("Pod", NS, selector=f"app=isvc.{predictor}"), 90,
                         "the predictor's pods to go away")
        assert alice.find("Deployment", predictor, NS) is None
    finally:
        if admin.find("InferenceService", name, NS):
            admin.delete("InferenceService", name, NS)
        alice.close()


def test_one_up_brings_back_a_killed_controller(sandbox):
    from mlctl.sandbox import procs, runner

    state = procs.State.load(sandbox.root)
    old = state.data["processes"]["kserve-controller"]["pid"]
    os.killpg(old, signal.SIGKILL)
    sandbox.wait_for(lambda: not procs.State.load(sandbox.root).is_running("kserve-controller"), 30,
                     "the controller to die")
    info = runner.up(sandbox.root)
    state = procs.State.load(sandbox.root)
    assert state.is_running("kserve-controller") and state.data["processes"]["kserve-controller"]["pid"] != old
    assert info is not None
    # its webhooks answer again: the ClusterServingRuntime validator takes a server-side dry run
    from mlctl.sandbox import kserve

    sandbox.kube().apply(kserve.runtime(), "mlctl-tests", force=True, dry_run=True)
