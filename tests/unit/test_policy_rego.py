"""The cluster policy's own tests (policy/*_test.rego of the sandbox assets) run by the real opa, plus checks that the
policy's data speaks of the realm's real groups."""

from __future__ import annotations

import json
import subprocess

import pytest

from mlctl.sandbox import opa
from tests.unit.opa_binary import opa_binary

POLICY = opa.policy_dir()


@pytest.fixture(scope="module")
def exe():
    return opa_binary()


def test_the_policys_opa_tests_pass(exe):
    proc = subprocess.run([str(exe), "test", "--format=json", str(POLICY)], capture_output=True, text=True,
                          timeout=120)
    results = json.loads(proc.stdout)
    failed = [f"{r['package']}.{r['name']}" for r in results if r.get("fail") or r.get("error")]
    assert failed == [] and proc.returncode == 0, (failed, proc.stderr[-2000:])
    names = {r["name"] for r in results}
    # the suite that runs is the one written, not an empty directory
    assert {"test_carol_may_not_burst_to_gcp", "test_carol_is_denied_on_gcp_with_the_policys_reason",
            "test_changing_policy_or_data_over_the_api_is_refused"} <= names
    assert len(results) >= 30


def test_the_policy_compiles_strictly_and_is_formatted(exe):
    check = subprocess.run([str(exe), "check", "--strict", str(POLICY)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run([str(exe), "fmt", "--list", str(POLICY)], capture_output=True, text=True, timeout=60)
    assert fmt.returncode == 0 and fmt.stdout.strip() == "", fmt.stdout + fmt.stderr


def test_the_datas_groups_and_users_exist_in_the_realm():
    realm = json.loads((POLICY.parent / "keycloak" / "realm-ml.json").read_text())
    groups = {g["name"] for g in realm["groups"]}
    users = {u["username"] for u in realm["users"]}
    config = json.loads((POLICY / "data.json").read_text())["mlctl"]["config"]
    assert set(config["clusters"]) == {"local", "gcp"}
    for name, entry in config["clusters"].items():
        assert set(entry["groups"]) <= groups, name
        assert set(entry["users"]) <= users, name


def test_the_sandbox_data_says_what_docs_policy_md_says():
    config = json.loads((POLICY / "data.json").read_text())["mlctl"]["config"]
    gcp = config["clusters"]["gcp"]
    assert (gcp["maxGpusPerJob"], gcp["pools"], gcp["preemptibleOnly"]) == (128, ["gpu"], True)
    assert set(gcp["groups"]) == {"burst-gcp", "platform-admins"}
    assert set(config["clusters"]["local"]["groups"]) == {"ml-users", "gpu-power-users", "burst-gcp", "platform-admins"}
