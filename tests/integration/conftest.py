"""Integration-test fixtures: the sandbox, started once per test run, and a fresh namespace per test.

The sandbox is left running after the session so the next run starts in seconds (`mlctl sandbox down`, or
`python -c "from mlctl.sandbox import core; core.down()"`, stops it). Under CI=true a sandbox that cannot be
brought up fails every integration test; elsewhere those tests are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unavailable(reason: str):
    if _in_ci():
        pytest.fail(f"sandbox unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"sandbox unavailable: {reason}")


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


class Sandbox:
    """A running sandbox: admin clients per cluster, kubectl, the platform document."""

    def __init__(self, root: Path, info: dict):
        from mlctl.sandbox import core

        self.root = root
        self.info = info
        from mlctl.sandbox import stack

        self.env = stack.env(root)
        self.kubeconfig = Path(self.env["KUBECONFIG"])
        self.platform_file = Path(self.env["MLCTL_PLATFORM_FILE"])
        self.kubectl_path = core.binaries()["kubectl"]
        self._clients: dict[str, object] = {}

    wait_for = staticmethod(wait_for)

    @property
    def state(self):
        """The sandbox's procs.State, freshly loaded (other components record their processes there too)."""
        from mlctl.sandbox import procs

        return procs.State.load(self.root)

    @staticmethod
    def context(cluster: str = "local") -> str:
        return f"sandbox-{cluster}"

    @property
    def platform(self) -> dict:
        return yaml.safe_load(self.platform_file.read_text())

    def api(self, cluster: str = "local"):
        """The admin kubernetes.client.ApiClient of cluster (one per context, cached)."""
        if cluster not in self._clients:
            from mlctl.sandbox import kubeclient

            self._clients[cluster] = kubeclient.api_client(self.kubeconfig, f"sandbox-{cluster}")
        return self._clients[cluster]

    def core(self, cluster: str = "local"):
        from kubernetes import client

        return client.CoreV1Api(self.api(cluster))

    def kubectl_argv(self, *args: str, cluster: str = "local") -> list[str]:
        return [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", f"--context=sandbox-{cluster}", *args]

    def kubectl(self, *args: str, cluster: str = "local", check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.kubectl_argv(*args, cluster=cluster), capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}", pytrace=False)
        return proc

    def close(self) -> None:
        for api in self._clients.values():
            api.close()
        self._clients.clear()


@pytest.fixture(scope="session")
def sandbox():
    try:
        from mlctl.sandbox import core, stack
    except ImportError as exc:
        _unavailable(f"cannot import mlctl.sandbox: {exc}")
    root = core.state_dir()
    try:
        info = stack.up(root)
    except Exception as exc:  # any failure to start is the sandbox being unavailable
        _unavailable(f"`up` in {root} failed: {exc}")
    sb = Sandbox(root, info)
    yield sb
    sb.close()


@pytest.fixture
def namespace(sandbox, request):
    """A factory: namespace(cluster="local") creates a fresh namespace for this test, deleted afterwards."""
    from kubernetes import client

    from mlctl.sandbox import kubeclient

    created: list[tuple[str, str]] = []

    def make(cluster: str = "local") -> str:
        base = request.node.name.lower().replace("_", "-")
        base = "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-")
        name = f"t-{base}-{uuid.uuid4().hex[:6]}"
        client.CoreV1Api(sandbox.api(cluster)).create_namespace(
            {"metadata": {"name": name, "labels": {"mlctl.io/test": "true"}}}
        )
        created.append((cluster, name))
        # pods are refused until the service-account controller has made the namespace's default account
        wait_for(lambda: kubeclient.has_service_account(sandbox.api(cluster), name, "default"), 30,
                 f"service account default in {name}")
        return name

    yield make
    for cluster, name in created:
        try:
            client.CoreV1Api(sandbox.api(cluster)).delete_namespace(name)
        except Exception:  # noqa: BLE001 - cleanup must not hide the test's own result
            pass
