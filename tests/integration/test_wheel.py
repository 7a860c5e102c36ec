"""The sandbox ships with the package: a wheel built from this tree, installed into a fresh venv in an empty
directory (no checkout anywhere near it), runs `mlctl sandbox up`, logs bob in, trains a job, and `sandbox down`
stops every process. It uses its own state directory (a second sandbox beside the session's) and the shared
build cache, so it builds nothing but the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

SPEC = """\
name: wheel-smoke
framework: tensorflow
image: registry.example.org/ml/test:1
workers: 1
resources: {gpus: 1, cpu: "1", memory: 2Gi, pool: gpu}
simulate: {runSeconds: 2}
"""


def test_a_wheel_in_a_fresh_venv_runs_the_sandbox(sandbox, tmp_path):
    from mlctl.sandbox import procs
    from mlctl.sandbox.build import cache_root

    wheels, venv, work = tmp_path / "wheels", tmp_path / "venv", tmp_path / "empty"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
                   check=True, timeout=300, capture_output=True)
    wheel = next(wheels.glob("mlctl-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True, timeout=600,
                   capture_output=True)
    mlctl = str(venv / "bin" / "mlctl")
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLCTL_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(MLCTL_SANDBOX_DIR=str(state), MLCTL_CACHE_DIR=str(cache_root()),
               XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               KUBECONFIG=str(tmp_path / "kubeconfig"), PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")

    def run(*args, timeout=300, stdin=None):
        return subprocess.run([mlctl, *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
                              input=stdin)

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import mlctl.sandbox.build as b; print(b.assets_dir())"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)), where  # the assets come from the installed package
    try:
        up = run("sandbox", "up", timeout=900)
        assert up.returncode == 0, up.stderr
        assert run("sandbox", "login", "--admin").returncode == 0
        sync = run("admin", "sync", "-o", "json")
        assert sync.returncode == 0, sync.stderr
        login = run("sandbox", "login", "bob")
        assert login.returncode == 0, login.stderr
        (work / "job.yaml").write_text(SPEC)
        trained = run("train", "job.yaml", "--cluster", "local", "--wait", "--timeout", "180")
        assert trained.returncode == 0, trained.stderr
        assert "tfjob/wheel-smoke succeeded" in trained.stderr
        status = json.loads(run("train", "status", "wheel-smoke", "-o", "json").stdout)
        assert status["state"] == "Succeeded"
    finally:
        recorded = procs.State.load(state).data["processes"]
        started = {name: (p["pid"], p["argv"][0]) for name, p in recorded.items()}
        down = run("sandbox", "down", "--purge", timeout=300)
    assert down.returncode == 0, down.stderr
    assert started and [n for n, (pid, exe) in started.items() if procs.running(pid, exe)] == []
    assert not state.exists()
