"""One `mlctl sandbox up` repairs the sandbox after any one of its processes died: the local API server, etcd
and Keycloak are killed in turn, and after a single `up` each the platform answers again (nodes, a job, a
fresh login). Runs against the session's sandbox, which it leaves running and whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
MLCTL = str(Path(sys.executable).parent / "mlctl")


def _env(sandbox, home: Path) -> dict:
    from mlctl.sandbox.build import cache_root

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCTL_")}
    # a fresh config and token cache, the same build cache (binaries, Keycloak, images)
    env.update(MLCTL_SANDBOX_DIR=str(sandbox.root), MLCTL_CACHE_DIR=str(cache_root()),
               XDG_CONFIG_HOME=str(home / "config"),
               XDG_CACHE_HOME=str(home / "cache"), KUBECONFIG=str(home / "kubeconfig"))
    return env


def _run(argv: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([MLCTL, *argv], capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("process", ["local-kube-apiserver", "etcd", "keycloak"])
def test_one_up_brings_back_a_killed_process(sandbox, tmp_path, process):
    from mlctl.sandbox import procs

    state = procs.State.load(sandbox.root)
    old = state.data["processes"][process]["pid"]
    os.killpg(old, signal.SIGKILL)
    sandbox.wait_for(lambda: not procs.State.load(sandbox.root).is_running(process), 30, f"{process} to die")

    env = _env(sandbox, tmp_path)
    up = _run(["sandbox", "up"], env)
    assert up.returncode == 0, up.stderr
    assert len(up.stderr.strip().splitlines()) <= 3, up.stderr  # progress lines only, no log dump

    state = procs.State.load(sandbox.root)
    assert state.is_running(process) and state.data["processes"][process]["pid"] != old
    assert all(state.is_running(n) for n in state.data["processes"]), "every recorded process runs"
    nodes = sandbox.kube("local").list("Node")
    assert len(nodes) == 70 and all(n["metadata"]["labels"].get("mlctl.io/pool") for n in nodes)
    # a new login goes through Keycloak, the token exchange and the local API server's JWT check
    login = _run(["sandbox", "login", "bob"], env, timeout=120)
    assert login.returncode == 0, login.stderr
    listed = _run(["train", "list", "--cluster", "local", "-o", "json"], env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip().startswith("[")
