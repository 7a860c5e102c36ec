"""The KServe component's pure parts (what it makes of the module's ConfigMap, CRDs and webhooks, its serving
runtime) and the gateway's route from an InferenceService's name to its predictor Service."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from mlctl.sandbox import gateway, kserve

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: inferenceservice-config
  namespace: kserve
data:
  _example: |-
    not json at all
  deploy: |-
    {
      "defaultDeploymentMode": "Serverless"
    }
  ingress: |-
    {
        "ingressDomain"  : "example.com",
        "domainTemplate": "{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}",
        "urlScheme": "http",
        "disableIstioVirtualHost": false,
        "disableIngressCreation": false
    }
  inferenceService: |-
    {
      "resource": {"cpuLimit": "1", "memoryLimit": "2Gi", "cpuRequest": "1", "memoryRequest": "2Gi"}
    }
  storageInitializer: |-
    {"image": "kserve/storage-initializer:latest"}
"""

WEBHOOKS = """\
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  creationTimestamp: null
  name: inferenceservice.serving.kserve.io
webhooks:
  - clientConfig:
      service:
        name: $(webhookServiceName)
        namespace: $(kserveNamespace)
        path: /mutate-serving-kserve-io-v1beta1-inferenceservice
    name: inferenceservice.kserve-webhook-server.defaulter
  - clientConfig:
      service:
        name: $(webhookServiceName)
        namespace: $(kserveNamespace)
        path: /mutate-pods
    name: inferenceservice.kserve-webhook-server.pod-mutator
    objectSelector:
      matchExpressions:
        - key: serving.kserve.io/inferenceservice
          operator: Exists
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: trainedmodel.serving.kserve.io
webhooks:
  - clientConfig:
      service:
        name: $(webhookServiceName)
        namespace: $(kserveNamespace)
        path: /validate-serving-kserve-io-v1alpha1-trainedmodel
    name: trainedmodel.kserve-webhook-server.validator
"""


def module(tmp_path: Path) -> Path:
    (tmp_path / "config" / "configmap").mkdir(parents=True)
    (tmp_path / "config" / "configmap" / "inferenceservice.yaml").write_text(CONFIGMAP)
    (tmp_path / "config" / "webhook").mkdir(parents=True)
    (tmp_path / "config" / "webhook" / "manifests.yaml").write_text(WEBHOOKS)
    crd_dir = tmp_path / "config" / "crd" / "full"
    crd_dir.mkdir(parents=True)
    for plural in ("inferenceservices", "clusterservingruntimes"):
        (crd_dir / f"serving.kserve.io_{plural}.yaml").write_text(yaml.safe_dump(
            {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
             "metadata": {"name": f"{plural}.serving.kserve.io"}}))
    (crd_dir / "kustomization.yaml").write_text("resources: []\n")
    return tmp_path


def test_the_configmap_is_the_modules_in_raw_mode_without_ingress(tmp_path):
    cm = kserve.configmap(module(tmp_path))
    assert cm["metadata"] == {"name": "inferenceservice-config", "namespace": "kserve",
                              "labels": {"app.kubernetes.io/managed-by": "mlctl-sandbox"}}
    data = cm["data"]
    assert "_example" not in data
    assert json.loads(data["deploy"]) == {"defaultDeploymentMode": "RawDeployment"}
    ingress = json.loads(data["ingress"])
    assert ingress["disableIngressCreation"] is True and ingress["disableIstioVirtualHost"] is True
    assert ingress["ingressDomain"] == kserve.INGRESS_DOMAIN and ingress["urlScheme"] == "https"
    assert ingress["domainTemplate"] == "{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}"  # kept
    assert json.loads(data["inferenceService"])["resource"]["memoryLimit"] == "4Gi"
    assert data["storageInitializer"] == '{"image": "kserve/storage-initializer:latest"}'  # untouched


def test_every_crd_of_the_full_set_is_installed(tmp_path):
    names = [d["metadata"]["name"] for d in kserve.crds(module(tmp_path))]
    assert names == ["clusterservingruntimes.serving.kserve.io", "inferenceservices.serving.kserve.io"]


def test_webhooks_call_the_manager_by_url_and_the_pod_mutator_skips_the_runtimes_pods(tmp_path):
    docs = kserve.webhooks(9443, b"PEM", module(tmp_path))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("MutatingWebhookConfiguration", "inferenceservice.serving.kserve.io"),
        ("ValidatingWebhookConfiguration", "trainedmodel.serving.kserve.io")]
    hooks = {h["name"]: h for d in docs for h in d["webhooks"]}
    assert hooks["trainedmodel.kserve-webhook-server.validator"]["clientConfig"] == {
        "url": "https://127.0.0.1:9443/validate-serving-kserve-io-v1alpha1-trainedmodel",
        "caBundle": base64.b64encode(b"PEM").decode()}
    pods = hooks["inferenceservice.kserve-webhook-server.pod-mutator"]
    assert pods["clientConfig"]["url"] == "https://127.0.0.1:9443/mutate-pods"
    assert pods["objectSelector"]["matchExpressions"] == [
        {"key": "serving.kserve.io/inferenceservice", "operator": "Exists"},
        {"key": kserve.STORAGE_LABEL, "operator": "DoesNotExist"}]
    assert "objectSelector" not in hooks["inferenceservice.kserve-webhook-server.defaulter"]
    assert "creationTimestamp" not in docs[0]["metadata"]


def test_the_runtime_serves_3dgan_and_reads_its_model_itself():
    rt = kserve.runtime()
    assert rt["kind"] == "ClusterServingRuntime" and rt["metadata"]["name"] == kserve.RUNTIME
    spec = rt["spec"]
    assert [(f["name"], f["autoSelect"]) for f in spec["supportedModelFormats"]] == [(kserve.MODEL_FORMAT, True)]
    assert spec["protocolVersions"] == ["v1", "v2"]
    assert spec["labels"] == {kserve.STORAGE_LABEL: "runtime"}
    [c] = spec["containers"]
    assert c["name"] == "kserve-container" and c["image"] == "mlctl.sandbox/kserve:1"
    assert c["resources"]["limits"]["memory"] == "4Gi"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/models/{{.Name}}/ready"
    [env] = c["env"]
    assert env["name"] == "STORAGE_URI"
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['internal.serving.kserve.io/storage-initializer-sourceuri']")
    assert c["envFrom"] == [{"secretRef": {"name": "mlctl-s3"}}]


class FakeKube:
    def __init__(self, objects):
        self.objects = objects
        self.asked = []

    def find(self, kind, name, namespace=None):
        self.asked.append((kind, name))
        return self.objects.get((kind, name, namespace))


def test_an_inference_service_name_routes_to_its_predictor_and_its_sharing_counts():
    isvc = {"metadata": {"name": "gen", "annotations": {"mlctl.io/shared-with": "physics"}},
            "spec": {"predictor": {}}}
    predictor = {"metadata": {"name": "gen-predictor", "annotations": {"mlctl.io/shared-with": "gpu-power-users"}},
                 "spec": {"selector": {"app": "isvc.gen-predictor"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    routes = gateway.Routes(FakeKube({("InferenceService", "gen", "u-alice"): isvc,
                                      ("Service", "gen-predictor", "u-alice"): predictor,
                                      ("Namespace", "u-alice", None): {"metadata": {"name": "u-alice"}}}))
    svc = routes.service("u-alice", "gen")
    assert svc["metadata"]["name"] == "gen-predictor" and svc["spec"] == predictor["spec"]
    assert routes.allowed("u-alice", svc, {"preferred_username": "bob", "groups": ["/physics"]})
    assert routes.allowed("u-alice", svc, {"preferred_username": "bob", "groups": ["gpu-power-users"]})
    assert not routes.allowed("u-alice", svc, {"preferred_username": "dave", "groups": ["ml-users"]})
    assert predictor["metadata"]["annotations"] == {"mlctl.io/shared-with": "gpu-power-users"}  # not changed


def test_a_plain_service_still_routes_and_an_unready_isvc_has_no_selector():
    plain = {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    routes = gateway.Routes(FakeKube({("Service", "web", "u-alice"): plain,
                                      ("InferenceService", "new", "u-alice"): {"metadata": {"name": "new"},
                                                                                "spec": {}}}))
    assert routes.service("u-alice", "web") == plain
    assert routes.service("u-alice", "nothing") is None
    pending = routes.service("u-alice", "new")
    assert pending["metadata"]["name"] == "new-predictor"
    with pytest.raises(gateway.Refused) as e:
        routes.endpoint("u-alice", pending)
    assert e.value.status == 503
