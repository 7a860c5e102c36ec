"""Pod metrics for the HorizontalPodAutoscaler of cluster `local` (docs/metrics.md): the aggregation layer,
metrics-server v0.8.0 and the usage feeder.

The chain: a real pod's process (its session, `containerID: mlctl://<pid>`) -> /proc (CPU time and resident
memory of every process of the session, as a rate over a few seconds) -> a kwok `ResourceUsage` object per
pod (this module's feeder, `python -m mlctl.sandbox.metrics --config ...`) -> kwok's kubelet-like
`/metrics/nodes/<node>/metrics/resource` (a `Metric` in kwok/metrics.yaml; simulated pods get the
`ClusterResourceUsage` there) -> metrics-server, which scrapes every node -> `metrics.k8s.io` through the API
server's aggregation layer (an APIService whose Service is of type ExternalName, 127.0.0.1) -> the
controller-manager's horizontal-pod-autoscaler controller.

Two components: `aggregation` (before the control plane: the front-proxy client certificate and the
`--requestheader-*`/`--proxy-client-*` flags of local's API server) and `metrics` (after the pod runner:
kwok's ResourceUsage CRD, the APIService, metrics-server and the feeder).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import time
from pathlib import Path

from mlctl.sandbox import pki
from mlctl.sandbox.component import Component, Context
from mlctl.sandbox.procs import SandboxError, answers, port_open, wait_until

CLUSTER = "local"
SERVER = "metrics-server"
SERVER_PROCESS = f"{CLUSTER}-metrics-server"
FEEDER_PROCESS = f"{CLUSTER}-pod-usage"
NAMESPACE = "kube-system"
API_SERVICE = "v1beta1.metrics.k8s.io"
FRONT_PROXY = "front-proxy-client"
KWOK_MODULE = "sigs.k8s.io/kwok"
RESOURCE_USAGE_CRD = "resourceusages.kwok.x-k8s.io"
#: metrics-server's scrape interval (its minimum; upstream's manifest uses 15 s, its default is 60 s)
RESOLUTION_SECONDS = 10
#: how often the feeder measures the real pods and publishes what it measured
FEED_SECONDS = 3.0
#: the node annotation metrics-server reads for the path of a node's resource metrics
PATH_ANNOTATION = "metrics.k8s.io/resource-metrics-path"
MANAGER = "mlctl-sandbox-metrics"
REAL_PREFIX = "mlctl.sandbox/"


def node_metrics_path(node: str) -> str:
    """Where kwok serves one node's kubelet-style resource metrics (the Metric in kwok/metrics.yaml)."""
    return f"/metrics/nodes/{node}/metrics/resource"


# ---- measuring a process session from /proc ---------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(text: str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses):
    index 0 is field 3 (state)."""
    return text.rsplit(")", 1)[1].split()


def session_usage(sid: int, proc: Path = Path("/proc")) -> tuple[float, int] | None:
    """(CPU seconds, resident bytes) of every process in session sid, None when no process is in it.

    CPU is user + system time of each process plus what it collected from its waited-for children (so a
    worker that exited does not make the total go down); memory is the sum of resident set sizes.
    """
    cpu_ticks = 0
    rss_pages = 0
    found = False
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields((proc / entry.name / "stat").read_text())
            if int(fields[3]) != sid:  # field 6: session id
                continue
            statm = (proc / entry.name / "statm").read_text().split()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        found = True
        # fields 14-17: utime, stime, cutime, cstime (clock ticks)
        cpu_ticks += sum(int(v) for v in fields[11:15])
        rss_pages += int(statm[1])
    if not found:
        return None
    return cpu_ticks / _TICKS, rss_pages * _PAGE


def cpu_rate(prev: tuple[float, float] | None, now: tuple[float, float]) -> float | None:
    """Cores used between two (monotonic time, CPU seconds) samples; None without a usable previous one
    (first sample, or the counter went down: another process)."""
    if prev is None:
        return None
    elapsed = now[0] - prev[0]
    used = now[1] - prev[1]
    if elapsed <= 0 or used < 0:
        return None
    return used / elapsed


def quantity_cpu(cores: float) -> str:
    """Cores as a Kubernetes quantity in millicores (at least 1m: 0 would read as "no usage")."""
    return f"{max(1, round(cores * 1000))}m"


def quantity_memory(size: int) -> str:
    """Bytes as a Kubernetes quantity in KiB (at least 1Ki)."""
    return f"{max(1, size // 1024)}Ki"


def real_pid(pod: dict) -> int | None:
    """The pid of a running real pod's process (`containerID: mlctl://<pid>`), None for any other pod."""
    spec = pod.get("spec") or {}
    if not any(str(c.get("image", "")).startswith(REAL_PREFIX) for c in spec.get("containers") or []):
        return None
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    for c in status.get("containerStatuses") or []:
        cid = str(c.get("containerID") or "")
        if cid.startswith("mlctl://") and (c.get("state") or {}).get("running") is not None:
            try:
                return int(cid.removeprefix("mlctl://"))
            except ValueError:
                return None
    return None


def resource_usage(pod: dict, cores: float, memory: int) -> dict:
    """kwok's ResourceUsage for pod (same name and namespace, owned by it): what kwok reports for its one
    container. kwok integrates the cpu value over time into container_cpu_usage_seconds_total."""
    meta = pod["metadata"]
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ResourceUsage",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                     "labels": {"app.kubernetes.io/managed-by": MANAGER},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                          "uid": meta["uid"]}]},
        "spec": {"usages": [{"usage": {"cpu": {"value": quantity_cpu(cores)},
                                       "memory": {"value": quantity_memory(memory)}}}]},
    }


class Feeder:
    """Measures each running real pod of one cluster and publishes its usage as a ResourceUsage."""

    def __init__(self, kube, log: logging.Logger, usage=session_usage, clock=time.monotonic):
        self.kube = kube
        self.log = log
        self.usage = usage
        self.clock = clock
        self.samples: dict[str, tuple[int, float, float]] = {}  # pod uid -> (pid, time, cpu seconds)

    def once(self) -> dict[str, tuple[float, int]]:
        """One round: {namespace/name: (cores, bytes)} published."""
        published = {}
        pods = self.kube.list("Pod", field_selector="status.phase=Running", what="listing running pods")
        when = self.clock()
        seen = set()
        for pod in pods:
            pid = real_pid(pod)
            if pid is None:
                continue
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            measured = self.usage(pid)
            if measured is None:
                continue
            cpu_seconds, memory = measured
            now = (when, cpu_seconds)
            old = self.samples.get(uid)
            rate = cpu_rate(old[1:] if old and old[0] == pid else None, now)
            self.samples[uid] = (pid, *now)
            if rate is None:
                continue
            try:
                self.kube.apply(resource_usage(pod, rate, memory), MANAGER, force=True)
            except Exception as e:  # the pod went away meanwhile, or the apiserver restarts: next round
                self.log.warning("usage of pod %s/%s not published: %s", pod["metadata"]["namespace"],
                                 pod["metadata"]["name"], str(e).splitlines()[0] if str(e) else type(e).__name__)
                continue
            published[f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"] = (rate, memory)
        for uid in set(self.samples) - seen:
            del self.samples[uid]
        return published


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlctl.sandbox.metrics",
                                     description="Publish the CPU and memory of the sandbox's real pods to kwok.")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    cfg = json.loads(Path(args.config).read_text())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("pod-usage")
    from mlctl.kube.api import from_kubeconfig

    kube = from_kubeconfig(cfg["kubeconfig"], cfg["context"], cluster=cfg["cluster"], timeout=20)
    feeder = Feeder(kube, log)
    ready = Path(cfg["ready"])
    last: dict[str, tuple[float, int]] = {}
    while True:
        began = time.monotonic()
        try:
            published = feeder.once()
        except Exception as e:  # an API server that restarts: try again next round
            log.warning("listing pods failed: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
        else:
            if not ready.exists():
                ready.write_text(str(os.getpid()))
            if set(published) != set(last):
                log.info("real pods measured: %s", ", ".join(
                    f"{k} {quantity_cpu(c)} {quantity_memory(m)}" for k, (c, m) in sorted(published.items()))
                    or "none")
            last = published
        time.sleep(max(0.2, cfg.get("interval", FEED_SECONDS) - (time.monotonic() - began)))


# ---- the components ---------------------------------------------------------------------------------------

def front_proxy_cert(ctx: Context) -> tuple[Path, Path]:
    """The client certificate the API server presents to aggregated API servers (CN front-proxy-client)."""
    return pki.issue(ctx.pki, FRONT_PROXY, FRONT_PROXY, client=True)


class Aggregation(Component):
    """The API server side of the aggregation layer on cluster local: the front-proxy client certificate
    and the flags that make the API server proxy /apis/metrics.k8s.io to metrics-server. It comes before
    the control plane, whose API servers take the flags of the components started before them."""

    name = "aggregation"
    after_clusters = False

    def start(self, ctx: Context) -> dict:
        crt, key = front_proxy_cert(ctx)
        return {"cert": str(crt), "key": str(key)}

    def apiserver_flags(self, ctx: Context, cluster: str) -> list[str]:
        if cluster != CLUSTER:
            return []
        crt, key = front_proxy_cert(ctx)
        return [
            # aggregated servers trust the identity headers only from a client certificate of this CA with
            # the CN front-proxy-client (the sandbox has one CA; allowed-names narrows it to that certificate)
            f"--requestheader-client-ca-file={ctx.pki / 'ca.crt'}",
            f"--requestheader-allowed-names={FRONT_PROXY}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={crt}", f"--proxy-client-key-file={key}",
        ]


def resource_usage_crd() -> dict:
    """kwok's ResourceUsage CRD, read from its module in the Go module cache (the kwok build downloaded it)."""
    import yaml

    from mlctl.sandbox import build

    path = (build.module_dir("kwok", KWOK_MODULE) / "kustomize" / "crd" / "bases"
            / "kwok.x-k8s.io_resourceusages.yaml")
    try:
        return yaml.safe_load(path.read_text())
    except OSError as e:
        raise SandboxError(f"kwok's ResourceUsage CRD is not at {path}: {e}") from e


def serving_cert(ctx: Context) -> tuple[Path, Path]:
    # the aggregator checks the name <service>.<namespace>.svc whatever address it dials
    return pki.issue(ctx.pki, SERVER, SERVER,
                     hosts=("127.0.0.1", "localhost", f"{SERVER}.{NAMESPACE}.svc",
                            f"{SERVER}.{NAMESPACE}.svc.cluster.local"))


def _port(ctx: Context) -> int:
    state = ctx.state
    port = state.port(SERVER_PROCESS)
    if not state.is_running(SERVER_PROCESS) and port_open(port):  # taken while the sandbox was down
        del state.data["ports"][SERVER_PROCESS]
        state.save()
        port = state.port(SERVER_PROCESS)
    return port


class Metrics(Component):
    """metrics-server for cluster local, out of cluster behind the aggregation layer, scraping kwok's
    kubelet-style resource metrics; and the feeder that reports the real pods' measured usage to kwok."""

    name = "metrics"
    binaries = ("metrics-server",)

    def manifests(self, ctx: Context, cluster: str) -> list[dict]:
        objs = [resource_usage_crd()]  # kwok of both clusters watches ResourceUsage (--enable-crds)
        if cluster != CLUSTER:
            return objs
        ca = base64.b64encode((ctx.pki / "ca.crt").read_bytes()).decode()
        serving_cert(ctx)
        return objs + [
            # the API server refuses loopback addresses in Endpoints, but the aggregator resolves an
            # ExternalName Service to <externalName>:<APIService port> without any (proxy.ResolveCluster)
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": SERVER, "namespace": NAMESPACE, "labels": {"k8s-app": SERVER}},
             "spec": {"type": "ExternalName", "externalName": "127.0.0.1"}},
            {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
             "metadata": {"name": API_SERVICE, "labels": {"k8s-app": SERVER}},
             "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                      "versionPriority": 100, "caBundle": ca,
                      "service": {"name": SERVER, "namespace": NAMESPACE, "port": _port(ctx)}}},
            # what upstream's manifest grants: reading pod and node metrics with the view/edit/admin roles,
            # so a user can `kubectl top pod` in a namespace of theirs
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "system:aggregated-metrics-reader",
                          "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true",
                                     "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                                     "rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
             "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                        "verbs": ["get", "list", "watch"]}]},
        ]

    def start(self, ctx: Context) -> dict:
        from mlctl.sandbox import build

        home = ctx.dir("metrics")
        kube = ctx.kube(CLUSTER)
        wait_until(lambda: _established(kube), 30, f"kwok's ResourceUsage CRD in cluster {CLUSTER}")
        self._annotate_nodes(kube)
        port = _port(ctx)
        crt, key = serving_cert(ctx)
        client_crt, client_key = ctx.pki / "apiserver-kubelet-client.crt", ctx.pki / "apiserver-kubelet-client.key"
        kubeconfig = ctx.root / "clusters" / CLUSTER / "kubeconfig"
        argv = [
            str(build.path("metrics-server")),
            f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={port}",
            f"--tls-cert-file={crt}", f"--tls-private-key-file={key}",
            # kwok's kubelet-like server: the nodes' InternalIP (127.0.0.1) and daemon port, HTTPS with the
            # sandbox CA's localhost certificate; the path comes from each node's annotation
            "--kubelet-preferred-address-types=InternalIP", "--kubelet-use-node-status-port",
            f"--kubelet-certificate-authority={ctx.pki / 'ca.crt'}",
            f"--kubelet-client-certificate={client_crt}", f"--kubelet-client-key={client_key}",
            f"--metric-resolution={RESOLUTION_SECONDS}s", "--kubelet-request-timeout=5s",
            "--profiling=false",
        ]
        state = ctx.state
        restarted = ctx.apiserver_restarted(CLUSTER)
        action = state.ensure(SERVER_PROCESS, argv, files=[kubeconfig, crt], cwd=home, port=port)
        if action == "kept" and restarted:
            state.restart(SERVER_PROCESS)
            action = "restarted"
        ready_file = home / "feeder-ready"
        cfg = {"kubeconfig": str(ctx.kubeconfig), "context": f"sandbox-{CLUSTER}", "cluster": CLUSTER,
               "interval": FEED_SECONDS, "ready": str(ready_file)}
        path = home / "feeder.json"
        text = json.dumps(cfg, indent=2, sort_keys=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        from mlctl.kube import api

        code = [Path(__file__), Path(api.__file__)]  # an upgraded mlctl restarts it
        feeder_argv = [sys.executable, "-m", "mlctl.sandbox.metrics", f"--config={path}"]
        feeder = state.ensure(FEEDER_PROCESS, feeder_argv, files=[path, ctx.kubeconfig, *code], cwd=home)
        if feeder != "kept":
            ready_file.unlink(missing_ok=True)
        wait_until(lambda: answers(port, "/readyz", ca_file=ctx.pki / "ca.crt"), 60,
                   f"metrics-server on port {port}", state, SERVER_PROCESS)
        wait_until(lambda: _available(kube), 60, f"APIService {API_SERVICE} to be available", state,
                   SERVER_PROCESS)
        wait_until(lambda: ready_file.exists() and state.is_running(FEEDER_PROCESS), 30,
                   "the pod usage feeder", state, FEEDER_PROCESS)
        return {"port": port, "action": action, "feeder": feeder, "resolution": RESOLUTION_SECONDS,
                "feedInterval": FEED_SECONDS}

    @staticmethod
    def _annotate_nodes(kube) -> None:
        for node in kube.list("Node"):
            name = node["metadata"]["name"]
            want = node_metrics_path(name)
            if (node["metadata"].get("annotations") or {}).get(PATH_ANNOTATION) != want:
                kube.patch("Node", name, {"metadata": {"annotations": {PATH_ANNOTATION: want}}})

    def processes(self, ctx: Context) -> list[str]:
        return [SERVER_PROCESS, FEEDER_PROCESS]


def _established(kube) -> bool:
    crd = kube.find("CustomResourceDefinition", RESOURCE_USAGE_CRD)
    return bool(crd) and any(c.get("type") == "Established" and c.get("status") == "True"
                             for c in (crd.get("status") or {}).get("conditions") or [])


def _available(kube) -> bool:
    svc = kube.find("APIService", API_SERVICE)
    return bool(svc) and any(c.get("type") == "Available" and c.get("status") == "True"
                             for c in (svc.get("status") or {}).get("conditions") or [])


if __name__ == "__main__":
    sys.exit(main())
