"""mlctl/serve: the InferenceService from options, the model-URI/JOB rules, request checks, load statistics."""

from __future__ import annotations

import time

import pytest
import yaml

from mlctl.errors import UsageError
from mlctl.serve import isvc, model, protocol, stats
from tests.conftest import PLATFORM_DOC

PLATFORM = yaml.safe_load(PLATFORM_DOC)
LOCAL, GCP = PLATFORM["clusters"]
S3 = {"endpoint": "https://127.0.0.1:9000", "region": "us-east-1", "podCaBundle": "/etc/ca.crt",
      "buckets": {"outputs": "mlctl-outputs"}, "prefix": "{user}/"}


def opts(**kw):
    base = {"name": "gen3d", "model_uri": "s3://mlctl-outputs/bob/gan3d/r1/model/", "framework": "3dgan"}
    return isvc.ServeOptions(**{**base, **kw})


def test_inference_service_has_the_requested_bounds_target_and_model():
    obj = isvc.inference_service(opts(min_replicas=1, max_replicas=4, target_utilization=50), LOCAL,
                                 namespace="u-bob", user="bob", s3=S3)
    assert obj["apiVersion"] == "serving.kserve.io/v1beta1" and obj["kind"] == "InferenceService"
    assert obj["metadata"]["namespace"] == "u-bob"
    notes = obj["metadata"]["annotations"]
    assert notes["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert notes["serving.kserve.io/autoscalerClass"] == "hpa"
    predictor = obj["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 4)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("cpu", 50)
    m = predictor["model"]
    assert m["modelFormat"] == {"name": "3dgan"}
    assert m["storageUri"] == "s3://mlctl-outputs/bob/gan3d/r1/model/"
    assert m["envFrom"] == [{"secretRef": {"name": "mlctl-s3"}}]
    assert {e["name"]: e["value"] for e in m["env"]} == {
        "AWS_ENDPOINT_URL": "https://127.0.0.1:9000", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CA_BUNDLE": "/etc/ca.crt"}
    assert m["resources"]["requests"] == m["resources"]["limits"] == {"cpu": "1", "memory": "4Gi"}
    assert predictor["nodeSelector"] == {"mlctl.io/pool": "cpu"}


def test_gpus_pick_the_gpu_pool_its_resource_name_and_tolerations():
    obj = isvc.inference_service(opts(gpus=2), GCP, namespace="u-bob", user="bob")
    predictor = obj["spec"]["predictor"]
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert predictor["nodeSelector"] == {"mlctl.io/pool": "gpu"}
    assert predictor["tolerations"] == [{"effect": "NoSchedule", "key": "cloud.google.com/gke-preemptible",
                                         "operator": "Exists"}]
    assert "scaleMetric" not in predictor and predictor["maxReplicas"] == predictor["minReplicas"] == 1


def test_the_builder_is_deterministic_and_records_the_job():
    a = isvc.inference_service(opts(job="gan3d", run="20261201T100000Z-abcdef"), LOCAL, namespace="n", user="bob")
    b = isvc.inference_service(opts(job="gan3d", run="20261201T100000Z-abcdef"), LOCAL, namespace="n", user="bob")
    assert yaml.safe_dump(a) == yaml.safe_dump(b)
    notes = a["metadata"]["annotations"]
    assert notes["mlctl.io/model"] == "gan3d" and notes["mlctl.io/job"] == "gan3d"
    assert notes["mlctl.io/run"] == "20261201T100000Z-abcdef"


@pytest.mark.parametrize("change, words", [
    ({"framework": "tensorflowish"}, "unknown framework"),
    ({"min_replicas": 0}, "at least 1"),
    ({"min_replicas": 3, "max_replicas": 2}, "below --min-replicas"),
    ({"target_utilization": 0}, "between 1 and 100"),
    ({"target_utilization": 50, "target_concurrency": 3}, "exclude each other"),
    ({"target_concurrency": 3}, "needs Serverless"),
    ({"name": "Gen3d"}, "not a valid service name"),
    ({"name": "a" * 54}, "at most 53"),
    ({"gpus": 1, "pool": "cpu"}, "has no GPUs"),
    ({"pool": "tpu"}, "has no pool tpu"),
])
def test_bad_options_are_usage_errors(change, words):
    with pytest.raises(UsageError, match=words):
        isvc.inference_service(opts(**change), LOCAL, namespace="n", user="bob")


def test_concurrency_target_on_a_serverless_cluster():
    serverless = {**LOCAL, "serving": {"deploymentMode": "Serverless"}}
    obj = isvc.inference_service(opts(target_concurrency=8, max_replicas=3), serverless, namespace="n", user="b")
    assert obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert "serving.kserve.io/autoscalerClass" not in obj["metadata"]["annotations"]
    assert (obj["spec"]["predictor"]["scaleMetric"], obj["spec"]["predictor"]["scaleTarget"]) == ("concurrency", 8)


def test_scale_patch_keeps_unchanged_bounds_and_refuses_inverted_ones():
    current = {"spec": {"predictor": {"minReplicas": 1, "maxReplicas": 4}}}
    assert isvc.scale_patch(None, 6, None, current) == {"spec": {"predictor": {"minReplicas": 1, "maxReplicas": 6}}}
    assert isvc.scale_patch(2, None, 70, current)["spec"]["predictor"] == {
        "minReplicas": 2, "maxReplicas": 4, "scaleMetric": "cpu", "scaleTarget": 70}
    with pytest.raises(UsageError, match="below min"):
        isvc.scale_patch(5, None, None, current)
    with pytest.raises(UsageError, match="nothing to change"):
        isvc.scale_patch(None, None, None, current)


def test_state_and_reason_from_conditions():
    assert isvc.state({}) == "Pending"
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert isvc.state(ready) == "Ready" and isvc.reason(ready) == ""
    failing = {"status": {"conditions": [
        {"type": "PredictorReady", "status": "False", "reason": "MinimumReplicasUnavailable",
         "message": "Deployment does not have minimum availability."},
        {"type": "Ready", "status": "False"}]}}
    assert isvc.state(failing) == "NotReady"
    assert isvc.reason(failing) == "MinimumReplicasUnavailable: Deployment does not have minimum availability."
    assert isvc.state({"metadata": {"deletionTimestamp": "x"}, **ready}) == "Deleting"


def test_model_argument_rules():
    assert model.parse("s3://mlctl-outputs/bob/gan3d/r/model") == model.ModelRef(
        uri="s3://mlctl-outputs/bob/gan3d/r/model/")
    assert model.parse("gan3d") == model.ModelRef(job="gan3d")
    ref = model.parse("s3://mlctl-models/bob/m/")
    assert (ref.bucket, ref.prefix) == ("mlctl-models", "bob/m/")
    for bad, words in (("gs://b/m", "only s3://"), ("s3://", "not a valid bucket"), ("s3://B_ad/x", "bucket"),
                       ("s3://bkt/a/../b", "'..'"), ("Gan3D!", "neither")):
        with pytest.raises(UsageError, match=words):
            model.parse(bad)


def test_final_model_is_the_model_folder_of_the_run():
    assert model.final_model("s3://mlctl-outputs/bob/gan3d/r1/") == "s3://mlctl-outputs/bob/gan3d/r1/model/"
    # an explicit `output:` URL of a spec (examples/3dgan.yaml) works the same way
    assert model.final_model("s3://ml-outputs/3dgan") == "s3://ml-outputs/3dgan/model/"
    assert model.framework_of({"format": "mlctl-3dgan-generator/v1"}) == "3dgan"
    assert model.framework_of({"format": "something/v9"}) is None


def test_gateway_paths_per_protocol():
    assert protocol.gateway_path("u-bob", "gen3d", "v1") == "/serve/u-bob/gen3d/v1/models/gen3d:predict"
    assert protocol.gateway_path("u-bob", "gen3d", "v2") == "/serve/u-bob/gen3d/v2/models/gen3d/infer"


def test_request_bodies_are_checked_before_sending():
    v1 = protocol.parse_body('{"instances": [{"noise": [0.0], "energy": 50}]}', "r.json")
    protocol.check_body(v1, "v1", "r.json")
    with pytest.raises(UsageError, match="line 1 column 2"):
        protocol.parse_body("{instances: []}", "r.json")
    with pytest.raises(UsageError, match="must be a JSON object"):
        protocol.parse_body("[1, 2]", "r.json")
    with pytest.raises(UsageError) as e:
        protocol.check_body(v1, "v2", "r.json")
    assert "--protocol v1" in e.value.hint
    v2 = {"inputs": [{"name": "noise", "shape": [1, 16], "datatype": "FP32", "data": [0.0] * 16}]}
    protocol.check_body(v2, "v2", "r.json")
    with pytest.raises(UsageError) as e:
        protocol.check_body(v2, "v1", "r.json")
    assert "--protocol v2" in e.value.hint
    with pytest.raises(UsageError, match=r"inputs\[0\] has no datatype"):
        protocol.check_body({"inputs": [{"name": "x", "shape": [1], "data": [1]}]}, "v2", "r.json")


def test_server_messages_are_one_line():
    assert protocol.server_message(b'{"error": "InvalidInput: bad noise\\nmore"}') == "InvalidInput: bad noise"
    assert protocol.server_message(b"plain text\nsecond") == "plain text"
    assert protocol.server_message(b"") == ""


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert stats.percentile(values, 50) == 50.0
    assert stats.percentile(values, 90) == 90.0
    assert stats.percentile(values, 99) == 99.0
    assert stats.percentile(values, 100) == 100.0
    assert stats.percentile([3.0], 99) == 3.0
    assert stats.percentile([], 50) is None
    assert stats.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0


def test_recorder_summary_counts_errors_by_kind_and_keeps_replica_changes_only():
    rec = stats.Recorder(started=100.0)
    for i in range(10):
        rec.success(0.010 * (i + 1), 100.0 + i)
    rec.failure(stats.error_kind(503), 105.0, 0.001)
    rec.failure(stats.error_kind(exc=TimeoutError()), 106.0)
    rec.failure(stats.error_kind(exc=ConnectionResetError()), 107.0)
    rec.replicas(100.0, 1, 1, 1)
    rec.replicas(103.0, 1, 1, 1)  # unchanged: not a new point
    rec.replicas(106.0, 2, 1, 2)
    rec.finish(110.0)
    s = rec.summary(concurrency=4)
    assert s["requests"] == 13 and s["ok"] == 10
    assert s["errors"] == {"connection": 1, "http 503": 1, "timeout": 1}
    assert s["duration"] == 10.0 and s["rps"] == 1.3
    assert s["latencyMs"]["p50"] == 50.0 and s["latencyMs"]["max"] == 100.0
    assert [p["t"] for p in s["replicas"]] == [0.0, 6.0]
    assert s["replicas"][1] == {"t": 6.0, "replicas": 2, "ready": 1, "desired": 2}


def test_rate_counts_the_last_window():
    rec = stats.Recorder(started=0.0)
    for t in range(20):
        rec.success(0.01, float(t))
    assert rec.rate(20.0, window=5.0) == 1.0  # t = 15..19
    early = stats.Recorder(started=0.0)
    early.success(0.01, 0.5)
    early.success(0.01, 0.9)
    assert early.rate(1.0, window=5.0) == 2.0  # two done in the first second


def test_pacer_spaces_request_starts():
    pacer = stats.Pacer(10.0, start=time.monotonic() + 100)
    slots = [pacer.slot() for _ in range(3)]
    assert slots[1] - slots[0] == pytest.approx(0.1) and slots[2] - slots[1] == pytest.approx(0.1)
    assert stats.Pacer(None, 0.0).slot() == 0.0


def test_the_load_views_show_rate_percentiles_errors_and_replicas():
    """The plain progress line (no terminal) and the rich live table (a terminal) read the same recorder."""
    import io

    from rich.console import Console

    from mlctl.commands.serve.load import Options, line, live_table

    rec = stats.Recorder(started=0.0)
    for i in range(100):
        rec.success((i + 1) / 1000, 9.0 + i / 100)
    rec.failure("http 503", 9.5, 0.002)
    replicas = {"replicas": 2, "ready": 1, "desired": 3}
    text = line(rec, 10.0, replicas)
    assert "requests 101" in text and "p50 50ms" in text and "p99 99ms" in text
    assert "errors 1" in text and "replicas 1/2 (hpa 3)" in text
    out = io.StringIO()
    Console(file=out, width=160, force_terminal=False).print(live_table(rec, 10.0, replicas, Options("gen3d", "d")))
    shown = out.getvalue()
    assert "gen3d" in shown and "http 503: 1" in shown and "1/2 (3)" in shown and "50.0 ms" in shown
