"""What integration tests share besides fixtures: the one CI-aware skip, and polling for a condition."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str):
    """Skip the test because something it needs cannot run here; under CI=true, fail it instead."""
    if in_ci():
        pytest.fail(f"unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"unavailable: {reason}")


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.25):
    """Poll check until it returns something truthy and return that; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})", pytrace=False)


def admin_sync(sandbox, home) -> dict:
    """Every Keycloak user's namespace and quota, by `mlctl admin sync` (cron's way): the admin client logs in
    with a config of its own under home and syncs; the summary (-o json)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from mlctl.sandbox import keycloak, procs

    mlctl = str(Path(sys.executable).parent / "mlctl")
    kc = keycloak.info(procs.State.load(sandbox.root))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLCTL_")},
           "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"),
           "XDG_STATE_HOME": str(home / "state"), "MLCTL_CLIENT_SECRET": kc["admin_client_secret"]}
    for argv in ([mlctl, "login", "--platform", str(sandbox.platform_file), "--client-credentials",
                  "--client-id", kc["admin_client_id"], "--no-kubeconfig"], [mlctl, "admin", "sync", "-o", "json"]):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def logged_in(sandbox, base, users) -> dict[str, dict[str, str]]:
    """{user: environment} for each demo user, logged in with a config, cache and kubeconfig of its own."""
    from tests.conftest import mlctl

    out = {}
    for user in users:
        env = {"XDG_CONFIG_HOME": str(base / user / "config"), "XDG_CACHE_HOME": str(base / user / "cache"),
               "XDG_STATE_HOME": str(base / user / "state"), "KUBECONFIG": str(base / user / "kubeconfig"),
               "MLCTL_SANDBOX_DIR": str(sandbox.root)}
        r = mlctl("sandbox", "login", user, env=env)
        assert r.code == 0, r.err
        out[user] = env
    return out
