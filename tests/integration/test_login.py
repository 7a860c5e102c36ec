"""Login end to end against the sandbox's Keycloak, KDC and API servers, through mlctl's real entry point
(in-process, or as a subprocess where kubectl runs it as an exec plugin)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import mlctl

pytestmark = pytest.mark.integration

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
MLCTL = str(Path(sys.executable).parent / "mlctl")


@pytest.fixture
def user_env(sandbox, home, monkeypatch):
    """An empty mlctl config/cache and kubeconfig for one test, pointed at the sandbox platform."""
    monkeypatch.setenv("KUBECONFIG", str(home / "kubeconfig"))
    monkeypatch.setenv("KRB5_CONFIG", sandbox.env["KRB5_CONFIG"])
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{home / 'no-ticket'}")
    return home


def login(sandbox, user: str, *extra: str, password: str | None = None):
    return mlctl("login", "--platform", str(sandbox.platform_file), "--password", "-u", user, *extra,
                 stdin=(password or f"{user}-pw") + "\n")


def subprocess_env() -> dict:
    return {k: v for k, v in os.environ.items()}


def kubectl(sandbox, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(sandbox.kubectl_path), *args], capture_output=True, text=True, timeout=60,
                          env=subprocess_env())


def test_password_login_writes_contexts_and_kubectl_is_alice(sandbox, user_env):
    r = login(sandbox, "alice")
    assert r.code == 0, r.err
    assert "Logged in to sandbox as alice" in r.err and not JWT.search(r.out + r.err)
    assert "alice-pw" not in r.out + r.err
    config = yaml.safe_load((user_env / "kubeconfig").read_text())
    assert {c["name"] for c in config["contexts"]} == {"mlctl-local", "mlctl-gcp"}
    # the real kubectl, through the exec plugin
    out = kubectl(sandbox, "--context", "mlctl-local", "auth", "whoami", "-o", "json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)["status"]["userInfo"]
    assert info["username"] == "oidc:alice"
    assert {"oidc:ml-users", "oidc:burst-gcp"} <= set(info["groups"])
    who = mlctl("whoami", "-o", "json")
    data = json.loads(who.out)
    assert data["user"] == "alice" and data["groups"] == ["burst-gcp", "ml-users"]
    assert set(data["clusters"]) == {"local", "gcp"}


def test_login_keeps_the_users_other_contexts(sandbox, user_env):
    (user_env / "kubeconfig").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "mine",
        "clusters": [{"name": "mine", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "mine", "user": {"token": "not-a-real-one"}}],
        "contexts": [{"name": "mine", "context": {"cluster": "mine", "user": "mine"}}]}))
    r = login(sandbox, "carol")
    assert r.code == 0, r.err
    config = yaml.safe_load((user_env / "kubeconfig").read_text())
    assert config["current-context"] == "mine"
    # carol (ml-users) may not use gcp: the policy leaves its context out, and login says so
    assert {c["name"] for c in config["contexts"]} == {"mine", "mlctl-local"}
    assert "gcp" in r.err and "burst-gcp" in r.err


def test_cache_files_are_private(sandbox, user_env):
    assert login(sandbox, "carol").code == 0
    cache = user_env / "cache" / "mlctl" / "tokens" / "sandbox"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    files = list(cache.glob("*.json"))
    assert {f.name for f in files} >= {"session.json", "cluster-local.json", "cluster-gcp.json"}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_cluster_tokens_are_not_interchangeable(sandbox, user_env):
    assert login(sandbox, "alice").code == 0
    cache = user_env / "cache" / "mlctl" / "tokens" / "sandbox"
    platform = sandbox.platform
    servers = {c["name"]: c["server"] for c in platform["clusters"]}
    ca = str(sandbox.root / "pki" / "ca.crt")
    for token_of, server_of, expected in (("local", "local", 201), ("local", "gcp", 401),
                                          ("gcp", "gcp", 201), ("gcp", "local", 401)):
        token = json.loads((cache / f"cluster-{token_of}.json").read_text())["token"]
        resp = requests.post(f"{servers[server_of]}/apis/authentication.k8s.io/v1/selfsubjectreviews",
                             json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                             headers={"Authorization": f"Bearer {token}"}, verify=ca, timeout=30)
        assert resp.status_code == expected, (token_of, server_of, resp.text)


def test_expired_tokens_are_refreshed_transparently(sandbox, user_env):
    assert login(sandbox, "bob").code == 0
    cache = user_env / "cache" / "mlctl" / "tokens" / "sandbox"
    session = json.loads((cache / "session.json").read_text())
    old_access = session["access_token"]
    session["expires_at"] = time.time() - 10
    (cache / "session.json").write_text(json.dumps(session))
    entry = json.loads((cache / "cluster-local.json").read_text())
    entry["expires_at"] = time.time() - 10
    (cache / "cluster-local.json").write_text(json.dumps(entry))

    # several kubectl-like callers at once: one refresh, one exchange, all get the same token
    results = []

    def call():
        results.append(subprocess.run([MLCTL, "token", "--cluster", "local"], capture_output=True, text=True,
                                      timeout=60, env=subprocess_env()))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    tokens = {json.loads(r.stdout)["status"]["token"] for r in results}
    assert len(tokens) == 1 and entry["token"] not in tokens
    assert json.loads((cache / "session.json").read_text())["access_token"] != old_access
    out = kubectl(sandbox, "--context", "mlctl-local", "auth", "whoami", "-o", "json")
    assert out.returncode == 0 and "oidc:bob" in out.stdout


def test_kerberos_login_types_no_password(sandbox, user_env, monkeypatch):
    from mlctl.sandbox import kdc, procs

    ccache = user_env / "ccache-alice"
    kdc.kinit(kdc.info(procs.State.load(sandbox.root)), "alice", "alice-pw", ccache)
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{ccache}")
    r = mlctl("login", "--platform", str(sandbox.platform_file), stdin="")
    assert r.code == 0, r.err
    assert "as alice (kerberos" in r.err
    who = json.loads(mlctl("whoami", "-o", "json").out)
    assert who["user"] == "alice" and who["kerberos"]["principal"].startswith("alice@")


def test_missing_kerberos_ticket_is_one_line_exit_3(sandbox, user_env):
    r = mlctl("login", "--platform", str(sandbox.platform_file), "--kerberos")
    assert r.code == 3
    errors = [line for line in r.err.splitlines() if line.startswith("error:")]
    assert errors == ["error: no valid Kerberos ticket"] and "Traceback" not in r.err


def test_device_flow_approved_in_keycloaks_real_form(sandbox, user_env):
    from tests.integration.test_identity_sandbox import browser_login

    proc = subprocess.Popen([MLCTL, "login", "--platform", str(sandbox.platform_file), "--device"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env())
    try:
        first = ""
        match = None
        while not match:
            line = proc.stderr.readline()
            assert line, f"mlctl exited before printing the device URL: {first}"
            first += line
            match = re.search(r"Open (\S+) and confirm the code (\S+)", line)
        kc = {"ca_file": str(sandbox.root / "pki" / "ca.crt")}
        with requests.Session() as browser:
            done = browser_login(browser, kc, match.group(1), "dave", "dave-pw")
        assert done.status_code == 200
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "as dave (device" in err
    assert not JWT.search(out + err + first)


def test_wrong_password_exit_3(sandbox, user_env):
    r = login(sandbox, "alice", password="not-her-password")
    assert r.code == 3
    assert "error: password login failed" in r.err and "not-her-password" not in r.err
    assert "Traceback" not in r.err


def _platform_variant(sandbox, path: Path, issuer: str) -> str:
    doc = sandbox.platform
    doc["keycloak"]["issuer"] = issuer
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_unknown_realm_exit_4(sandbox, user_env):
    issuer = sandbox.platform["keycloak"]["issuer"].replace("/realms/ml", "/realms/nope")
    r = mlctl("login", "--platform", _platform_variant(sandbox, user_env / "p.yaml", issuer), "--password",
              "-u", "alice", stdin="alice-pw\n")
    assert r.code == 4, r.err
    assert "realm 'nope' does not exist" in r.err


def test_keycloak_down_exit_7(sandbox, user_env):
    from mlctl.sandbox.procs import free_port

    issuer = f"https://127.0.0.1:{free_port()}/realms/ml"
    r = mlctl("login", "--platform", _platform_variant(sandbox, user_env / "p.yaml", issuer), "--password",
              "-u", "alice", stdin="alice-pw\n")
    assert r.code == 7, r.err
    errors = [line for line in r.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: cannot reach Keycloak")


def test_debug_traces_carry_no_token(sandbox, user_env):
    r = login(sandbox, "carol", "--debug")
    assert r.code == 0, r.err
    assert "debug:" in r.err  # the trace is really on
    assert not JWT.search(r.err + r.out) and "carol-pw" not in r.err
    for args in (("whoami", "--debug"), ("train", "list", "--debug")):
        out = mlctl(*args)
        assert not JWT.search(out.err + out.out), args


def test_logout_revokes_and_clears(sandbox, user_env):
    assert login(sandbox, "carol").code == 0
    cache = user_env / "cache" / "mlctl" / "tokens" / "sandbox"
    refresh = json.loads((cache / "session.json").read_text())["refresh_token"]
    r = mlctl("logout")
    assert r.code == 0 and "session revoked" in r.err
    assert not cache.exists()
    assert mlctl("whoami").code == 3
    platform = sandbox.platform
    kc = platform["keycloak"]
    resp = requests.post(f"{kc['issuer']}/protocol/openid-connect/token", timeout=30,
                         verify=str(sandbox.root / "pki" / "ca.crt"),
                         data={"grant_type": "refresh_token", "refresh_token": refresh,
                               "client_id": kc["clientId"], "client_secret": kc["clientSecret"]})
    assert resp.status_code == 400  # the session is gone at Keycloak too
