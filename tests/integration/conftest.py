"""Integration-test fixtures: the sandbox, started once per test run, and a fresh namespace per test.

The sandbox is left running after the session so the next run starts in seconds (`mlctl sandbox down`, or
`python -c "from mlctl.sandbox import core; core.down()"`, stops it). Under CI=true a sandbox that cannot be
brought up fails every integration test; elsewhere those tests are skipped with the reason. A failure of `up`
other than a sandbox component that cannot be built, started or reached is an error of the test run.

Tests talk to the sandbox through mlctl's own Kubernetes layer (`sandbox.kube`), and, where a test checks
mlctl against an independent client, through the kubernetes package (`sandbox.api`, `sandbox.core`).
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.integration.support import unavailable, wait_for


class Sandbox:
    """A running sandbox: admin clients per cluster, kubectl, the platform document."""

    def __init__(self, root: Path, info: dict):
        from mlctl.sandbox import core

        self.root = root
        self.info = info
        from mlctl.sandbox import runner

        self.env = runner.env(root)
        self.kubeconfig = Path(self.env["KUBECONFIG"])
        self.platform_file = Path(self.env["MLCTL_PLATFORM_FILE"])
        self.kubectl_path = core.binaries()["kubectl"]
        self._clients: dict[str, object] = {}
        self._kubes: dict[str, object] = {}

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

    def kube(self, cluster: str = "local"):
        """The admin Kube (mlctl/kube/api.py) of cluster, cached."""
        if cluster not in self._kubes:
            from mlctl.kube.api import from_kubeconfig

            self._kubes[cluster] = from_kubeconfig(str(self.kubeconfig), f"sandbox-{cluster}", cluster=cluster)
        return self._kubes[cluster]

    def api(self, cluster: str = "local"):
        """An independent admin client of cluster: the kubernetes package's ApiClient (cached)."""
        if cluster not in self._clients:
            from kubernetes import client, config

            configuration = client.Configuration()
            config.load_kube_config(config_file=str(self.kubeconfig), context=f"sandbox-{cluster}",
                                    client_configuration=configuration, persist_config=False)
            self._clients[cluster] = client.ApiClient(configuration)
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
        for api in [*self._clients.values(), *self._kubes.values()]:
            api.close()
        self._clients.clear()
        self._kubes.clear()


@pytest.fixture(scope="session")
def sandbox():
    from mlctl.sandbox import core, runner
    from mlctl.sandbox.procs import SandboxError

    root = core.state_dir()
    try:
        info = runner.up(root)
    except SandboxError as exc:  # a component that cannot be built, started or reached here
        unavailable(f"sandbox `up` in {root} failed: {exc}")
    sb = Sandbox(root, info)
    yield sb
    sb.close()


@pytest.fixture
def namespace(sandbox, request):
    """A factory: namespace(cluster="local") creates a fresh namespace for this test, deleted afterwards."""
    created: list[tuple[str, str]] = []

    def make(cluster: str = "local") -> str:
        base = request.node.name.lower().replace("_", "-")
        base = "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-")
        name = f"t-{base}-{uuid.uuid4().hex[:6]}"
        sandbox.kube(cluster).create({"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": name, "labels": {"mlctl.io/test": "true"}}})
        created.append((cluster, name))
        # pods are refused until the service-account controller has made the namespace's default account
        wait_for(lambda: sandbox.kube(cluster).find("ServiceAccount", "default", name), 30,
                 f"service account default in {name}")
        return name

    yield make
    for cluster, name in created:
        try:
            sandbox.kube(cluster).delete("Namespace", name)
        except Exception:  # noqa: BLE001 - cleanup must not hide the test's own result
            pass
