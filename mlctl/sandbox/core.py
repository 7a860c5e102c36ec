"""The sandbox's Kubernetes control planes: one etcd and, per cluster, an apiserver, a controller-manager, a
scheduler and kwok, all plain processes whose pids and ports live in <state>/state.json.

`up` is idempotent: components already running with the same command line and configuration are kept,
changed ones are restarted, missing ones started. It writes the admin kubeconfig and the platform document.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import shutil
import ssl
import time
from pathlib import Path

import yaml

from mlctl.sandbox import nodes, pki
from mlctl.sandbox.component import Component, Context
from mlctl.sandbox.procs import SandboxError, State, port_open, probe, wait_until

CLUSTERS = tuple(nodes.CLUSTERS)
CLUSTER_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
CONTROLLERS = (
    "namespace-controller", "garbage-collector-controller", "resourcequota-controller",
    "deployment-controller", "replicaset-controller", "statefulset-controller", "daemonset-controller",
    "job-controller", "cronjob-controller", "ttl-after-finished-controller", "pod-garbage-collector-controller",
    "serviceaccount-controller", "serviceaccount-token-controller", "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller", "endpoints-controller", "endpointslice-controller",
    "disruption-controller",
    # binds PersistentVolumeClaims to PersistentVolumes (a job's data PVC on the burst cluster)
    "persistentvolume-binder-controller",
    # KServe's HPAs, on the pod metrics of metrics-server (docs/metrics.md)
    "horizontal-pod-autoscaler-controller",
)
#: the HPA controller's timing, shortened so a scale-up and the scale-down after it take minutes, not a
#: quarter of an hour (upstream defaults: sync 15s, downscale stabilization 5m0s; docs/metrics.md)
HPA_FLAGS = ("--horizontal-pod-autoscaler-sync-period=5s",
             "--horizontal-pod-autoscaler-downscale-stabilization=30s")
POD_CIDRS = {"local": "10.244.0.1/16", "gcp": "10.245.0.1/16"}
SERVICE_CIDRS = {"local": "10.96.0.0/16", "gcp": "10.97.0.0/16"}
READY_TIMEOUT = 120.0


# ---- where things are -------------------------------------------------------------------------------------

def state_dir() -> Path:
    """$MLCTL_SANDBOX_DIR, else $XDG_STATE_HOME/mlctl/sandbox (default ~/.local/state/mlctl/sandbox)."""
    if os.environ.get("MLCTL_SANDBOX_DIR"):
        return Path(os.environ["MLCTL_SANDBOX_DIR"]).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "mlctl" / "sandbox"


_default_state_dir = state_dir


def source_dir() -> Path:
    """The sandbox's assets (package data, or $MLCTL_SANDBOX_SRC)."""
    from mlctl.sandbox.build import assets_dir

    return assets_dir()


def binaries() -> dict[str, Path]:
    """Paths of the control-plane binaries in the build cache (they may not be built yet)."""
    from mlctl.sandbox import build

    return {**build.paths("etcd"), **build.paths("kubernetes"), **build.paths("kwok")}


def ensure_binaries(log: Path | None = None) -> dict[str, Path]:
    """Build (or find cached) etcd, kubernetes and kwok."""
    from mlctl.sandbox import build

    build.ensure_logged(["etcd", "kubernetes", "kwok"], log)
    return binaries()


# ---- files -----------------------------------------------------------------------------------------------

class _Layout:
    """Paths inside the state directory."""

    def __init__(self, root: Path):
        self.root = root
        self.pki = root / "pki"
        self.etcd_data = root / "etcd"
        self.kubeconfig = root / "kubeconfig"
        self.platform = root / "platform.yaml"
        self.build_log = root / "logs" / "build.log"

    def cluster(self, name: str) -> Path:
        return self.root / "clusters" / name

    def cluster_kubeconfig(self, name: str) -> Path:
        return self.cluster(name) / "kubeconfig"


def _certs(layout: _Layout) -> dict[str, tuple[Path, Path]]:
    p = layout.pki
    ca = pki.ensure_ca(p)
    return {
        "ca": ca,
        "apiserver": pki.issue(
            p, "kube-apiserver", "kube-apiserver",
            hosts=("127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                   "kubernetes.default.svc.cluster.local", "10.96.0.1", "10.97.0.1"),
        ),
        "admin": pki.issue(p, "admin", "mlctl-sandbox-admin", organizations=("system:masters",), client=True),
        "kubelet-client": pki.issue(
            p, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
            organizations=("system:masters",), client=True,
        ),
        # serving certificate of the components that listen on localhost: controller-manager, scheduler, kwok
        "localhost": pki.issue(p, "localhost", "localhost", hosts=("127.0.0.1", "localhost")),
        **{f"sa-{c}": pki.service_account_keys(p / f"sa-{c}") for c in CLUSTERS},
    }


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _write_if_changed(path: Path, text: str, private: bool = False) -> None:
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    if private:
        tmp.chmod(0o600)
    tmp.replace(path)


def _kubeconfig(servers: dict[str, str], certs: dict, embed: bool) -> str:
    ca, (admin_crt, admin_key) = certs["ca"][0], certs["admin"]
    if embed:
        cluster_ca = {"certificate-authority-data": _b64(ca)}
        user = {"client-certificate-data": _b64(admin_crt), "client-key-data": _b64(admin_key)}
    else:
        cluster_ca = {"certificate-authority": str(ca)}
        user = {"client-certificate": str(admin_crt), "client-key": str(admin_key)}
    names = list(servers)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": f"sandbox-{n}", "cluster": {"server": servers[n], **cluster_ca}} for n in names],
        "users": [{"name": "sandbox-admin", "user": user}],
        "contexts": [
            {"name": f"sandbox-{n}", "context": {"cluster": f"sandbox-{n}", "user": "sandbox-admin"}}
            for n in names
        ],
        "current-context": f"sandbox-{names[0]}",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _platform(layout: _Layout, servers: dict[str, str], ca: Path) -> str:
    """The platform document; keys other work filled in (keycloak, opa, s3, extra cluster keys) are kept."""
    old: dict = {}
    if layout.platform.exists():
        with contextlib.suppress(yaml.YAMLError):
            old = yaml.safe_load(layout.platform.read_text()) or {}
    old_clusters = {c.get("name"): c for c in old.get("clusters") or [] if isinstance(c, dict)}
    clusters = []
    for name in CLUSTERS:
        entry = dict(old_clusters.get(name) or {})
        entry.update({"name": name, "server": servers[name], "certificateAuthorityData": _b64(ca)})
        entry.update(nodes.platform_cluster(nodes.CLUSTERS[name]))
        clusters.append(entry)
    doc = {"apiVersion": "mlctl.io/v1alpha1", "kind": "Platform", "name": "sandbox",
           "keycloak": None, "opa": None, "s3": None}
    doc.update({k: v for k, v in old.items() if k not in ("apiVersion", "kind", "clusters")})
    doc["clusters"] = clusters
    return yaml.safe_dump(doc, sort_keys=False)


def _kwok_logs_config(src: Path) -> str:
    log_file = src / "kwok" / "container.log"
    return yaml.safe_dump({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterLogs",
        "metadata": {"name": "mlctl-simulated-logs"},
        # follow: false, so `logs -f` ends after the simulated output instead of waiting forever
        "spec": {"logs": [{"logsFile": str(log_file), "follow": False}]},
    }, sort_keys=False)


# ---- processes -------------------------------------------------------------------------------------------

def _free_recorded_port(state: State, key: str, owner: str) -> int:
    """The port recorded under key; re-chosen when its owner is down and something else took it."""
    port = state.port(key)
    if not state.is_running(owner) and port_open(port):
        del state.data["ports"][key]
        state.save()
        port = state.port(key)
    return port


def _ensure(state: State, name: str, argv: list[str], files: list[Path], port: int) -> str:
    """Start name unless it already runs with the same argv and configuration; return what happened."""
    return state.ensure(name, argv, files=files, port=port, stop_timeout=_stop_timeout(name))


def _stop_timeout(name: str) -> float:
    # An apiserver's graceful shutdown waits for its clients' watches to close; clients that stay up (another
    # cluster component, an operator) would hold it for a minute. It keeps no state, so cut it short.
    return 3.0 if name.endswith("-kube-apiserver") else 15.0


def _get(port: int, path: str, tls: bool = True, certs: dict | None = None,
         timeout: float = 2.0) -> tuple[int, str]:
    """GET path on 127.0.0.1:port: with the admin client cert when certs are given (apiservers), over TLS
    without verification for liveness probes (controller-manager, scheduler), or plain (etcd)."""
    if certs:
        return probe(port, path, ca_file=certs["ca"][0], client_cert=certs["admin"], timeout=timeout)
    return probe(port, path, tls=tls, timeout=timeout)


def _healthy(*args, **kwargs) -> bool:
    try:
        status, _ = _get(*args, **kwargs)
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


def _etcd_argv(bins: dict, layout: _Layout, client_port: int, peer_port: int) -> list[str]:
    peer = f"http://127.0.0.1:{peer_port}"
    client = f"http://127.0.0.1:{client_port}"
    return [
        str(bins["etcd"]), "--name=sandbox", f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=sandbox={peer}",
        # a throw-away test bed: durability is not worth the fsync latency
        "--unsafe-no-fsync=true", "--log-level=warn", "--quota-backend-bytes=4294967296",
    ]


def _apiserver_argv(bins, layout, certs, cluster, port, etcd_port, extra) -> list[str]:
    sa_key, sa_pub = certs[f"sa-{cluster}"]
    return [
        str(bins["kube-apiserver"]),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}", f"--etcd-prefix=/registry-{cluster}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
        f"--tls-cert-file={certs['apiserver'][0]}", f"--tls-private-key-file={certs['apiserver'][1]}",
        f"--client-ca-file={certs['ca'][0]}",
        f"--service-account-key-file={sa_pub}", f"--service-account-signing-key-file={sa_key}",
        f"--service-account-issuer=https://kubernetes.default.svc.cluster.local/{cluster}",
        f"--service-cluster-ip-range={SERVICE_CIDRS[cluster]}",
        # an AuthorizationConfiguration file (--authorization-config, e.g. gcp's OPA webhook) replaces the mode flag
        *([] if any(a.startswith("--authorization-config=") for a in extra) else ["--authorization-mode=Node,RBAC"]),
        "--enable-admission-plugins=NodeRestriction,LimitRanger,ResourceQuota",
        # TaintNodesByCondition would taint every new node not-ready, and no node-lifecycle controller runs
        # to lift the taint (kwok nodes need no heartbeat); the stages make them Ready directly.
        "--disable-admission-plugins=TaintNodesByCondition",
        "--allow-privileged=true",
        # `kubectl logs` goes apiserver -> kwok's kubelet-like server at the nodes' InternalIP:daemon port
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={certs['kubelet-client'][0]}",
        f"--kubelet-client-key={certs['kubelet-client'][1]}",
        f"--kubelet-certificate-authority={certs['ca'][0]}",
        "--profiling=false",
        *extra,
    ]


def _cluster_argvs(bins, layout, certs, cluster, ports, kubeconfig: Path, kwok_configs: list[Path]):
    localhost_crt, localhost_key = certs["localhost"]
    serving = [f"--tls-cert-file={localhost_crt}", f"--tls-private-key-file={localhost_key}",
               "--bind-address=127.0.0.1"]
    delegated = [f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                 f"--authorization-kubeconfig={kubeconfig}", "--leader-elect=false"]
    sa_key, _ = certs[f"sa-{cluster}"]
    return {
        "kube-controller-manager": [
            str(bins["kube-controller-manager"]), *delegated, *serving,
            f"--secure-port={ports['kube-controller-manager']}",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={sa_key}", f"--root-ca-file={certs['ca'][0]}",
            f"--cluster-name=sandbox-{cluster}", "--use-service-account-credentials=false",
            "--kube-api-qps=100", "--kube-api-burst=200", "--profiling=false", *HPA_FLAGS,
        ],
        "kube-scheduler": [
            str(bins["kube-scheduler"]), *delegated, *serving,
            f"--secure-port={ports['kube-scheduler']}", "--kube-api-qps=100", "--kube-api-burst=200",
            "--profiling=false",
        ],
        "kwok": [
            str(bins["kwok"]), f"--kubeconfig={kubeconfig}",
            f"--config={','.join(str(c) for c in kwok_configs)}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={nodes.KWOK_ANNOTATION}={nodes.KWOK_ANNOTATION_VALUE}",
            "--node-ip=127.0.0.1", f"--node-name=kwok-{cluster}", f"--node-port={ports['kwok']}",
            f"--server-address=127.0.0.1:{ports['kwok']}",
            f"--tls-cert-file={localhost_crt}", f"--tls-private-key-file={localhost_key}",
            f"--cidr={POD_CIDRS[cluster]}", "--node-lease-duration-seconds=0",
            # per-pod Logs objects: the pod runner points `kubectl logs` of a real pod at its log file;
            # per-pod ResourceUsage objects: the real pods' measured CPU and memory (docs/metrics.md)
            "--enable-crds=Logs,ResourceUsage",
        ],
    }


def _name(cluster: str, component: str) -> str:
    return f"{cluster}-{component}"


# ---- public API ------------------------------------------------------------------------------------------

def up(state_dir: Path | str | None = None, *, apiserver_extra: dict[str, list[str]] | None = None,
       timeout: float = READY_TIMEOUT) -> dict:
    """Start (or keep) the sandbox's control planes and return status() plus timings.

    apiserver_extra maps a cluster name to extra kube-apiserver flags (authorization webhook, authentication
    config, ...). They are recorded: a later `up` without the argument keeps them, `{}` clears them.
    """
    started_at = time.monotonic()
    root = Path(state_dir) if state_dir else _default_state_dir()
    layout = _Layout(root)
    root.mkdir(parents=True, exist_ok=True)
    state = State.load(root)
    src = source_dir()
    layout.build_log.parent.mkdir(parents=True, exist_ok=True)
    bins = ensure_binaries(layout.build_log)

    if apiserver_extra is not None:
        unknown = set(apiserver_extra) - set(CLUSTERS)
        if unknown:
            raise SandboxError(f"apiserver_extra names unknown cluster(s): {', '.join(sorted(unknown))}")
        state.data["apiserverExtra"] = {c: list(apiserver_extra.get(c, [])) for c in CLUSTERS}
        state.save()
    extra = state.data.get("apiserverExtra", {})

    certs = _certs(layout)
    actions: dict[str, str] = {}

    etcd_port = _free_recorded_port(state, "etcd-client", "etcd")
    etcd_peer = _free_recorded_port(state, "etcd-peer", "etcd")
    actions["etcd"] = _ensure(state, "etcd", _etcd_argv(bins, layout, etcd_port, etcd_peer), [], etcd_port)

    ports: dict[str, dict[str, int]] = {}
    for cluster in CLUSTERS:
        ports[cluster] = {
            comp: _free_recorded_port(state, _name(cluster, comp), _name(cluster, comp))
            for comp in CLUSTER_COMPONENTS
        }
    servers = {c: f"https://127.0.0.1:{ports[c]['kube-apiserver']}" for c in CLUSTERS}

    _write_if_changed(layout.kubeconfig, _kubeconfig(servers, certs, embed=True), private=True)
    _write_if_changed(layout.platform, _platform(layout, servers, certs["ca"][0]))
    stages = src / "kwok" / "stages.yaml"
    kwok_metrics = src / "kwok" / "metrics.yaml"  # kubelet-style resource metrics (docs/metrics.md)
    for cluster in CLUSTERS:
        cdir = layout.cluster(cluster)
        kubeconfig = layout.cluster_kubeconfig(cluster)
        _write_if_changed(kubeconfig, _kubeconfig({cluster: servers[cluster]}, certs, embed=False), True)
        logs_config = cdir / "kwok-logs.yaml"
        _write_if_changed(logs_config, _kwok_logs_config(src))

        name = _name(cluster, "kube-apiserver")
        argv = _apiserver_argv(bins, layout, certs, cluster, ports[cluster]["kube-apiserver"], etcd_port,
                               extra.get(cluster, []))
        files = [f for f in _files_in(argv) if f.is_file()]
        actions[name] = _ensure(state, name, argv, files, ports[cluster]["kube-apiserver"])
        # the others retry until their apiserver answers, so they can start right away
        for comp, argv in _cluster_argvs(bins, layout, certs, cluster, ports[cluster], kubeconfig,
                                         [stages, kwok_metrics, logs_config]).items():
            name = _name(cluster, comp)
            actions[name] = _ensure(state, name, argv, [kubeconfig, stages, kwok_metrics, logs_config],
                                    ports[cluster][comp])
            if actions[name] == "kept" and actions[_name(cluster, "kube-apiserver")] != "kept":
                # clients of an apiserver that went away have been seen to stay deaf to new objects for
                # minutes after it came back: start them afresh with it
                state.restart(name, timeout=_stop_timeout(name))
                actions[name] = "restarted"

    wait_until(lambda: _healthy(etcd_port, "/health", tls=False), timeout, "etcd /health", state, "etcd")
    clients = {}
    node_counts = {}
    try:
        for cluster in CLUSTERS:
            name = _name(cluster, "kube-apiserver")
            port = ports[cluster]["kube-apiserver"]
            wait_until(lambda p=port: _healthy(p, "/readyz", certs=certs), timeout,
                       f"{name} /readyz", state, name)
        from mlctl.kube.api import from_kubeconfig

        for cluster in CLUSTERS:
            clients[cluster] = from_kubeconfig(str(layout.kubeconfig), f"sandbox-{cluster}")
            nodes.create_nodes(clients[cluster], nodes.CLUSTERS[cluster])
        for cluster in CLUSTERS:
            expected = nodes.CLUSTERS[cluster].node_count
            wait_until(lambda c=cluster, n=expected: nodes.ready_nodes(clients[c]) >= n, timeout,
                       f"{expected} Ready nodes in cluster {cluster}", state, _name(cluster, "kwok"))
            node_counts[cluster] = expected
            for comp in ("kube-controller-manager", "kube-scheduler"):
                name = _name(cluster, comp)
                wait_until(lambda p=ports[cluster][comp]: _healthy(p, "/healthz"), timeout,
                           f"{name} /healthz", state, name)
            wait_until(lambda c=cluster: clients[c].find("ServiceAccount", "default", "default") is not None,
                       timeout, f"the default service account in cluster {cluster}", state,
                       _name(cluster, "kube-controller-manager"))
    finally:
        for api in clients.values():
            api.close()

    result = status(root)
    result["actions"] = actions
    result["apiserversRestarted"] = [c for c in CLUSTERS if actions[_name(c, "kube-apiserver")] != "kept"]
    result["nodes"] = node_counts
    result["seconds"] = round(time.monotonic() - started_at, 1)
    return result


def _files_in(argv: list[str]) -> list[Path]:
    """Files named by --flag=/path arguments, so a changed config file restarts its process."""
    out = []
    for arg in argv[1:]:
        _, sep, value = arg.partition("=")
        if sep and value.startswith("/"):
            out.append(Path(value))
    return out


def down(state_dir: Path | str | None = None, *, purge: bool = False) -> list[str]:
    """Stop the processes `up` started (by recorded pid); return the names of those that were running.

    Data and logs stay for debugging unless purge is true.
    """
    root = Path(state_dir) if state_dir else _default_state_dir()
    state = State.load(root)
    # clients first (processes other sandbox parts recorded, then kwok, scheduler, controller-manager),
    # then the apiservers, then etcd
    order = [_name(c, comp) for c in CLUSTERS for comp in reversed(CLUSTER_COMPONENTS)] + ["etcd"]
    names = [n for n in state.data["processes"] if n not in order]
    names += [n for n in order if n in state.data["processes"]]
    stopped = [n for n in names if state.stop(n, timeout=_stop_timeout(n))]
    if purge and root.exists():
        still = [n for n in state.data["processes"] if state.is_running(n)]
        if still:
            raise SandboxError(f"not purging {root}: still running: {', '.join(still)}")
        shutil.rmtree(root)
    return stopped


def status(state_dir: Path | str | None = None) -> dict:
    """What runs: per component (running, pid, port, log) and per cluster (server, /readyz)."""
    root = Path(state_dir) if state_dir else _default_state_dir()
    layout = _Layout(root)
    state = State.load(root)
    components = {}
    for name, proc in sorted(state.data["processes"].items()):
        components[name] = {
            "running": state.is_running(name),
            "pid": proc["pid"],
            "port": proc.get("port", state.data["ports"].get(name)),
            "log": proc["log"],
        }
    clusters = {}
    certs = None
    if (layout.pki / "admin.crt").exists() and (layout.pki / "ca.crt").exists():
        certs = {"ca": (layout.pki / "ca.crt", layout.pki / "ca.key"),
                 "admin": (layout.pki / "admin.crt", layout.pki / "admin.key")}
    for cluster in CLUSTERS:
        port = state.data["ports"].get(_name(cluster, "kube-apiserver"))
        entry: dict = {"server": f"https://127.0.0.1:{port}" if port else None, "context": f"sandbox-{cluster}",
                       "healthy": False, "readyz": "not started"}
        if port and certs and state.is_running(_name(cluster, "kube-apiserver")):
            try:
                code, body = _get(port, "/readyz", certs=certs)
                entry["healthy"] = code == 200
                entry["readyz"] = body if code == 200 else f"HTTP {code}: {body[:200]}"
            except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
                entry["readyz"] = f"unreachable: {exc}"
        elif port:
            entry["readyz"] = "not running"
        clusters[cluster] = entry
    return {
        "stateDir": str(root),
        "kubeconfig": str(layout.kubeconfig),
        "platform": str(layout.platform),
        "running": bool(components) and all(c["running"] for c in components.values()),
        "components": components,
        "clusters": clusters,
    }


def env(state_dir: Path | str | None = None) -> dict[str, str]:
    """Environment that points kubectl and mlctl at the sandbox."""
    layout = _Layout(Path(state_dir) if state_dir else _default_state_dir())
    return {"KUBECONFIG": str(layout.kubeconfig), "MLCTL_PLATFORM_FILE": str(layout.platform)}


class ControlPlane(Component):
    """etcd and, per cluster, kube-apiserver, controller-manager, scheduler and kwok with its nodes. The
    apiservers get the flags of every component started before them (Keycloak's authentication, OPA's
    authorization)."""

    name = "control-plane"
    binaries = ("etcd", "kubernetes", "kwok")
    after_clusters = False

    def start(self, ctx: Context) -> dict:
        return up(ctx.root, apiserver_extra={c: ctx.apiserver_flags(c) for c in CLUSTERS})

    def processes(self, ctx: Context) -> list[str]:
        return ["etcd", *(_name(c, comp) for c in CLUSTERS for comp in CLUSTER_COMPONENTS)]
