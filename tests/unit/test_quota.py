"""Quota arithmetic: group grants, the effective quota and its sources, usage rows, request objects."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from mlctl.errors import UsageError
from mlctl.quota import (
    BUILTIN_DEFAULT,
    SOURCES_ANNOTATION,
    QuotaError,
    bar,
    effective,
    explain_exceeded,
    group_grant,
    parse_resources,
    parse_sources,
    request_grant,
    usage_rows,
)
from mlctl.quota import requests as qr

REALM_GPU_GROUP = {  # as sandbox/keycloak/realm-ml.json gives gpu-power-users
    "mlctl.io/quota.requests.nvidia.com/gpu": ["8"],
    "mlctl.io/quota.limits.nvidia.com/gpu": ["8"],
    "mlctl.io/quota.requests.memory": ["64Gi"],
    "mlctl.io/clusters": ["gcp"],
}
D = Decimal


def default():
    return parse_resources(BUILTIN_DEFAULT, "default")


def test_group_grant_reads_quota_attributes_only():
    grant = group_grant("gpu-power-users", REALM_GPU_GROUP)
    assert grant == {"requests.nvidia.com/gpu": D(8), "limits.nvidia.com/gpu": D(8),
                     "requests.memory": D(64 * 2**30)}
    assert group_grant("ml-users", {}) == {}


@pytest.mark.parametrize("attrs, fragment", [
    ({"mlctl.io/quota.requests.nvidia.com/gpu": ["-2"]}, "negative"),
    ({"mlctl.io/quota.requests.nvidia.com/gpu": ["lots"]}, "not a quantity"),
    ({"mlctl.io/quota.requests.nvidia.com/gpu": ["1.5"]}, "whole number"),
    ({"mlctl.io/quota.requests.cpu": ["4", "8"]}, "several values"),
    ({"mlctl.io/quota.Bad Key": ["1"]}, "not a ResourceQuota resource name"),
])
def test_group_grant_rejects_bad_attributes_naming_the_group(attrs, fragment):
    with pytest.raises(QuotaError, match=fragment) as e:
        group_grant("g1", attrs)
    assert "group g1" in str(e.value)


def test_effective_sums_default_groups_and_requests_and_records_sources():
    eff = effective(default(), {"gpu-power-users": group_grant("gpu-power-users", REALM_GPU_GROUP)},
                    {"qr-1": request_grant("qr-1", {"nvidia.com/gpu": 4}, ["limits.nvidia.com/gpu"])})
    assert eff.hard_text() == {
        "limits.nvidia.com/gpu": "12", "pods": "20", "requests.cpu": "8", "requests.memory": "96Gi",
        "requests.nvidia.com/gpu": "13"}
    sources = json.loads(eff.annotation())
    assert [(s["source"], s.get("name")) for s in sources] == [
        ("default", None), ("group", "gpu-power-users"), ("request", "qr-1")]
    assert sources[2]["resources"] == {"limits.nvidia.com/gpu": "4", "requests.nvidia.com/gpu": "4"}
    # the annotation is what quota show reads back
    assert [s.label for s in parse_sources(eff.annotation())] == ["default", "group gpu-power-users", "request qr-1"]


def test_effective_is_deterministic_whatever_the_order():
    a = effective(default(), {"b": {"pods": D(1)}, "a": {"pods": D(2)}}, {})
    b = effective(default(), {"a": {"pods": D(2)}, "b": {"pods": D(1)}}, {})
    assert a.annotation() == b.annotation() and a.hard == b.hard


def test_request_grant_maps_request_keys_and_rejects_unknown_or_negative():
    assert request_grant("r", {"cpu": "500m", "memory": "1Gi", "pods": "3"}) == {
        "requests.cpu": D("0.5"), "requests.memory": D(2**30), "pods": D(3)}
    with pytest.raises(QuotaError, match="unknown resource"):
        request_grant("r", {"nvidia.com/tpu": 1})
    with pytest.raises(QuotaError, match="negative"):
        request_grant("r", {"nvidia.com/gpu": -1})


def test_usage_rows_show_gpus_first_with_breakdown():
    eff = effective(default(), {"gpu-power-users": group_grant("gpu-power-users", REALM_GPU_GROUP)}, {})
    quota = {"metadata": {"name": "mlctl-quota", "annotations": {SOURCES_ANNOTATION: eff.annotation()}},
             "spec": {"hard": eff.hard_text()},
             "status": {"hard": eff.hard_text(), "used": {"requests.nvidia.com/gpu": "3", "requests.memory": "48Gi"}}}
    rows = usage_rows(quota)
    # one GPU row: requests.nvidia.com/gpu and limits.nvidia.com/gpu merged
    assert [r.resource for r in rows][:2] == ["nvidia.com/gpu", "requests.cpu"]
    gpu = rows[0]
    assert gpu.keys == ("requests.nvidia.com/gpu", "limits.nvidia.com/gpu")
    assert (gpu.used_text, gpu.hard_text) == ("3", "9")
    assert gpu.breakdown() == "1 default + 8 group gpu-power-users"
    mem = next(r for r in rows if r.resource == "requests.memory")
    assert mem.fraction == pytest.approx(0.5) and mem.to_dict()["free"] == "48Gi"
    assert bar(0.5, 10) == "█████░░░░░" and bar(3.0, 4) == "████"


def test_a_cluster_limited_group_grant_counts_on_its_cluster_only():
    attrs = {"mlctl.io/quota-cluster": ["gcp"], "mlctl.io/quota.requests.nvidia.com/gpu": ["128"],
             "mlctl.io/quota.requests.cpu": ["512"], "mlctl.io/quota.requests.memory": ["4Ti"]}
    assert group_grant("burst-gcp", attrs, "local") == {}
    grant = group_grant("burst-gcp", attrs, "gcp")
    assert grant["requests.nvidia.com/gpu"] == 128 and grant["requests.memory"] == 4 * 2**40
    eff = effective(default(), {"burst-gcp": grant}, {}, {"burst-gcp": ("gcp",)})
    quota = {"metadata": {"name": "mlctl-quota", "annotations": {SOURCES_ANNOTATION: eff.annotation()}},
             "status": {"hard": eff.hard_text(), "used": {}}}
    gpu = usage_rows(quota)[0]
    assert (gpu.resource, gpu.hard_text) == ("nvidia.com/gpu", "129")
    assert gpu.breakdown() == "1 default + 128 group burst-gcp (gcp only)"


def test_usage_rows_without_annotation_still_report():
    rows = usage_rows({"metadata": {"name": "q"}, "status": {"hard": {"pods": "10"}, "used": {"pods": "10"}}})
    assert rows[0].fraction == 1.0 and rows[0].breakdown() == "-"


def test_explain_exceeded_names_quota_resource_and_sources():
    eff = effective(default(), {}, {})
    quota = {"metadata": {"name": "mlctl-quota", "annotations": {SOURCES_ANNOTATION: eff.annotation()}},
             "status": {"hard": eff.hard_text(), "used": {}}}
    msg = ('pods "big" is forbidden: exceeded quota: mlctl-quota, requested: requests.nvidia.com/gpu=4, '
           'used: requests.nvidia.com/gpu=0, limited: requests.nvidia.com/gpu=1')
    text = explain_exceeded(msg, quota)
    assert text == ("over ResourceQuota mlctl-quota: requests.nvidia.com/gpu: requested 4, in use 0, limit 1 "
                    "(1 default)")
    assert explain_exceeded("forbidden: something else") is None


def test_build_request_validates_like_the_crd():
    obj = qr.build("u-alice", {"nvidia.com/gpu": "4"}, "training 3dgan at scale", "alice")
    assert obj["spec"] == {"resources": {"nvidia.com/gpu": "4"}, "reason": "training 3dgan at scale"}
    assert obj["metadata"]["generateName"] == "qr-" and obj["metadata"]["namespace"] == "u-alice"
    for bad, fragment in [({"nvidia.com/gpu": "-4"}, "more than zero"), ({"nvidia.com/gpu": "2.5"}, "whole"),
                          ({"tpu": "1"}, "unknown resource"), ({}, "must ask for something"),
                          ({"memory": "lots"}, "not a quantity")]:
        with pytest.raises(UsageError, match=fragment):
            qr.build("u-alice", bad, "because", "alice")
    with pytest.raises(UsageError, match="reason"):
        qr.build("u-alice", {"pods": "2"}, " ", "alice")


def test_decision_patch_and_summary():
    import datetime as dt

    patch = qr.decision("Approved", "dave", None, now=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    assert patch == {"status": {"phase": "Approved", "decidedBy": "dave", "decidedAt": "2026-01-02T03:04:05Z",
                                "message": None}}
    assert qr.summary({"spec": {"resources": {"nvidia.com/gpu": 4, "memory": "64Gi"}}}) == "4 GPUs, 64Gi memory"
    assert qr.phase({}) == "Pending"
