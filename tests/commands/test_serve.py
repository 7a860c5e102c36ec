"""mlctl serve through the real entry point, without a cluster: client dry runs, and every check that must
fail before a server is asked (one line, the DESIGN.md exit code)."""

from __future__ import annotations

import json

import yaml

from tests.conftest import mlctl

URI = "s3://mlctl-outputs/bob/gan3d/20261201T100000Z-abcdef/model/"


def test_create_client_dry_run_prints_the_inference_service(platform):
    r = mlctl("serve", "create", "gen3d", "--model", URI, "--framework", "3dgan", "--min-replicas", "1",
              "--max-replicas", "4", "--target-utilization", "50", "--dry-run=client")
    assert r.code == 0, r.err
    obj = yaml.safe_load(r.out)
    assert obj["kind"] == "InferenceService" and obj["metadata"]["name"] == "gen3d"
    predictor = obj["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"], predictor["scaleTarget"]) == (1, 4, 50)
    assert predictor["model"]["storageUri"] == URI and predictor["model"]["modelFormat"]["name"] == "3dgan"
    j = mlctl("serve", "create", "gen3d", "--model", URI, "--framework", "3dgan", "--gpus", "1",
              "--dry-run=client", "-o", "json")
    assert j.code == 0 and json.loads(j.out)["spec"]["predictor"]["model"]["resources"]["limits"][
        "nvidia.com/gpu"] == "1"


def _one_line_error(r, code: int, words: str) -> None:
    assert r.code == code, (r.code, r.err)
    lines = [ln for ln in r.err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and words in lines[0], r.err
    assert "Traceback" not in r.err and r.out == ""


def test_bad_create_options_fail_before_any_server(platform):
    base = ("serve", "create", "gen3d", "--dry-run=client")
    _one_line_error(mlctl(*base, "--model", URI, "--framework", "kerasish"), 2, "unknown framework 'kerasish'")
    _one_line_error(mlctl(*base, "--model", "gs://bucket/m", "--framework", "3dgan"), 2, "only s3://")
    _one_line_error(mlctl(*base, "--model", "s3://", "--framework", "3dgan"), 2, "not a valid bucket name")
    _one_line_error(mlctl(*base, "--model", URI), 2, "--framework is required")
    _one_line_error(mlctl(*base, "--model", URI, "--framework", "3dgan", "--min-replicas", "3",
                          "--max-replicas", "2"), 2, "below --min-replicas")
    _one_line_error(mlctl(*base, "--model", URI, "--framework", "3dgan", "--target-concurrency", "4"), 2,
                    "needs Serverless")
    _one_line_error(mlctl(*base, "--model", URI, "--framework", "3dgan", "--pool", "tpu"), 2, "has no pool tpu")
    _one_line_error(mlctl("serve", "create", "Gen_3d", "--model", URI, "--dry-run=client"), 2,
                    "not a valid service name")


def test_capacity_is_checked_from_the_platform_document_first(platform):
    # local's gpu pool: 10 nodes x 4 GPUs
    r = mlctl("serve", "create", "gen3d", "--model", URI, "--framework", "3dgan", "--gpus", "4",
              "--min-replicas", "11", "--max-replicas", "12", "--dry-run=client")
    _one_line_error(r, 6, "11 replicas")
    r = mlctl("serve", "create", "gen3d", "--model", URI, "--framework", "3dgan", "--gpus", "8",
              "--dry-run=client")
    _one_line_error(r, 6, "8 GPUs per replica")
    warn = mlctl("serve", "create", "gen3d", "--model", URI, "--framework", "3dgan", "--gpus", "4",
                 "--min-replicas", "2", "--max-replicas", "20", "--dry-run=client")
    assert warn.code == 0 and "warning: 20 replicas will not fit" in warn.err


def test_predict_checks_the_request_before_anything_is_sent(platform, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"instances": [1, 2,]}')
    _one_line_error(mlctl("serve", "predict", "gen3d", "--data", str(bad)), 2, "malformed JSON at line 1")
    _one_line_error(mlctl("serve", "predict", "gen3d", "--data", "-", stdin="not json"), 2, "<stdin>: malformed JSON")
    _one_line_error(mlctl("serve", "predict", "gen3d", "--data", str(tmp_path / "missing.json")), 4, "does not exist")
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps({"inputs": [{"name": "noise", "shape": [1, 16], "datatype": "FP32",
                                          "data": [0.0] * 16}]}))
    r = mlctl("serve", "predict", "gen3d", "--data", str(v2))
    _one_line_error(r, 2, "a v1 request needs")
    assert "hint: this looks like a v2 request: pass --protocol v2" in r.err


def test_load_bounds_are_checked(platform, tmp_path):
    data = tmp_path / "r.json"
    data.write_text('{"instances": [{"noise": [0.0], "energy": 50}]}')
    _one_line_error(mlctl("serve", "load", "gen3d", "--data", str(data), "--concurrency", "0"), 2, "--concurrency")
    _one_line_error(mlctl("serve", "load", "gen3d", "--data", str(data), "--duration", "0"), 2, "--duration")
    _one_line_error(mlctl("serve", "load", "gen3d", "--data", str(data), "--rps", "-1"), 2, "--rps")


def test_without_a_server_the_verbs_say_so_with_exit_7(platform):
    """Nothing listens at the platform's API server address: one line, exit 7 (with a cached session)."""
    import time

    cache = platform / "cache" / "mlctl" / "tokens" / "lab"
    cache.mkdir(parents=True)
    (cache / "cluster-local.json").write_text(json.dumps({"token": "t0k3n", "expires_at": time.time() + 600}))
    (cache / "session.json").write_text(json.dumps({"user": "bob", "refresh_token": "r", "groups": []}))
    for args in (["list"], ["status", "gen3d"], ["describe", "gen3d"], ["logs", "gen3d"],
                 ["scale", "gen3d", "--max-replicas", "3"], ["delete", "gen3d", "--yes"]):
        r = mlctl("serve", *args)
        assert r.code == 7, (args, r.code, r.err)
        assert r.err.count("error: ") == 1 and "t0k3n" not in r.err + r.out, (args, r.err)


def test_help_lists_every_verb(platform):
    r = mlctl("serve", "--help")
    assert r.code == 0
    for verb in ("create", "list", "status", "describe", "scale", "delete", "logs", "predict", "load"):
        assert f"  {verb} " in r.out, verb
