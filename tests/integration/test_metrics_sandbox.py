"""Pod metrics and the HorizontalPodAutoscaler on real load, in the sandbox (docs/metrics.md).

A Deployment of KServe model servers (`mlctl.sandbox/kserve:1`, real processes, a model trained by a real
trainer pod) with an autoscaling/v2 HPA on CPU utilization, min 1 / max 4: the metrics API (metrics-server
behind the aggregation layer, scraping kwok, which reports what /proc says the process uses) shows the pod's
CPU, the CPU rises under requests sent through the gateway, and the HPA scales up and back down, which its
events record.
"""

from __future__ import annotations

import threading

import pytest

from tests.integration.test_workloads_sandbox import (  # noqa: F401 - trained_model is a fixture
    SERVER,
    Gateway,
    s3_secret,
    trained_model,
    user_token,
)

pytestmark = pytest.mark.integration

CPU_REQUEST_MILLI = 100
TARGET_PERCENT = 50


def millicores(quantity: str) -> float:
    """A CPU quantity of the metrics API ("12345678n", "250m", "1") in millicores."""
    if quantity.endswith("n"):
        return int(quantity[:-1]) / 1e6
    if quantity.endswith("u"):
        return int(quantity[:-1]) / 1e3
    if quantity.endswith("m"):
        return float(quantity[:-1])
    return float(quantity) * 1000


def pod_cpu(sandbox, ns: str, name: str) -> float | None:
    """The pod's CPU in millicores as the metrics API (metrics.k8s.io, through the API server) reports it."""
    m = sandbox.kube().find("PodMetrics", name, ns)
    if not m or not m.get("containers"):
        return None
    return sum(millicores(c["usage"]["cpu"]) for c in m["containers"])


def deployment(ns: str, uri: str, endpoint: str) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gen", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "gen"}}, "template": {
            "metadata": {"labels": {"app": "gen"}},
            "spec": {"containers": [{
                "name": "kserve-container", "image": SERVER,
                "args": ["--model_name=gen3d", "--http_port=8080"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "env": [{"name": "STORAGE_URI", "value": uri}, {"name": "AWS_ENDPOINT_URL", "value": endpoint}],
                "envFrom": [{"secretRef": {"name": "mlctl-s3"}}],
                "readinessProbe": {"httpGet": {"path": "/v2/models/gen3d/ready", "port": "http"}},
                "resources": {"requests": {"cpu": f"{CPU_REQUEST_MILLI}m"}, "limits": {"memory": "4Gi"}},
            }]},
        }},
    }


def hpa(ns: str) -> dict:
    """What KServe's RawDeployment mode creates for a predictor: autoscaling/v2 on CPU utilization."""
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "gen", "namespace": ns},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gen"},
                 "minReplicas": 1, "maxReplicas": 4,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization", "averageUtilization": TARGET_PERCENT}}}]},
    }


def ready_pods(sandbox, ns: str) -> list[str]:
    pods = sandbox.kube().list("Pod", ns, selector="app=gen")
    for p in pods:
        if (p.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
            name = p["metadata"]["name"]
            pytest.fail(f"model server {name} exited: {sandbox.kubectl('logs', '-n', ns, name).stdout[-2000:]}")
    return [p["metadata"]["name"] for p in pods
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]


def rescales(sandbox, ns: str) -> list[str]:
    """The HPA's SuccessfulRescale event messages, oldest first."""
    events = sandbox.kube().events(ns, {"gen"})
    return [e.get("message", "") for e in events
            if e.get("reason") == "SuccessfulRescale" and e["involvedObject"]["kind"] == "HorizontalPodAutoscaler"]


def test_real_load_scales_model_servers_up_and_back_down(sandbox, namespace, trained_model, tmp_path):  # noqa: F811
    uri, _ = trained_model
    ns = namespace()
    kube = sandbox.kube()
    kube.patch("Namespace", ns, {"metadata": {"annotations": {"mlctl.io/owner-username": "alice"}}})
    s3_secret(sandbox, ns, "alice")
    kube.create(deployment(ns, uri, sandbox.platform["s3"]["endpoint"]))
    kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gen3d", "namespace": ns},
                 "spec": {"selector": {"app": "gen"}, "ports": [{"port": 80, "targetPort": "http"}]}})
    kube.create(hpa(ns))
    [first] = sandbox.wait_for(lambda: ready_pods(sandbox, ns), 180, "the model server to be ready")

    # the metrics API reports the real process's CPU (non-zero: at least kwok's 1m floor, measured from /proc)
    idle = sandbox.wait_for(lambda: pod_cpu(sandbox, ns, first), 90, f"metrics of pod {first}")
    assert idle > 0
    top = sandbox.kubectl("top", "pod", "-n", ns, "--no-headers").stdout
    assert first in top, top

    gateway = Gateway(sandbox, tmp_path)
    token = user_token(sandbox, tmp_path, "alice")
    noise = [0.1] * 16
    stop = threading.Event()
    answers: list[int] = []

    def load():
        while not stop.is_set():
            status, _ = gateway.call("POST", f"/serve/{ns}/gen3d/v1/models/gen3d:predict",
                                     {"instances": [{"noise": noise, "energy": 50.0}] * 4}, token)
            answers.append(status)

    threads = [threading.Thread(target=load, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        # under load the pod's measured CPU rises well above its idle figure and above the HPA's target
        busy_floor = max(2 * idle, CPU_REQUEST_MILLI * TARGET_PERCENT / 100 * 1.2)
        busy = sandbox.wait_for(lambda: (c := pod_cpu(sandbox, ns, first)) and c > busy_floor and c, 120,
                                f"pod {first}'s CPU to rise above {busy_floor:.0f}m under load")
        sandbox.wait_for(lambda: kube.get("Deployment", "gen", ns)["spec"]["replicas"] >= 2, 180,
                         "the HPA to scale the deployment to 2 or more replicas")
        assert any("above target" in m for m in sandbox.wait_for(lambda: rescales(sandbox, ns), 30,
                                                                 "the HPA's scale-up event"))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=90)
    assert 200 in answers, answers[:20]

    sandbox.wait_for(lambda: kube.get("Deployment", "gen", ns)["spec"]["replicas"] == 1, 240,
                     "the HPA to scale back to 1 replica after the load")
    messages = sandbox.wait_for(lambda: (m := rescales(sandbox, ns)) and any("below target" in x for x in m) and m,
                                30, "the HPA's scale-down event")
    ups = [m for m in messages if "above target" in m]
    downs = [m for m in messages if "below target" in m]
    assert ups and downs, messages
    assert busy > idle
