"""Shared test helpers: run the real mlctl entry point in-process with isolated config and streams."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlctl.io import IO
from mlctl.main import run

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    out: str
    err: str


def mlctl(*args: str, stdin: str = "", tty: bool = False, env: dict[str, str] | None = None) -> Result:
    """Run mlctl in-process; env, when given, is added to this process's environment for that run only
    (the Factory hands it to config, paths and clients)."""
    io = IO.test(stdin, tty=tty)
    code = run(list(args), io=io, env=None if env is None else {**os.environ, **env})
    return Result(code, io.stdout.getvalue(), io.stderr.getvalue())


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty config and cache for one test; no MLCTL_* from the caller's environment leaks in."""
    for key in list(os.environ):
        if key.startswith("MLCTL_") and key not in ("MLCTL_CACHE_DIR", "MLCTL_SANDBOX_DIR", "MLCTL_SANDBOX_SRC"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the audit trail
    return tmp_path


PLATFORM_DOC = """\
apiVersion: mlctl.io/v1alpha1
kind: Platform
name: lab
keycloak: {issuer: "https://sso.example.org/realms/ml", clientId: mlctl}
clusters:
- name: local
  server: https://127.0.0.1:6443
  audience: local
  provider: on-prem
  gpuHourCost: 0
  pools:
    gpu: {nodeSelector: {mlctl.io/pool: gpu}, gpuResource: nvidia.com/gpu, gpusPerNode: 4, nodes: 10,
          gpuModel: A100, cpuPerNode: 32, memoryPerNode: 256Gi}
    cpu: {nodeSelector: {mlctl.io/pool: cpu}, gpuResource: null, gpusPerNode: 0, nodes: 40, cpuPerNode: 64,
          memoryPerNode: 256Gi}
- name: gcp
  server: https://127.0.0.1:7443
  audience: gcp
  provider: gcp
  gpuHourCost: 2.48
  pools:
    gpu: {nodeSelector: {mlctl.io/pool: gpu}, gpuResource: nvidia.com/gpu, gpusPerNode: 8, nodes: 128,
          gpuModel: V100, cpuPerNode: 64, memoryPerNode: 512Gi, preemptible: true,
          tolerations: [{key: cloud.google.com/gke-preemptible, operator: Exists, effect: NoSchedule}]}
"""


@pytest.fixture
def platform(home):
    """A configured platform profile 'lab' (document only; no server behind it)."""
    folder = home / "config" / "mlctl" / "platforms"
    folder.mkdir(parents=True)
    (folder / "lab.yaml").write_text(PLATFORM_DOC)
    (home / "config" / "mlctl" / "config.yaml").write_text("platform: lab\n")
    return home
