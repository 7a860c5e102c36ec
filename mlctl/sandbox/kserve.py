"""KServe's controller manager for cluster `local`, out of cluster, in RawDeployment mode
(docs/serving-sandbox.md).

What the component puts in the cluster, in order:
- KServe's CRDs, read from its module (`config/crd/full/`, every one the manager watches or validates);
- the namespace `kserve` with the ConfigMap `inferenceservice-config`: the module's own
  `config/configmap/inferenceservice.yaml`, with RawDeployment as the default mode, no Ingress or Istio
  VirtualService created (the sandbox gateway routes by path instead), and modest default resources;
- KServe's ClusterRoles aggregated into admin/edit/view, and read access to ClusterServingRuntimes for every
  signed-in user (`assets/manifests/kserve/rbac.yaml`);
- the manager (`cmd/manager`, built by `python -m mlctl.sandbox.build kserve`) as a process with a kubeconfig
  for `local`; its webhook server gets a certificate from the sandbox CA through TMPDIR (controller-runtime
  reads `$TMPDIR/k8s-webhook-server/serving-certs/tls.{crt,key}`);
- once it is ready, the module's webhook configurations (`config/webhook/manifests.yaml`) with each
  `clientConfig.service` replaced by the manager's URL on 127.0.0.1 and the sandbox CA as caBundle;
- the ClusterServingRuntime `mlctl-3dgan` of the sandbox's model server (`assets/manifests/kserve/`): its pods
  read the model from S3 themselves, and the pod mutator's objectSelector leaves them out, so KServe adds no
  storage-initializer init container (which the pod runner refuses).
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
from pathlib import Path

from mlctl.sandbox import pki
from mlctl.sandbox.component import Component, Context
from mlctl.sandbox.procs import SandboxError, answers, wait_until

MODULE = "github.com/kserve/kserve"
CLUSTER = "local"
NAMESPACE = "kserve"
CONFIGMAP = "inferenceservice-config"
PROCESS = "kserve-controller"
FIELD_MANAGER = "mlctl-sandbox-kserve"
RUNTIME = "mlctl-3dgan"
MODEL_FORMAT = "3dgan"
#: the label the runtime puts on its pods; the pod mutator's objectSelector excludes pods that carry it
STORAGE_LABEL = "mlctl.io/model-storage"
#: what the ingress config gives InferenceServices as status.url's domain (it names no reachable host: the
#: sandbox gateway routes /serve/<namespace>/<name>/... by path, see docs/serving-sandbox.md)
INGRESS_DOMAIN = "serve.sandbox.mlctl.test"
#: the ConfigMap's defaults for a model container that names no resources (KServe: 1 CPU, 2Gi)
DEFAULT_RESOURCES = {"cpuRequest": "100m", "memoryRequest": "512Mi", "cpuLimit": "1", "memoryLimit": "4Gi"}
START_TIMEOUT = 120.0
LABELS = {"app.kubernetes.io/managed-by": "mlctl-sandbox"}


# ---- what is read from the module ------------------------------------------------------------------------

def module_dir() -> Path:
    from mlctl.sandbox import build

    return build.module_dir("kserve", MODULE)


def version() -> str:
    from mlctl.sandbox import build

    return build.version("kserve")


def binary() -> Path:
    from mlctl.sandbox import build

    return build.path("kserve")


def manifests_dir() -> Path:
    from mlctl.sandbox import core

    return core.source_dir() / "manifests" / "kserve"


def _documents(path: Path) -> list[dict]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the InferenceService CRD is 1 MB
    with open(path) as f:
        return [doc for doc in yaml.load_all(f, Loader=loader) if doc]


def crds(root: Path | None = None) -> list[dict]:
    """Every CRD of the module's config/crd/full/ (the set its default kustomization installs)."""
    folder = (root or module_dir()) / "config" / "crd" / "full"
    files = sorted(folder.glob("serving.kserve.io_*.yaml"))
    if not files:
        raise SandboxError(f"{folder} holds no CRDs")
    return [doc for f in files for doc in _documents(f) if doc.get("kind") == "CustomResourceDefinition"]


def configmap(root: Path | None = None) -> dict:
    """The module's inferenceservice-config, set up for the sandbox: RawDeployment by default, no Ingress or
    VirtualService, status.url under INGRESS_DOMAIN, https, modest default resources."""
    [doc] = _documents((root or module_dir()) / "config" / "configmap" / "inferenceservice.yaml")
    data = dict(doc["data"])
    data.pop("_example", None)
    deploy = json.loads(data["deploy"])
    deploy["defaultDeploymentMode"] = "RawDeployment"
    ingress = json.loads(data["ingress"])
    ingress.update({"disableIngressCreation": True, "disableIstioVirtualHost": True,
                    "ingressDomain": INGRESS_DOMAIN, "urlScheme": "https"})
    isvc = json.loads(data.get("inferenceService") or "{}")
    isvc["resource"] = dict(DEFAULT_RESOURCES)
    data.update({"deploy": json.dumps(deploy, indent=2), "ingress": json.dumps(ingress, indent=2),
                 "inferenceService": json.dumps(isvc, indent=2)})
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE, "labels": dict(LABELS)}, "data": data}


def webhooks(port: int, ca_pem: bytes, root: Path | None = None) -> list[dict]:
    """The module's Mutating/ValidatingWebhookConfigurations, each webhook calling the manager by URL."""
    out = []
    for doc in _documents((root or module_dir()) / "config" / "webhook" / "manifests.yaml"):
        if doc.get("kind") not in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            continue
        doc = copy.deepcopy(doc)
        doc["metadata"] = {"name": doc["metadata"]["name"], "labels": dict(LABELS)}
        for hook in doc.get("webhooks") or []:
            path = hook["clientConfig"]["service"].get("path", "/")
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}",
                                    "caBundle": base64.b64encode(ca_pem).decode()}
            if path == "/mutate-pods":
                selector = hook.setdefault("objectSelector", {})
                selector.setdefault("matchExpressions", []).append({"key": STORAGE_LABEL,
                                                                    "operator": "DoesNotExist"})
        out.append(doc)
    if not out:
        raise SandboxError("KServe's config/webhook/manifests.yaml holds no webhook configuration")
    return out


def runtime() -> dict:
    [doc] = _documents(manifests_dir() / "clusterservingruntime.yaml")
    return doc


def rbac() -> list[dict]:
    return _documents(manifests_dir() / "rbac.yaml")


# ---- the process -----------------------------------------------------------------------------------------

def _kubeconfig(ctx: Context, out: Path) -> Path:
    from mlctl.sandbox import training

    return training._kubeconfig_for(ctx.kubeconfig, f"sandbox-{CLUSTER}", out)


def _serving_certs(ctx: Context, tmpdir: Path) -> Path:
    """The webhook server's key pair from the sandbox CA, where controller-runtime looks for it."""
    crt, key = pki.issue(ctx.pki, "kserve-webhook", "kserve-webhook", hosts=("127.0.0.1", "localhost"))
    certs = tmpdir / "k8s-webhook-server" / "serving-certs"
    certs.mkdir(parents=True, exist_ok=True)
    for src, name in ((crt, "tls.crt"), (key, "tls.key")):
        if not (certs / name).exists() or (certs / name).read_bytes() != src.read_bytes():
            shutil.copyfile(src, certs / name)
    (certs / "tls.key").chmod(0o600)
    return crt


def _established(kube, name: str) -> bool:
    crd = kube.find("CustomResourceDefinition", name)
    return bool(crd) and any(c.get("type") == "Established" and c.get("status") == "True"
                             for c in (crd.get("status") or {}).get("conditions") or [])


def install_crds(kube) -> list[str]:
    names = []
    for doc in crds():
        kube.apply(doc, FIELD_MANAGER, force=True)
        names.append(doc["metadata"]["name"])
    for name in names:
        wait_until(lambda n=name: _established(kube, n), 60, f"CRD {name} to be established")
    return names


class KServe(Component):
    """KServe's controller manager on cluster local (RawDeployment), its CRDs, config, webhooks and the
    sandbox's serving runtime."""

    name = "kserve"
    binaries = ("kserve",)

    def manifests(self, ctx: Context, cluster: str) -> list[dict]:
        if cluster != CLUSTER:
            return []
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": {
            **LABELS, "control-plane": "kserve-controller-manager"}}}
        return [ns, configmap(), *rbac()]

    def start(self, ctx: Context) -> dict:
        exe = binary()
        if not exe.is_file():
            raise SandboxError(f"{exe} is missing; build it with: python -m mlctl.sandbox.build kserve")
        kube = ctx.kube(CLUSTER)
        names = install_crds(kube)
        home = ctx.dir(PROCESS)
        tmpdir = home / "tmp"
        state = ctx.state
        health, metrics, webhook = (state.port(f"{PROCESS}-{p}") for p in ("health", "metrics", "webhook"))
        crt = _serving_certs(ctx, tmpdir)
        own_kubeconfig = _kubeconfig(ctx, home / "kubeconfig")
        argv = [
            str(exe),
            f"--kubeconfig={own_kubeconfig}",
            f"--metrics-addr=127.0.0.1:{metrics}",
            f"--health-probe-addr=127.0.0.1:{health}",
            f"--webhook-port={webhook}",
            "--leader-elect=false",
            "--zap-log-level=info",
            "--zap-time-encoding=iso8601",
        ]
        if ctx.apiserver_restarted(CLUSTER) and state.is_running(PROCESS):
            state.restart(PROCESS, timeout=10)
        action = state.ensure(PROCESS, argv, files=[own_kubeconfig, crt],
                              env={"TMPDIR": str(tmpdir), "POD_NAMESPACE": NAMESPACE}, cwd=home)
        wait_until(lambda: answers(health, "/readyz", tls=False), START_TIMEOUT,
                   f"{PROCESS} to be ready (http://127.0.0.1:{health}/readyz)", state, PROCESS)
        ca = (ctx.pki / "ca.crt").read_bytes()
        for doc in webhooks(webhook, ca):
            kube.apply(doc, FIELD_MANAGER, force=True)
        # through the manager's ClusterServingRuntime validator: the webhooks work once this is accepted
        kube.apply(runtime(), FIELD_MANAGER, force=True)
        proc = ctx.state.data["processes"][PROCESS]
        return {"name": PROCESS, "pid": proc["pid"], "log": proc["log"], "action": action, "version": version(),
                "health": f"http://127.0.0.1:{health}/readyz", "metrics": f"http://127.0.0.1:{metrics}/metrics",
                "webhook": f"https://127.0.0.1:{webhook}", "crds": names, "runtime": RUNTIME}

    def processes(self, ctx: Context) -> list[str]:
        return [PROCESS]
