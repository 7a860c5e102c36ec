"""The one interface of a sandbox component, and the context the runner hands each of them.

A component is a module under mlctl/sandbox/ with one `Component` subclass. The runner (runner.py) builds
every component's binaries, then takes the components in order and, for each: applies its manifests to every
cluster (once the control plane is up), starts it (idempotent: a process that runs with the same command line
and configuration is kept, a dead or changed one is started again), and merges its part of the platform
document. docs/sandbox.md says, step by step, how to add one.
"""

from __future__ import annotations

from pathlib import Path

from mlctl.sandbox.procs import State


class Context:
    """What components share during one `up`: the state directory, what earlier components reported
    (`info[name]`), and admin access to the clusters once they run."""

    def __init__(self, root: Path, components: list[Component]):
        self.root = root
        self.components = components
        self.info: dict[str, dict] = {}
        self._kubes: dict = {}

    @property
    def state(self) -> State:
        """state.json as it is on disk now (every component records its processes there)."""
        return State.load(self.root)

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    def dir(self, name: str) -> Path:
        """A directory of the component's own under the state directory (nothing is shared between two
        sandboxes)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def kube(self, cluster: str):
        """The admin Kube of a cluster (mlctl/kube/api.py)."""
        if cluster not in self._kubes:
            from mlctl.kube.api import from_kubeconfig

            self._kubes[cluster] = from_kubeconfig(str(self.kubeconfig), f"sandbox-{cluster}", cluster=cluster)
        return self._kubes[cluster]

    def apiserver_restarted(self, cluster: str) -> bool:
        """Whether this `up` started cluster's API server afresh: its long-running clients restart too."""
        return cluster in (self.info.get("control-plane") or {}).get("apiserversRestarted", [])

    def apiserver_flags(self, cluster: str) -> list[str]:
        """The extra kube-apiserver flags every component started so far asks for on cluster."""
        flags: list[str] = []
        for c in self.components:
            if c.name in self.info:
                flags += c.apiserver_flags(self, cluster)
        return flags

    def close(self) -> None:
        for kube in self._kubes.values():
            kube.close()
        self._kubes.clear()


class Component:
    """One part of the sandbox. Subclasses set `name` and override what they need."""

    name: str = ""
    #: entries of build.BINARIES built before anything starts
    binaries: tuple[str, ...] = ()
    #: whether it needs the clusters' API servers (its manifests are applied before it starts)
    after_clusters: bool = True

    def prepare(self, ctx: Context, log) -> None:
        """Build or download what is not a Go binary (a distribution, a venv); cached, once."""

    def apiserver_flags(self, ctx: Context, cluster: str) -> list[str]:
        """Flags this component adds to cluster's kube-apiserver (asked only once it has started)."""
        return []

    def manifests(self, ctx: Context, cluster: str) -> list[dict]:
        """Objects applied (server-side apply) to cluster before start()."""
        return []

    def start(self, ctx: Context) -> dict:
        """Start the component's processes unless they run, wait until they are ready; what it reports."""
        return {}

    def platform(self, ctx: Context) -> dict:
        """Its part of the platform document: top-level keys, and `clusters: {name: {key: value}}`."""
        return {}

    def processes(self, ctx: Context) -> list[str]:
        """The names its processes have in state.json."""
        return []
