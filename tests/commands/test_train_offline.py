"""`mlctl train` paths that need no server: render, schema, capacity check, spec errors."""

from __future__ import annotations

import json

import yaml

from tests.conftest import REPO, mlctl

SPEC = str(REPO / "examples" / "3dgan.yaml")


def test_render_for_each_cluster_uses_its_pool(platform):
    r = mlctl("train", "render", SPEC, "--cluster", "gcp", "--user", "alice")
    assert r.code == 0, r.err
    job = next(yaml.safe_load_all(r.out))
    assert job["kind"] == "TFJob" and job["metadata"]["namespace"] == "u-alice"
    workers = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert workers["replicas"] + 1 == 16
    limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 8 or limits["nvidia.com/gpu"] == "8"
    local = next(yaml.safe_load_all(mlctl("train", "render", SPEC, "--cluster", "local", "--user", "alice").out))
    assert local["spec"]["tfReplicaSpecs"] != job["spec"]["tfReplicaSpecs"]


def test_render_json_and_set_override(platform):
    r = mlctl("train", "render", SPEC, "--cluster", "local", "--user", "bob", "--set", "workers=2", "-o", "json")
    assert r.code == 0, r.err
    job = json.loads(r.out)
    assert job["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 1


def test_impossible_request_fails_with_6_before_any_login(platform):
    r = mlctl("train", SPEC, "--cluster", "local", "--set", "resources.gpus=9", "--check")
    assert r.code == 6, r.err
    assert "9 GPUs per worker" in r.err and "4" in r.err
    assert "Traceback" not in r.err


def test_spec_errors_name_file_line_field(platform, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: mlctl.io/v1alpha1\nkind: TrainingJob\nname: gan\nframework: tensorflow\n"
                   "image: img:1\nresources:\n  gpus: eight\n")
    r = mlctl("train", "render", str(bad))
    assert r.code == 2
    assert r.err.startswith("error: bad.yaml:7: resources.gpus:")
    r = mlctl("train", str(tmp_path / "missing.yaml"))
    assert r.code == 4 and "does not exist" in r.err


def test_schema_is_json(home):
    r = mlctl("train", "schema")
    assert r.code == 0 and "properties" in json.loads(r.out)


def test_job_commands_need_login(platform):
    r = mlctl("train", "list")
    assert r.code == 3 and "not logged in" in r.err


def test_render_from_a_platform_file_needs_no_login_or_profile(home, tmp_path):
    """--platform takes a platform document file, as kubectl's --kubeconfig does: nothing configured."""
    from tests.conftest import PLATFORM_DOC

    doc = tmp_path / "platform.yaml"
    doc.write_text(PLATFORM_DOC)
    r = mlctl("train", "render", SPEC, "--platform", str(doc), "--cluster", "local", "--user", "carol")
    assert r.code == 0, r.err
    job = next(yaml.safe_load_all(r.out))
    assert job["metadata"]["namespace"] == "u-carol" and job["kind"] == "TFJob"
    missing = mlctl("train", "render", SPEC, "--platform", str(tmp_path / "nope.yaml"))
    assert missing.code == 4 and "nope.yaml" in missing.err


def test_a_spec_without_apiversion_and_kind_is_the_current_version(platform, tmp_path):
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text("name: gan\nframework: pytorch\nimage: img:1\nworkers: 2\n")
    r = mlctl("train", "render", str(minimal), "--cluster", "local", "--user", "bob", "-o", "json")
    assert r.code == 0, r.err
    job = json.loads(r.out)
    assert job["kind"] == "PyTorchJob" and job["metadata"]["name"] == "gan"
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("apiVersion: mlctl.io/v9\nname: gan\nframework: pytorch\nimage: img:1\n")
    bad = mlctl("train", "render", str(wrong), "--cluster", "local", "--user", "bob")
    assert bad.code == 2 and "apiVersion" in bad.err
