"""mlctl quota show|request|requests through the real entry point, with the cluster faked."""

from __future__ import annotations

import json

import pytest

from mlctl.commands.train.common import Target
from mlctl.quota import SOURCES_ANNOTATION, effective, group_grant, parse_resources
from tests.conftest import mlctl

SOURCES = effective(parse_resources({"requests.nvidia.com/gpu": "1", "requests.cpu": "8", "pods": "20"}, "d"),
                    {"gpu-power-users": group_grant("gpu-power-users",
                                                    {"mlctl.io/quota.requests.nvidia.com/gpu": ["8"]})},
                    {"qr-abc": {"requests.nvidia.com/gpu": parse_resources({"x": "4"}, "r")["x"]}})
QUOTA = {"metadata": {"name": "mlctl-quota", "namespace": "u-bob",
                      "annotations": {SOURCES_ANNOTATION: SOURCES.annotation()}},
         "spec": {"hard": SOURCES.hard_text()},
         "status": {"hard": SOURCES.hard_text(), "used": {"requests.nvidia.com/gpu": "6", "requests.cpu": "2500m",
                                                            "pods": "3"}}}


class FakeApi:
    cluster = "local"

    def __init__(self):
        self.created = []
        self.requests_list = [{"metadata": {"name": "qr-abc", "namespace": "u-bob",
                                            "creationTimestamp": "2026-01-01T00:00:00Z"},
                               "spec": {"resources": {"nvidia.com/gpu": "4"}, "reason": "3dgan"},
                               "status": {"phase": "Approved", "decidedBy": "dave"}}]

    def find(self, kind, name, namespace=None):
        return QUOTA if (kind, name, namespace) == ("ResourceQuota", "mlctl-quota", "u-bob") else None

    def list(self, kind, namespace=None, selector=None):
        return self.requests_list

    def create(self, obj, dry_run=False):
        self.created.append(obj)
        out = json.loads(json.dumps(obj))
        out["metadata"]["name"] = "qr-new01"
        return out


@pytest.fixture
def api(platform, monkeypatch):
    fake = FakeApi()
    target = Target({"name": "local"}, "u-bob", "bob")
    monkeypatch.setattr("mlctl.commands.quota.common.target_api", lambda f, cluster=None: (target, fake))
    return fake


def test_show_plain_when_piped(api):
    r = mlctl("quota", "show")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["RESOURCE", "USED", "HARD", "USE%", "SOURCES"]
    assert lines[1].split()[:4] == ["nvidia.com/gpu", "6", "13", "46%"]
    assert "1 default + 8 group gpu-power-users + 4 request qr-abc" in lines[1]
    assert "2500m" not in r.out and "2.5" in r.out


def test_show_bars_on_a_terminal(api):
    r = mlctl("quota", "show", tty=True)
    assert r.code == 0 and "█" in r.out and "u-bob on local" in r.out


def test_show_json_is_complete(api):
    data = json.loads(mlctl("quota", "show", "-o", "json").out)
    assert data["namespace"] == "u-bob" and data["quota"] == "mlctl-quota"
    gpu = data["resources"][0]
    assert gpu == {"resource": "nvidia.com/gpu", "keys": ["requests.nvidia.com/gpu"], "used": "6", "hard": "13", "free": "7", "sources": [
        {"source": "default", "amount": "1"}, {"source": "group gpu-power-users", "amount": "8"},
        {"source": "request qr-abc", "amount": "4"}]}
    assert [s["source"] for s in data["sources"]] == ["default", "group", "request"]


def test_show_without_quota_is_not_found(api, monkeypatch):
    monkeypatch.setattr(FakeApi, "find", lambda self, *a, **kw: None)
    r = mlctl("quota", "show")
    assert r.code == 4 and "admin sync" in r.err


def test_request_creates_and_validates(api):
    r = mlctl("quota", "request", "--gpu", "4", "--reason", "scaling 3dgan", "-o", "name")
    assert r.code == 0, r.err
    assert r.out.strip() == "quotarequest/qr-new01" and "4 GPUs" in r.err
    assert api.created[0]["spec"] == {"resources": {"nvidia.com/gpu": "4"}, "reason": "scaling 3dgan"}
    bad = mlctl("quota", "request", "--gpu", "-4", "--reason", "x y z")
    assert bad.code == 2 and "more than zero" in bad.err and len(api.created) == 1
    assert mlctl("quota", "request", "--gpu", "4").code == 2  # --reason is required


def test_requests_list(api):
    r = mlctl("quota", "requests")
    assert r.code == 0 and "qr-abc" in r.out and "Approved" in r.out and "4 GPUs" in r.out
    data = json.loads(mlctl("quota", "requests", "-o", "json").out)
    assert data[0]["status"]["phase"] == "Approved"
    api.requests_list = []
    r = mlctl("quota", "requests")
    assert r.code == 0 and r.out == "" and "No quota requests in u-bob" in r.err
