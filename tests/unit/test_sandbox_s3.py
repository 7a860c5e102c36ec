"""The sandbox S3 server's pure parts: bucket policies, admin-API bodies, credentials files, the platform
document's s3 section and the per-user Secret."""

from __future__ import annotations

import base64
import fnmatch
import json
import stat
import xml.etree.ElementTree as ET

import pytest
import yaml

from mlctl.sandbox import s3
from mlctl.sandbox.procs import SandboxError

KEYS = {"alice": "alice", "bob": "bob", "al": "al"}


def _allows(policy: dict, access_key: str, action: str, resource: str, prefix: str | None = None) -> bool:
    """A small evaluator of the statements bucket_policy writes (Allow only; StringLike on s3:prefix)."""
    for st in policy["Statement"]:
        if access_key not in st["Principal"]["AWS"] or action not in st["Action"]:
            continue
        if not any(fnmatch.fnmatchcase(resource, r.removeprefix("arn:aws:s3:::")) for r in st["Resource"]):
            continue
        cond = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if cond is not None and (prefix is None or not any(fnmatch.fnmatchcase(prefix, c) for c in cond)):
            continue
        return True
    return False


def test_policy_confines_each_user_to_their_prefix():
    policy = s3.bucket_policy("mlctl-outputs", KEYS)
    assert policy["Version"] == "2012-10-17"
    assert _allows(policy, "alice", "s3:PutObject", "mlctl-outputs/alice/run/epoch-1/generator.npz")
    assert _allows(policy, "alice", "s3:GetObject", "mlctl-outputs/alice/x")
    assert not _allows(policy, "bob", "s3:GetObject", "mlctl-outputs/alice/x")
    assert not _allows(policy, "bob", "s3:PutObject", "mlctl-outputs/alice/x")
    # "al" is a prefix of "alice" as a string, not as a folder
    assert not _allows(policy, "al", "s3:GetObject", "mlctl-outputs/alice/x")
    assert not _allows(policy, "alice", "s3:GetObject", "mlctl-outputs/aliceX/x")
    assert not _allows(policy, "alice", "s3:GetObject", "mlctl-models/alice/x")  # another bucket's keys


def test_policy_lists_only_under_the_users_prefix():
    policy = s3.bucket_policy("mlctl-outputs", KEYS)
    assert _allows(policy, "bob", "s3:ListBucket", "mlctl-outputs", prefix="bob/")
    assert _allows(policy, "bob", "s3:ListBucket", "mlctl-outputs", prefix="bob/run1/")
    assert not _allows(policy, "bob", "s3:ListBucket", "mlctl-outputs", prefix="alice/")
    assert not _allows(policy, "bob", "s3:ListBucket", "mlctl-outputs", prefix=None)  # the whole bucket
    assert not _allows(policy, "bob", "s3:ListBucket", "mlctl-outputs", prefix="bo")


def test_policy_grants_no_bucket_administration():
    policy = s3.bucket_policy("b", KEYS)
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert not {a for a in actions if "Policy" in a or "Acl" in a or a in ("s3:*", "s3:DeleteBucket")}
    for st in policy["Statement"]:  # every statement names exactly one user's key and only this bucket
        assert len(st["Principal"]["AWS"]) == 1
        assert all(r == "arn:aws:s3:::b" or r.startswith("arn:aws:s3:::b/") for r in st["Resource"])


def test_account_xml_escapes_and_names_the_role():
    doc = ET.fromstring(s3.account_xml("a<b", "s&cret"))
    assert (doc.findtext("Access"), doc.findtext("Secret"), doc.findtext("Role")) == ("a<b", "s&cret", "user")
    assert ET.fromstring(s3.secret_xml("x>y")).findtext("Secret") == "x>y"


def test_credentials_are_made_once_and_readable_only_by_the_owner(tmp_path):
    first = s3._ensure_credentials(tmp_path, "alice")
    assert first == s3._ensure_credentials(tmp_path, "alice") == s3.user_credentials(tmp_path, "alice")
    assert first[0] == "alice" and len(first[1]) >= 30
    path = s3._credentials_file(tmp_path, "alice")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert s3._ensure_credentials(tmp_path, "bob")[1] != first[1]
    assert s3._ensure_credentials(tmp_path, s3.ROOT_ACCOUNT)[0] == s3.ROOT_ACCESS_KEY


def test_user_credentials_errors_name_the_problem_not_the_secret(tmp_path):
    with pytest.raises(SandboxError, match="not a sandbox user"):
        s3.user_credentials(tmp_path, "mallory")
    with pytest.raises(SandboxError, match="mlctl sandbox up"):
        s3.user_credentials(tmp_path, "carol")


def _info(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return {"endpoint": "https://127.0.0.1:9000", "ca_file": str(ca), "region": "us-east-1",
            "buckets": dict(s3.BUCKETS)}


def test_platform_part_says_where_and_how_never_a_secret(tmp_path):
    s3._ensure_credentials(tmp_path, "alice")
    part = s3.platform_part(_info(tmp_path))
    assert part == {
        "endpoint": "https://127.0.0.1:9000", "region": "us-east-1",
        "certificateAuthorityData": base64.b64encode((tmp_path / "ca.crt").read_bytes()).decode(),
        "buckets": {"outputs": "mlctl-outputs", "models": "mlctl-models"}, "prefix": "{user}/",
        "podCaBundle": str(tmp_path / "ca.crt"),
    }
    assert s3.user_credentials(tmp_path, "alice")[1] not in json.dumps(part)


def test_publish_replaces_only_the_s3_section(tmp_path):
    platform = tmp_path / "platform.yaml"
    platform.write_text(yaml.safe_dump({"kind": "Platform", "keycloak": {"issuer": "x"}, "s3": None,
                                        "clusters": [{"name": "local"}]}, sort_keys=False))
    s3.publish(platform, _info(tmp_path))
    doc = yaml.safe_load(platform.read_text())
    assert doc["keycloak"] == {"issuer": "x"} and doc["clusters"] == [{"name": "local"}]
    assert doc["s3"]["endpoint"] == "https://127.0.0.1:9000" and doc["s3"]["prefix"] == "{user}/"


def test_user_secret_object_is_envfrom_ready():
    obj = s3.user_secret_object("u-bob", "bob", "s3cr3t")
    assert obj["metadata"] == {"name": "mlctl-s3", "namespace": "u-bob",
                               "labels": {"app.kubernetes.io/managed-by": "mlctl"}}
    decoded = {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}
    assert decoded == {"AWS_ACCESS_KEY_ID": "bob", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}


def test_version_and_binary_follow_the_wrapper_module():
    assert s3.version() == "v1.8.0"
    assert s3.binary().parent.name == "versitygw-v1.8.0" and s3.binary().name == "versitygw"
