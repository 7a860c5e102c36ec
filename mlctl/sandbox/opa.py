"""The sandbox's Open Policy Agent: `opa run --server` over HTTPS with the platform's cluster policy.

One process (`opa` in state.json) serves both entry points of the assets' `policy/` (docs/policy.md): mlctl's
`data.mlctl.clusters.decision(s)` and the apiservers' authorization webhook `data.mlctl.authz.review.<cluster>`.
The binary is built by the sandbox's build table (build.py) into the cache, by the version `go/opa/go.mod` pins.

Narrow interface, so the sandbox's runner can call it like any other part:
    binary() / build(log)                     where the binary is / build it once
    start(state, root=None, pki_dir=None)     idempotent; returns url, ca_file, certificateAuthorityData, ...
    stop(state)                               True if it was running
    webhook_files(info, cluster, out_dir)     AuthorizationConfiguration + kubeconfig for a cluster's apiserver
    platform_section(info)                    the platform document's `opa` key
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
from pathlib import Path

import yaml

from mlctl.sandbox import pki
from mlctl.sandbox.component import Component, Context
from mlctl.sandbox.procs import SandboxError, State, answers, wait_until

MODULE = "github.com/open-policy-agent/opa"
PROCESS = "opa"
PORT = "opa-https"
START_TIMEOUT = 30.0
# The webhook's own deadline per review; kube-apiserver allows at most 30 s. OPA answers in milliseconds,
# so a slow answer means trouble, and the request is refused (failurePolicy: Deny) rather than held.
WEBHOOK_TIMEOUT = "3s"


def _source() -> Path:
    from mlctl.sandbox.build import assets_dir

    return assets_dir()


def version() -> str:
    """The OPA version the wrapper module pins (the build table's)."""
    from mlctl.sandbox import build as builds

    return builds.version("opa")


def binary() -> Path:
    """Where the build puts opa."""
    from mlctl.sandbox import build as builds

    return builds.path("opa")


def build(log: Path | None = None) -> Path:
    """Build opa once (cached by version); return the binary."""
    from mlctl.sandbox import build as builds

    builds.ensure_logged(["opa"], log)
    return binary()


def policy_dir() -> Path:
    """The policy and its data: policy/ of the sandbox's assets ($MLCTL_SANDBOX_SRC honoured)."""
    return _source() / "policy"


def _policy_files(root: Path) -> list[Path]:
    """What the server loads: the policy's .rego modules (not its tests) and its .json data."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".rego", ".json")
                   and not p.name.endswith("_test.rego"))
    if not any(p.suffix == ".rego" for p in files):
        raise SandboxError(f"{root} holds no Rego policy")
    return files


def _argv(exe: Path, port: int, crt: Path, key: Path, files: list[Path]) -> list[str]:
    return [
        str(exe), "run", "--server",
        f"--addr=127.0.0.1:{port}",
        f"--tls-cert-file={crt}", f"--tls-private-key-file={key}",
        # every API call is checked by data.system.authz (policy/system.rego): queries only, so nobody
        # replaces the policy or its data over HTTP
        "--authorization=basic",
        # no call home: the sandbox has no network but the package registries
        "--skip-version-check",
        # decisions go to the log with an id, which the v1 API also returns to mlctl (Decision.id)
        "--set=decision_logs.console=true",
        "--log-level=info",
        "--shutdown-grace-period=1",
        *(str(f) for f in files),
    ]


def _fingerprint(argv: list[str], files: list[Path]) -> str:
    h = hashlib.sha256(json.dumps(argv).encode())
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()


def healthy(port: int, ca_file: Path, timeout: float = 2.0) -> bool:
    """True when OPA answers /health over TLS verified by the sandbox CA (it has loaded the policy)."""
    return answers(port, "/health", ca_file=ca_file, timeout=timeout)


def info(state: State) -> dict:
    """What start() returns, without starting anything."""
    state.refresh()
    port = state.port(PORT)
    ca_file = state.root / "pki" / "ca.crt"
    proc = state.data["processes"].get(PROCESS) or {}
    return {
        "name": PROCESS,
        "url": f"https://127.0.0.1:{port}",
        "port": port,
        "ca_file": str(ca_file),
        "certificateAuthorityData": base64.b64encode(ca_file.read_bytes()).decode() if ca_file.exists() else None,
        "pid": proc.get("pid"),
        "log": proc.get("log"),
        "running": state.is_running(PROCESS),
        "version": version(),
    }


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners do: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port(state: State, rechoose: bool = False) -> int:
    """The recorded port, chosen again (OPA being down) when something else holds it, or when asked to."""
    port = state.port(PORT)
    if rechoose or not _bindable(port):
        state.refresh()
        state.data["ports"].pop(PORT, None)
        state.save()
        port = state.port(PORT)
    return port


def start(state: State, root: Path | None = None, pki_dir: Path | None = None) -> dict:
    """Start OPA with the policy in root (default policy_dir()) unless it already runs with the same command
    line and the same policy files; restart it when it died or the policy changed. Waits for /health.

    Returns info(state) plus `action` (kept | started | restarted) and `policy` (the directory loaded).
    """
    root = Path(root or policy_dir())
    pki_dir = Path(pki_dir or state.root / "pki")
    exe = binary()
    if not os.access(exe, os.X_OK):
        raise SandboxError(f"{exe} is missing; build it with: python -m mlctl.sandbox.build opa")
    ca_file, _ = pki.ensure_ca(pki_dir)
    crt, key = pki.issue(pki_dir, "opa", "opa", hosts=("127.0.0.1", "localhost"))
    files = _policy_files(root)

    state.refresh()
    port = state.port(PORT)
    if state.is_running(PROCESS) and \
            state.data.get("fingerprints", {}).get(PROCESS) == _fingerprint(_argv(exe, port, crt, key, files), files):
        action = "kept"
    else:
        action = "restarted" if state.stop(PROCESS, timeout=5.0) else "started"
        # The port was free when chosen, but this machine is shared: another process may have bound it while
        # OPA was down, or in the moment between this check and OPA's own bind (then OPA exits; one more try).
        for attempt in (1, 2):
            port = _free_port(state, rechoose=attempt == 2)
            argv = _argv(exe, port, crt, key, files)
            state.start(PROCESS, argv)
            state.data["processes"][PROCESS]["port"] = port
            state.data.setdefault("fingerprints", {})[PROCESS] = _fingerprint(argv, files)
            state.save()
            try:
                wait_until(lambda p=port: healthy(p, ca_file), START_TIMEOUT, f"{PROCESS} /health on port {port}",
                           state, PROCESS)
                break
            except SandboxError:
                if attempt == 2 or state.is_running(PROCESS) or "address already in use" not in state.log_tail(PROCESS):
                    raise
    wait_until(lambda: healthy(port, ca_file), START_TIMEOUT, f"{PROCESS} /health on port {port}", state, PROCESS)
    return {**info(state), "action": action, "policy": str(root)}


def stop(state: State) -> bool:
    """Stop OPA; True if it was running."""
    return state.stop(PROCESS, timeout=5.0)


def webhook_url(opa_info: dict, cluster: str) -> str:
    """Where cluster's apiserver POSTs its SubjectAccessReviews: the v0 data API, which takes the review as
    the input document and answers with the policy's review unwrapped."""
    return f"{opa_info['url']}/v0/data/mlctl/authz/review/{cluster}"


def authorization_config(webhook_kubeconfig: Path, url: str, user_prefix: str = "oidc:") -> str:
    """kube-apiserver's AuthorizationConfiguration: Node, then the OPA webhook, then RBAC.

    Only platform users (oidc: names) are sent to OPA (matchConditions), so system components, service
    accounts and the client-certificate admin never depend on it. For those users the webhook is placed
    before RBAC so that it can deny; it never allows, so a user the policy lets in still needs RBAC.
    failurePolicy Deny: when OPA is down, slow or answers garbage, platform users are refused (fail closed);
    the legacy --authorization-webhook-* flags cannot say this (their failure policy is NoOpinion, which
    would fall through to RBAC and let a denied user in). Decisions are not cached, so a policy change or
    an OPA outage applies to the next request.

    The header names the webhook's URL, so a new OPA port changes this file and therefore restarts the
    apiserver (core.up restarts a process when a file named in its command line changed).
    """
    return f"# generated by mlctl's sandbox; webhook: {url}\n" + yaml.safe_dump({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthorizationConfiguration",
        "authorizers": [
            {"type": "Node", "name": "node"},
            {"type": "Webhook", "name": "opa", "webhook": {
                "timeout": WEBHOOK_TIMEOUT,
                "subjectAccessReviewVersion": "v1",
                "matchConditionSubjectAccessReviewVersion": "v1",
                "failurePolicy": "Deny",
                "authorizedTTL": "1s", "cacheAuthorizedRequests": False,
                "unauthorizedTTL": "1s", "cacheUnauthorizedRequests": False,
                "connectionInfo": {"type": "KubeConfigFile", "kubeConfigFile": str(webhook_kubeconfig)},
                "matchConditions": [{"expression": f"request.user.startsWith({json.dumps(user_prefix)})"}],
            }},
            {"type": "RBAC", "name": "rbac"},
        ],
    }, sort_keys=False)


def webhook_kubeconfig(opa_info: dict, cluster: str) -> str:
    """The kubeconfig the webhook authorizer reads: OPA's review URL for cluster, trusted through the CA."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "opa", "cluster": {"server": webhook_url(opa_info, cluster),
                                                 "certificate-authority": opa_info["ca_file"]}}],
        "users": [{"name": "kube-apiserver", "user": {}}],
        "contexts": [{"name": "opa", "context": {"cluster": "opa", "user": "kube-apiserver"}}],
        "current-context": "opa",
    }, sort_keys=False)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def webhook_files(opa_info: dict, cluster: str, out_dir: Path, user_prefix: str = "oidc:") -> list[str]:
    """Write cluster's AuthorizationConfiguration and webhook kubeconfig into out_dir; return the
    kube-apiserver flag that uses them (for core.up(apiserver_extra=...)). user_prefix: the apiserver's
    prefix for OIDC user names (only those users are sent to OPA)."""
    kubeconfig = _write(out_dir / "authorization-webhook.kubeconfig", webhook_kubeconfig(opa_info, cluster))
    config = _write(out_dir / "authorization.yaml",
                    authorization_config(kubeconfig, webhook_url(opa_info, cluster), user_prefix))
    return [f"--authorization-config={config}"]


def platform_section(opa_info: dict) -> dict:
    """The platform document's `opa` key: where mlctl asks, and the CA that vouches for it."""
    return {"url": opa_info["url"], "certificateAuthorityData": opa_info["certificateAuthorityData"]}


def publish(platform_file: Path, opa_info: dict) -> None:
    """Set the platform document's `opa` key (a read-modify-write: other parts own the other keys)."""
    doc = yaml.safe_load(platform_file.read_text())
    section = platform_section(opa_info)
    if doc.get("opa") != section:
        doc["opa"] = section
        _write(platform_file, yaml.safe_dump(doc, sort_keys=False))


class OPA(Component):
    """OPA with the platform's cluster policy. It starts before the clusters: gcp's API server asks it, through
    its authorization webhook, about every request of a platform user (docs/policy.md)."""

    name = "opa"
    binaries = ("opa",)
    after_clusters = False
    webhook_clusters = ("gcp",)

    def start(self, ctx: Context) -> dict:
        return start(ctx.state)

    def apiserver_flags(self, ctx: Context, cluster: str) -> list[str]:
        if cluster not in self.webhook_clusters:
            return []
        from mlctl.sandbox.keycloak import USER_PREFIX

        return webhook_files(ctx.info[self.name], cluster, ctx.root / "clusters" / cluster, USER_PREFIX)

    def platform(self, ctx: Context) -> dict:
        return {"opa": platform_section(ctx.info[self.name])}

    def processes(self, ctx: Context) -> list[str]:
        return [PROCESS]
