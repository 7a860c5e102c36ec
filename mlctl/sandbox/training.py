"""The Kubeflow training-operator of one sandbox cluster: its CRDs, and the manager run out of cluster.

The manager (built by `python -m mlctl.sandbox.build training-operator`) runs as a plain process against a kubeconfig of
its own, with only the TFJob and PyTorchJob controllers. v1.8 always starts its admission-webhook server and
a cert rotator; neither can be switched off by a flag, so both are satisfied instead:

- the webhook server reads tls.crt/tls.key from $TMPDIR/k8s-webhook-server/serving-certs, so TMPDIR points
  into the state directory and the sandbox CA issues the pair;
- the rotator needs the Secret kubeflow/training-operator-webhook-cert to exist (it fills it itself) and only
  checks that /tmp/k8s-webhook-server/serving-certs/tls.crt exists (a path compiled into v1.8.1), so the
  public certificate is copied there;
- no ValidatingWebhookConfiguration is registered, so the API server never calls the webhooks (the rotator
  logs "Webhook not found" once and carries on). docs/training-operator.md says why.
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

from mlctl.sandbox import pki
from mlctl.sandbox.component import Component, Context
from mlctl.sandbox.procs import SandboxError, State, wait_until

MODULE = "github.com/kubeflow/training-operator"
CRDS = ("kubeflow.org_tfjobs.yaml", "kubeflow.org_pytorchjobs.yaml")
WEBHOOK_SECRET = "webhook-cert-secret.yaml"
NAMESPACE = "kubeflow"
FIELD_MANAGER = "mlctl-sandbox"
# The rotator's cert dir is a constant in pkg/cert of v1.8.1; it only stats tls.crt there.
ROTATOR_CERT = Path("/tmp/k8s-webhook-server/serving-certs/tls.crt")
START_TIMEOUT = 90.0


def manifests_dir() -> Path:
    from mlctl.sandbox import core  # imported late: core may start the operator itself

    return core.source_dir() / "manifests" / "training-operator"


def crds_dir() -> Path:
    """The operator's own CRDs, read from its module in the Go module cache (the build downloaded it)."""
    from mlctl.sandbox import build

    folder = build.module_dir("training-operator", MODULE) / "manifests" / "base" / "crds"
    if not folder.is_dir():
        raise SandboxError(f"{folder} holds no CRDs")
    return folder


def version() -> str:
    """The training-operator version the wrapper module pins (the build table's single source of truth)."""
    from mlctl.sandbox import build

    return build.version("training-operator")


def binary() -> Path:
    """Where the build puts the manager."""
    from mlctl.sandbox import build

    return build.path("training-operator")


def process_name(cluster: str) -> str:
    return f"training-operator-{cluster}"


def _load_yaml_documents(path: Path) -> list[dict]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are ~0.5 MB each
    with open(path) as f:
        return [doc for doc in yaml.load_all(f, Loader=loader) if doc]


def _api_client(kubeconfig: Path, context: str):
    from mlctl.kube.api import from_kubeconfig

    return from_kubeconfig(str(kubeconfig), context)


def _apply(api, doc: dict) -> None:
    """Server-side apply one object; the CRDs are too large for a last-applied annotation."""
    api.apply(doc, FIELD_MANAGER, force=True)


def established(api, name: str) -> bool:
    """Whether the CRD name is served (condition Established)."""
    crd = api.get("CustomResourceDefinition", name)
    return any(c["type"] == "Established" and c["status"] == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def install_crds(kubeconfig: Path, context: str) -> list[str]:
    """Apply the TFJob and PyTorchJob CRDs (and the webhook-cert Secret) and wait until they are served.

    Returns the CRD names. Idempotent.
    """
    api = _api_client(kubeconfig, context)
    try:
        names = []
        for file in CRDS:
            for doc in _load_yaml_documents(crds_dir() / file):
                _apply(api, doc)
                names.append(doc["metadata"]["name"])
        for doc in _load_yaml_documents(manifests_dir() / WEBHOOK_SECRET):
            _apply(api, doc)
        for name in names:
            wait_until(lambda n=name: established(api, n), 30, f"CRD {name} to be established")
        return names
    finally:
        api.close()


def _ensure_webhook_secret(kubeconfig: Path, context: str) -> None:
    api = _api_client(kubeconfig, context)
    try:
        for doc in _load_yaml_documents(manifests_dir() / WEBHOOK_SECRET):
            _apply(api, doc)
    finally:
        api.close()


def _kubeconfig_for(kubeconfig: Path, context: str, out: Path) -> Path:
    """Write a kubeconfig holding only context, as current-context.

    controller-runtime has --kubeconfig but no --context flag; relative file paths are made absolute
    because the copy lives in another directory.
    """
    import yaml

    full = yaml.safe_load(kubeconfig.read_text())
    base = kubeconfig.resolve().parent

    def pick(section: str, name: str) -> dict:
        for entry in full.get(section) or []:
            if entry["name"] == name:
                return entry
        raise SandboxError(f"{kubeconfig} has no {section[:-1]} named {name}")

    ctx = pick("contexts", context)
    cluster = pick("clusters", ctx["context"]["cluster"])
    user = pick("users", ctx["context"]["user"])
    for entry, keys in ((cluster["cluster"], ("certificate-authority",)),
                        (user["user"], ("client-certificate", "client-key", "tokenFile"))):
        for key in keys:
            if entry.get(key) and not Path(entry[key]).is_absolute():
                entry[key] = str(base / entry[key])
    minimal = {
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "contexts": [ctx], "clusters": [cluster], "users": [user],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(minimal, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(out)
    return out


def _serving_certs(state: State, cluster: str, tmpdir: Path) -> None:
    """Give the webhook server a key pair from the sandbox CA and satisfy the rotator's existence check."""
    crt, key = pki.issue(state.root / "pki", f"training-operator-{cluster}-webhook", "training-operator",
                         hosts=("127.0.0.1", "localhost"))
    certs = tmpdir / "k8s-webhook-server" / "serving-certs"
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(crt, certs / "tls.crt")
    shutil.copyfile(key, certs / "tls.key")
    (certs / "tls.key").chmod(0o600)
    if not ROTATOR_CERT.exists():
        try:
            ROTATOR_CERT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(crt, ROTATOR_CERT)
        except OSError as e:
            raise SandboxError(f"training-operator needs {ROTATOR_CERT}, which cannot be written: {e}") from e


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def start(state: State, cluster: str, kubeconfig: Path, context: str) -> dict:
    """Start the training-operator of cluster (if it does not run yet) and wait until it is ready.

    The CRDs must be installed first (install_crds). Returns what a caller may record or print: name, pid,
    log, health and metrics URLs, webhook port.
    """
    exe = binary()
    if not exe.is_file():
        raise SandboxError(f"{exe} is missing; build it with: python -m mlctl.sandbox.build training-operator")
    name = process_name(cluster)
    home = state.root / name
    tmpdir = home / "tmp"
    health = state.port(f"{name}-health")
    metrics = state.port(f"{name}-metrics")
    webhook = state.port(f"{name}-webhook")
    _ensure_webhook_secret(kubeconfig, context)
    _serving_certs(state, cluster, tmpdir)
    own_kubeconfig = _kubeconfig_for(kubeconfig, context, home / "kubeconfig")
    # started, kept, or restarted when its command line or kubeconfig changed
    argv = [
        str(exe),
        f"--kubeconfig={own_kubeconfig}",
        "--enable-scheme=tfjob",
        "--enable-scheme=pytorchjob",
        f"--metrics-bind-address=127.0.0.1:{metrics}",
        f"--health-probe-bind-address=127.0.0.1:{health}",
        f"--webhook-server-port={webhook}",
        "--leader-elect=false",
        "--gang-scheduler-name=",
        "--zap-log-level=info",
        "--zap-time-encoding=iso8601",
    ]
    state.ensure(name, argv, files=[own_kubeconfig],
                 env={"TMPDIR": str(tmpdir), "MY_POD_NAMESPACE": NAMESPACE})
    readyz = f"http://127.0.0.1:{health}/readyz"
    wait_until(lambda: _ready(readyz), START_TIMEOUT, f"{name} to be ready ({readyz})", state, name)
    proc = state.data["processes"][name]
    return {
        "name": name,
        "pid": proc["pid"],
        "log": proc["log"],
        "health": readyz,
        "metrics": f"http://127.0.0.1:{metrics}/metrics",
        "webhook_port": webhook,
        "version": version(),
    }


def stop(state: State, cluster: str) -> bool:
    """Stop the training-operator of cluster; True if it was running."""
    return state.stop(process_name(cluster))


class TrainingOperator(Component):
    """The Kubeflow training-operator of each cluster: its CRDs, then the manager out of cluster."""

    name = "training-operator"
    binaries = ("training-operator",)

    def start(self, ctx: Context) -> dict:
        from mlctl.sandbox import core

        out = {}
        for cluster in core.CLUSTERS:
            context = f"sandbox-{cluster}"
            install_crds(ctx.kubeconfig, context)
            state = ctx.state
            if ctx.apiserver_restarted(cluster) and state.is_running(process_name(cluster)):
                state.restart(process_name(cluster), timeout=10)
            out[cluster] = start(ctx.state, cluster, ctx.kubeconfig, context)
        return out

    def processes(self, ctx: Context) -> list[str]:
        from mlctl.sandbox import core

        return [process_name(c) for c in core.CLUSTERS]
