"""`mlctl admin sync` and the quota verbs through the real entry point, with Keycloak and the clusters faked."""

from __future__ import annotations

import json

import pytest

from tests.conftest import mlctl
from tests.unit.test_admin_sync import FakeKube, directory
from tests.unit.test_admin_sync_lease import Store


@pytest.fixture
def fakes(platform, monkeypatch):
    apis = {"local": FakeKube("local"), "gcp": FakeKube("gcp")}
    lease_store = Store()
    calls = {"directory": 0}

    def load(f, client_id, secret):
        assert (client_id, secret) == ("mlctl-admin", "s3cret")
        calls["directory"] += 1
        return directory(), 7

    monkeypatch.setattr("mlctl.admin.keycloak_admin.load", load)
    monkeypatch.setattr("mlctl.commands.admin.common.kube_api", lambda f, name, *a, **kw: apis[name])
    monkeypatch.setattr("mlctl.admin.lease.KubeLeaseStore", lambda api, name, ns: lease_store)
    monkeypatch.setenv("MLCTL_ADMIN_CLIENT_ID", "mlctl-admin")
    monkeypatch.setenv("MLCTL_CLIENT_SECRET", "s3cret")
    return apis, lease_store


def test_sync_json_summary_for_cron(fakes):
    apis, lease = fakes
    r = mlctl("admin", "sync", "-o", "json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert (data["created"], data["updated"], data["errors"], data["keycloakRequests"]) == (16, 0, 0, 7)
    assert {c["cluster"] for c in data["clusters"]} == {"local", "gcp"}
    assert lease.writes[0] is not None and lease.writes[-1] is None  # taken, then released
    again = json.loads(mlctl("admin", "sync", "-o", "json").out)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 16)


def test_sync_one_cluster_dry_run_prints_a_diff_and_writes_nothing(fakes):
    apis, lease = fakes
    r = mlctl("admin", "sync", "--cluster", "gcp", "--dry-run", "client")
    assert r.code == 0, r.err
    assert "# cluster gcp: create resourcequota/mlctl-quota in u-bob" in r.out
    assert "+    requests.nvidia.com/gpu: '9'" in r.out
    assert "would be created" in r.err and "(client dry run)" in r.err
    assert apis["gcp"].objects == {} and apis["local"].counts == {} and lease.writes == []


def test_sync_exits_7_when_another_run_holds_the_lease(fakes):
    from mlctl.admin.lease import LeaseLock

    apis, lease = fakes
    LeaseLock(lease, "mlctl-admin-sync", "mlctl-system", me="cron-on-host-b").acquire(0)
    r = mlctl("admin", "sync", "--lock-timeout", "0")
    assert r.code == 7
    assert "another 'mlctl admin sync' holds lease mlctl-system/mlctl-admin-sync (cron-on-host-b)" in r.err
    assert apis["local"].objects == {}


def test_sync_without_admin_credentials_exits_3(platform, monkeypatch):
    monkeypatch.delenv("MLCTL_ADMIN_CLIENT_ID", raising=False)
    monkeypatch.delenv("MLCTL_CLIENT_SECRET", raising=False)
    r = mlctl("admin", "sync")
    assert r.code == 3 and "admin client's id and secret" in r.err


def test_sync_reports_bad_group_attributes_with_exit_2(fakes, monkeypatch):
    def load(f, client_id, secret):
        d = directory()
        d.groups["gpu-power-users"] = {"mlctl.io/quota.requests.nvidia.com/gpu": ["-1"]}
        return d, 1

    monkeypatch.setattr("mlctl.admin.keycloak_admin.load", load)
    r = mlctl("admin", "sync", "-o", "json")
    assert r.code == 2
    assert json.loads(r.out)["problems"][0]["subject"] == "group gpu-power-users"
    assert "error: group gpu-power-users: requests.nvidia.com/gpu: -1 is negative" in r.err


def test_force_needs_prune(fakes):
    assert mlctl("admin", "sync", "--force").code == 2
