"""The 3dgan trainer's pure parts: TF_CONFIG and environment parsing, the simulated showers, the GAN's
gradients (against finite differences) and a worker's run, on tiny sizes.

The trainer needs numpy, which mlctl's dev venv does not have: there pytest skips this file, and
tests/integration/test_s3_sandbox.py runs it in the image's own venv as a script (`python THIS_FILE`
runs every test_ function and exits non-zero if one fails), so the checks run either way.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import subprocess
import sys
import traceback
from pathlib import Path

try:
    import numpy as np
except ImportError:
    import pytest

    pytest.skip("numpy is not installed here; the integration tests run this file in the 3dgan image",
                allow_module_level=True)

TRAINER = Path(__file__).resolve().parents[2] / "mlctl" / "sandbox" / "assets" / "images" / "3dgan" / "trainer.py"


def _load():
    spec = importlib.util.spec_from_file_location("trainer_3dgan", TRAINER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


t = _load()


def _raises(fn, match: str):
    try:
        fn()
    except t.BadEnvironment as e:
        assert re.search(match, str(e)), f"{e!s} does not match {match!r}"
        return
    raise AssertionError(f"no BadEnvironment matching {match!r}")


def _cfg(cluster: dict, kind: str, index: int) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


CLUSTER = {"chief": ["c:2222"], "worker": ["w0:2222", "w1:2222"]}


def test_no_tf_config_is_a_single_chief():
    assert t.parse_tf_config(None) == t.parse_tf_config("  ") == t.Task("chief", 0, 1)


def test_tf_config_ranks_chief_first_then_workers():
    chief = t.parse_tf_config(_cfg(CLUSTER, "chief", 0))
    worker = t.parse_tf_config(_cfg(CLUSTER, "worker", 1))
    assert (chief.rank, chief.replicas, chief.is_chief) == (0, 3, True)
    assert (worker.rank, worker.replicas, worker.is_chief) == (2, 3, False)


def test_bad_tf_config_is_explained():
    _raises(lambda: t.parse_tf_config("{"), "not JSON")
    _raises(lambda: t.parse_tf_config("[]"), "JSON object")
    _raises(lambda: t.parse_tf_config(_cfg(CLUSTER, "ps", 0)), "'chief' or 'worker'")
    _raises(lambda: t.parse_tf_config(_cfg(CLUSTER, "worker", 2)), r"worker:2 is not in cluster.worker \(2")
    _raises(lambda: t.parse_tf_config(_cfg(CLUSTER, "worker", -1)), "non-negative")
    _raises(lambda: t.parse_tf_config(_cfg({"chief": ["a", "b"]}, "chief", 0)), "at most one")
    _raises(lambda: t.parse_tf_config(_cfg({"worker": "w0"}, "chief", 0)), "list of addresses")


def test_settings_defaults_and_errors():
    chief, worker = t.Task("chief", 0, 1), t.Task("worker", 0, 2)
    s = t.parse_settings({"OUTPUT_URL": "s3://mlctl-outputs/alice/run1"}, chief)
    assert (s.epochs, s.batch, s.grid, s.output) == (5, 32, 25, ("mlctl-outputs", "alice/run1/"))
    assert t.parse_settings({}, worker).output is None
    _raises(lambda: t.parse_settings({}, chief), "OUTPUT_URL is not set")
    _raises(lambda: t.parse_settings({"OUTPUT_URL": "file:///data/out"}, chief), "s3:// URL")
    _raises(lambda: t.parse_settings({"OUTPUT_URL": "s3:///x"}, chief), "no bucket")
    _raises(lambda: t.parse_settings({"EPOCHS": "five"}, worker), "EPOCHS must be an integer")
    _raises(lambda: t.parse_settings({"EPOCHS": "0"}, worker), "EPOCHS must be at least 1")
    _raises(lambda: t.parse_settings({"LR": "2"}, worker), "LR must be between")


def test_showers_look_like_showers():
    rng = np.random.default_rng(7)
    deposits, energy = t.showers(200, 12, rng)
    assert deposits.shape == (200, 12, 12, 12) and energy.shape == (200,)
    assert deposits.min() >= 0 and ((10 <= energy) & (energy <= 100)).all()
    contained = deposits.sum(axis=(1, 2, 3)) / energy
    assert 0.9 < contained.mean() < 1.1  # the deposits add up to the primary energy, within fluctuations
    depth = np.arange(12) + 0.5
    profile = deposits.sum(axis=(1, 2))
    mean_depth = (profile * depth).sum(axis=1) / profile.sum(axis=1)
    low, high = energy < 30, energy > 80
    assert mean_depth[high].mean() > mean_depth[low].mean()  # higher energy, deeper shower maximum
    transverse = deposits.sum(axis=(2, 3))
    centre = (transverse * (np.arange(12) + 0.5)).sum(axis=1) / transverse.sum(axis=1)
    assert abs(centre.mean() - 6) < 0.5


def test_shards_differ_between_replicas_and_repeat_within_one():
    s = t.parse_settings({"SAMPLES": "4", "GRID": "4"}, t.Task("worker", 0, 3))
    a0, _ = t.shard(t.Task("worker", 0, 3), s)
    a1, _ = t.shard(t.Task("worker", 0, 3), s)
    b, _ = t.shard(t.Task("worker", 1, 3), s)
    assert a0.shape == (4, 64) and np.array_equal(a0, a1) and not np.array_equal(a0, b)


def _numeric_grad(f, params: dict, eps: float = 1e-6) -> dict:
    out = {}
    for k, v in params.items():
        g = np.zeros_like(v)
        for i in np.ndindex(v.shape):
            old = v[i]
            v[i] = old + eps
            up = f()
            v[i] = old - eps
            down = f()
            v[i] = old
            g[i] = (up - down) / (2 * eps)
        out[k] = g
    return out


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    voxels, latent, hidden, n = 6, 3, 4, 5
    gen, disc = t.init_params(voxels, latent, hidden, rng, mean_voxel=rng.uniform(0.1, 1.0, voxels))
    for p in (gen, disc):
        p["b1"] += rng.normal(0, 0.1, p["b1"].shape)  # off the zero that init leaves, for a fair check
    real = rng.uniform(0, 2, (n, voxels))
    e = rng.uniform(0.1, 1, (n, 1))
    z = rng.standard_normal((n, latent))
    _, _, d_grads, g_grads = t.losses_and_grads(gen, disc, real, e, z)
    want_d = _numeric_grad(lambda: t.losses_and_grads(gen, disc, real, e, z)[0], disc)
    want_g = _numeric_grad(lambda: t.losses_and_grads(gen, disc, real, e, z)[1], gen)
    for got, want in ((d_grads, want_d), (g_grads, want_g)):
        for k in want:
            assert np.allclose(got[k].reshape(want[k].shape), want[k], rtol=1e-4, atol=1e-7), k


def test_adam_moves_against_the_gradient():
    params = {"w": np.array([1.0, -1.0])}
    opt = t.Adam(params, lr=0.1)
    opt.step(params, {"w": np.array([2.0, -3.0])})
    assert np.allclose(params["w"], [0.9, -0.9])  # Adam's first step is lr * sign(gradient)


def test_model_metadata_matches_the_saved_arrays():
    s = t.parse_settings({"GRID": "4", "LATENT": "3", "HIDDEN": "5"}, t.Task("worker", 0, 2))
    gen, _ = t.init_params(s.grid ** 3, s.latent, s.hidden, np.random.default_rng(0))
    saved = np.load(io.BytesIO(t.npz(gen)))
    meta = t.model_metadata(s, 2)
    assert meta["format"] == "mlctl-3dgan-generator/v1" and meta["output"]["shape"] == [4, 4, 4]
    assert {k: list(saved[k].shape) for k in saved.files} == meta["arrays"]
    assert all(saved[k].dtype == np.float32 for k in saved.files)


def test_a_worker_trains_its_shard_and_reports_each_epoch():
    env = {"TF_CONFIG": _cfg(CLUSTER, "worker", 0), "EPOCHS": "2", "SAMPLES": "8", "BATCH": "4", "GRID": "4"}
    out = io.StringIO()
    assert t.run(env, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("3dgan worker:0 of 3 replica(s): 8 showers")
    pattern = r"epoch {}/2 loss_g=\d+\.\d{{3}} loss_d=\d+\.\d{{3}} time=\d+\.\ds"
    assert re.fullmatch(pattern.format(1), lines[1]) and re.fullmatch(pattern.format(2), lines[2])
    assert lines[-1] == "training finished"


def test_bad_environment_exits_2_with_one_line():
    for env, message in (
        ({}, "OUTPUT_URL is not set: the chief writes its checkpoints to s3://bucket/prefix/"),
        ({"TF_CONFIG": _cfg(CLUSTER, "worker", 0), "EPOCHS": "0"}, "EPOCHS must be at least 1, got 0"),
    ):
        proc = subprocess.run([sys.executable, str(TRAINER)], env=env, capture_output=True, text=True,
                              timeout=120)
        assert (proc.returncode, proc.stderr, proc.stdout) == (2, f"3dgan: error: {message}\n", "")


def _main() -> int:
    tests = [(name, fn) for name, fn in sorted(globals().items()) if name.startswith("test_") and callable(fn)]
    failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception:  # noqa: BLE001 - report every failing check, then fail
            failed += 1
            print(f"FAILED {name}\n{traceback.format_exc()}", file=sys.stderr)
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main())
