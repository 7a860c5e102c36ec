"""`mlctl train` end to end: bob logs in through Keycloak, submits to the sandbox's training-operator, and kwok
runs the pods (their run time and exit code come from the spec's `simulate` section)."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import mlctl

pytestmark = pytest.mark.integration
MLCTL = str(Path(sys.executable).parent / "mlctl")


def spec(tmp_path: Path, framework: str = "tensorflow", **fields) -> tuple[str, str]:
    """A job spec file with a unique name; returns (path, name)."""
    name = f"t{uuid.uuid4().hex[:8]}"
    doc = {"apiVersion": "mlctl.io/v1alpha1", "kind": "TrainingJob", "name": name, "framework": framework,
           "image": "registry.example.org/ml/test:1", "command": ["python", "train.py"], "workers": 2,
           "resources": {"gpus": 1, "cpu": "1", "memory": "2Gi", "pool": "gpu"},
           "simulate": {"runSeconds": 3}}
    doc.update(fields)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path), name


@pytest.fixture(scope="module")
def tenants(sandbox, tmp_path_factory):
    """Namespaces and quotas for every Keycloak user, made by the real `mlctl admin sync` (cron's way)."""
    from mlctl.sandbox import keycloak, procs

    home = tmp_path_factory.mktemp("admin")
    kc = keycloak.info(procs.State.load(sandbox.root))
    env = {**_base_env(home), "MLCTL_CLIENT_SECRET": kc["admin_client_secret"]}
    login = subprocess.run([MLCTL, "login", "--platform", str(sandbox.platform_file), "--client-credentials",
                            "--client-id", kc["admin_client_id"], "--no-kubeconfig"],
                           capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert login.returncode == 0, login.stderr
    sync = subprocess.run([MLCTL, "admin", "sync", "-o", "json"], capture_output=True, text=True, timeout=300,
                          env=env, stdin=subprocess.DEVNULL)
    assert sync.returncode == 0, sync.stderr
    return json.loads(sync.stdout)


def _base_env(home: Path) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCTL_")}
    env.update(XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               KUBECONFIG=str(home / "kubeconfig"))
    return env


@pytest.fixture
def bob(sandbox, tenants, home, monkeypatch):
    """bob (gpu-power-users: 9 GPUs) logged in through Keycloak in a fresh config."""
    monkeypatch.setenv("KUBECONFIG", str(home / "kubeconfig"))
    r = mlctl("login", "--platform", str(sandbox.platform_file), "--password", "-u", "bob", stdin="bob-pw\n")
    assert r.code == 0, r.err
    return home


def test_tfjob_follow_shows_transitions_and_logs(bob, tmp_path):
    path, name = spec(tmp_path)
    r = mlctl("train", path, "--cluster", "local", "--follow", "--timeout", "120")
    assert r.code == 0, r.err
    assert f"tfjob/{name} created on local in u-bob" in r.err
    states = [line.split(":", 1)[1].split()[0] for line in r.err.splitlines() if line.startswith(f"tfjob/{name}:")]
    assert states[-1] == "Succeeded" and "Running" in states, r.err
    assert f"tfjob/{name} succeeded" in r.err
    # the chief's logs go to stdout (kwok's simulated trainer output, sandbox/kwok/container.log)
    assert "epoch 1/5" in r.out and "training finished" in r.out, r.out
    status = json.loads(mlctl("train", "status", name, "-o", "json").out)
    assert status["state"] == "Succeeded" and status["replicas"]["Chief"]["succeeded"] == 1


def test_pytorchjob_wait_succeeds_and_verbs_work(bob, tmp_path):
    path, name = spec(tmp_path, framework="pytorch", workers=3)
    r = mlctl("train", path, "--cluster", "local", "--wait", "--timeout", "120")
    assert r.code == 0, r.err
    assert f"pytorchjob/{name} succeeded" in r.err
    listed = json.loads(mlctl("train", "list", "-o", "json").out)
    mine = [j for j in listed if j["metadata"]["name"] == name]
    assert mine and mine[0]["kind"] == "PyTorchJob"
    assert f"pytorchjob/{name}" in mlctl("train", "list", "-o", "name").out
    table = mlctl("train", "list").out
    row = next(line for line in table.splitlines() if line.startswith(name))
    assert row.split()[1:4] == ["PyTorchJob", "Succeeded", "3"]  # kind, state, GPUs
    wide = mlctl("train", "list", "-o", "wide").out
    row = next(line for line in wide.splitlines() if line.startswith(name))
    assert row.split()[1:5] == ["PyTorchJob", "Succeeded", "3/3", "3"]  # kind, state, done, GPUs
    assert "Master" in mlctl("train", "describe", name).out
    logs = mlctl("train", "logs", name, "--replica", "worker-1")
    assert logs.code == 0 and logs.out
    events = mlctl("train", "events", name, "-o", "json")
    assert events.code == 0 and json.loads(events.out)
    assert mlctl("train", "delete", name).code == 2  # no terminal: needs --yes
    d = mlctl("train", "delete", name, "--yes")
    assert d.code == 0 and f"pytorchjob/{name} deleted" in d.err
    assert mlctl("train", "status", name).code == 4


def test_failing_replica_fails_the_job_with_reason(bob, tmp_path):
    path, name = spec(tmp_path, simulate={"runSeconds": 2, "exitCode": 3, "failReplica": "Chief-0"})
    r = mlctl("train", path, "--cluster", "local", "--wait", "--timeout", "120")
    assert r.code == 1, r.err
    errors = [line for line in r.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: tfjob/{name} failed:")


def test_check_rejects_impossible_and_over_quota_before_creating(bob, tmp_path):
    path, name = spec(tmp_path, resources={"gpus": 5, "pool": "gpu"})
    r = mlctl("train", path, "--cluster", "local", "--check")
    assert r.code == 6 and "5 GPUs per worker" in r.err
    path, name = spec(tmp_path, workers=3, resources={"gpus": 4, "pool": "gpu"})  # 12 > bob's 9
    r = mlctl("train", path, "--cluster", "local")
    assert r.code == 6, r.err
    assert "12" in r.err and "9" in r.err
    assert name not in mlctl("train", "list", "-o", "name").out  # nothing was created
    path, name = spec(tmp_path, workers=2, resources={"gpus": 4, "pool": "gpu"})
    ok = mlctl("train", path, "--cluster", "local", "--check")
    assert ok.code == 0 and "fits" in ok.err


def test_server_dry_run_validates_without_creating(bob, tmp_path):
    for framework in ("tensorflow", "pytorch"):
        path, name = spec(tmp_path, framework=framework)
        r = mlctl("train", path, "--cluster", "local", "--dry-run", "server")
        assert r.code == 0, r.err
        assert "(server dry run)" in r.err
        assert mlctl("train", "status", name).code == 4


def test_watch_resumes_after_apiserver_restart(bob, sandbox, tmp_path):
    from mlctl.sandbox import core, procs

    path, name = spec(tmp_path, simulate={"runSeconds": 20})
    assert mlctl("train", path, "--cluster", "local").code == 0
    import os

    waiter = subprocess.Popen([MLCTL, "-v", "train", "wait", name, "--timeout", "180"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    seen: list[str] = []
    watchdog = threading.Timer(60, waiter.kill)
    watchdog.start()
    for line in waiter.stderr:  # the apiserver goes down only once the watch is open
        seen.append(line)
        if f"watching tfjob/{name}" in line:
            break
    watchdog.cancel()
    assert any(f"watching tfjob/{name}" in line for line in seen), seen
    state = procs.State.load(sandbox.root)
    argv = state.data["processes"]["local-kube-apiserver"]["argv"]
    state.restart("local-kube-apiserver", timeout=10)  # the same apiserver again: same port, same etcd data
    port = int(next(a for a in argv if a.startswith("--secure-port=")).split("=")[1])
    sandbox.wait_for(lambda: core.port_open(port), 60, "the restarted apiserver")
    try:
        out, err = waiter.communicate(timeout=200)
        err = "".join(seen) + err
        assert waiter.returncode == 0, err
        assert f"tfjob/{name} succeeded" in err
    finally:
        # Controllers that watched the old apiserver process have been seen to stay deaf to NEW objects for
        # minutes afterwards (the training-operator never saw the next test's TFJob until its watch timed
        # out). Restart them, so the tests after this one start from a healthy cluster.
        for proc in ("local-kube-controller-manager", "local-kube-scheduler", "local-kwok",
                     "training-operator-local"):
            state.restart(proc, timeout=10)


def test_ctrl_c_stops_following_not_the_job(bob, tmp_path):
    import os
    import signal

    path, name = spec(tmp_path, simulate={"runSeconds": 8})
    proc = subprocess.Popen([MLCTL, "train", path, "--cluster", "local", "--follow"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    lines: queue.Queue = queue.Queue()

    def read_stderr():  # in a thread, so the wait for "Running" below can time out
        for line in iter(proc.stderr.readline, ""):
            lines.put(line)
        lines.put("")  # end of output

    threading.Thread(target=read_stderr, daemon=True).start()
    seen, deadline = "", time.monotonic() + 120
    while "Running" not in seen:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            pytest.fail(f"the job did not start running within 120 s: {seen}")
        assert line, f"mlctl exited early: {seen}"
        seen += line
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    err = seen + "".join(iter(lambda: lines.get(timeout=5), ""))
    assert proc.returncode == 130, err
    assert "keeps running" in err and "Traceback" not in err
    r = mlctl("train", "wait", name, "--timeout", "120")
    assert r.code == 0 and f"tfjob/{name} succeeded" in r.err
