"""Notebooks (pure logic): profiles, what `mlctl notebook create` asks for, and the objects it becomes.

A notebook is three objects in the user's namespace (docs/notebooks.md):
- the Kubeflow Notebook (kubeflow.org/v1) whose pod template runs the profile's image on the pool's nodes;
- the workspace PersistentVolumeClaim `<name>-workspace`, mounted at /home/jovyan, kept when the notebook is
  deleted unless asked;
- the Secret `<name>-mlctl` with the user's platform configuration (platform document, a copy of the SSO
  session, a kubeconfig whose credential is `mlctl token`), mounted read-only at /etc/mlctl.
Everything here is a function of its arguments, so `--dry-run=client` and the unit tests need no server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from mlctl.errors import UsageError
from mlctl.jobs.quantity import QuantityError, format_quantity, parse_quantity

STOP_ANNOTATION = "kubeflow-resource-stopped"  # the upstream controller scales a notebook to zero while set
NOTEBOOK_LABEL = "mlctl.io/notebook"  # on the notebook's Secret and workspace claim
PROFILE_LABEL = "mlctl.io/notebook-profile"
POD_LABEL = "notebook-name"  # the controller's label on the notebook's pod
HOME = "/home/jovyan"
CONFIG_DIR = "/etc/mlctl"
CACHE_DIR = "/var/run/mlctl"  # an emptyDir: the writable copy of the session lives and dies with the pod
PORT = 8888
# What a profile gives when the platform document says nothing (the sandbox's jupyterlab profile).
BUILTIN_PROFILE = {"image": "mlctl.sandbox/notebook:1", "pool": "vgpu", "gpus": 1, "cpu": "1", "memory": "2Gi",
                   "volume": "5Gi"}
_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
MAX_NAME = 52  # the StatefulSet's pods carry a controller-revision-hash label of <name>-<10 chars> (max 63)


@dataclass(frozen=True)
class Mount:
    """A read-only data mount: a PVC (claim name) or a host path (an EOS/CVMFS-like share) at path."""

    source: str
    path: str

    @property
    def host_path(self) -> bool:
        return self.source.startswith("/")


@dataclass(frozen=True)
class Request:
    """What one notebook asks for, profile defaults and flags resolved."""

    name: str
    profile: str | None
    image: str
    pool: str
    gpus: int
    cpu: str
    memory: str
    volume: str
    cluster: str
    mounts: tuple[Mount, ...] = field(default_factory=tuple)

    @property
    def secret_name(self) -> str:
        return secret_name(self.name)

    @property
    def claim_name(self) -> str:
        return workspace_claim_name(self.name)


def workspace_claim_name(name: str) -> str:
    return f"{name}-workspace"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name or "") or len(name) > MAX_NAME:
        raise UsageError(f"invalid notebook name {name!r}",
                         hint=f"use lower-case letters, digits and '-', starting with a letter, at most {MAX_NAME} "
                              "characters")
    return name


def section(doc: dict | None) -> dict:
    """The platform document's `notebooks` section ({} when absent)."""
    value = (doc or {}).get("notebooks")
    return value if isinstance(value, dict) else {}


def profiles(nb_section: dict) -> dict[str, dict]:
    value = nb_section.get("profiles")
    return {str(k): v for k, v in value.items() if isinstance(v, dict)} if isinstance(value, dict) else {}


def parse_mount(text: str) -> Mount:
    """SRC:PATH, SRC a PVC name or an absolute host path, PATH absolute."""
    source, sep, path = text.rpartition(":")
    if not sep or not source or not path.startswith("/"):
        raise UsageError(f"--mount {text}: expected SRC:PATH with an absolute PATH",
                         hint="e.g. --mount datasets:/data (a PVC) or --mount /eos/lab:/eos (a shared path)")
    if not source.startswith("/") and not _NAME.fullmatch(source):
        raise UsageError(f"--mount {text}: {source!r} is neither an absolute path nor a PVC name")
    if path.rstrip("/") in (HOME, CONFIG_DIR, CACHE_DIR) or path == "/":
        raise UsageError(f"--mount {text}: {path} is where the notebook keeps its workspace or configuration")
    return Mount(source, path.rstrip("/") or "/")


def _quantity(value, what: str, kind: str) -> str:
    try:
        amount = parse_quantity(value)
    except QuantityError as e:
        raise UsageError(f"{what}: {e}") from None
    if amount <= 0:
        raise UsageError(f"{what}: must be greater than zero")
    return str(value) if isinstance(value, str) else format_quantity(Decimal(amount), kind)


def resolve(nb_section: dict, cluster: dict, name: str, *, profile: str | None = None, image: str | None = None,
            pool: str | None = None, gpus: int | None = None, cpu: str | None = None, memory: str | None = None,
            volume: str | None = None, mounts: tuple[str, ...] = ()) -> Request:
    """Flags over the profile over the built-in defaults. `--image` without `--profile` takes no profile's
    image but still the default profile's resources; a pool without GPUs defaults to none."""
    check_name(name)
    known = profiles(nb_section)
    chosen = profile or (None if image else nb_section.get("defaultProfile")) or None
    if chosen is None and image is None and known:
        chosen = sorted(known)[0]
    if chosen is not None and chosen not in known:
        have = ", ".join(sorted(known)) or "none"
        raise UsageError(f"no notebook profile {chosen!r} (profiles: {have})",
                         hint="see the platform document's notebooks.profiles, or pass --image")
    base = dict(BUILTIN_PROFILE)
    defaults = known.get(nb_section.get("defaultProfile") or "", {}) if chosen is None else known[chosen]
    base.update({k: v for k, v in defaults.items() if v is not None})
    pool_name = str(pool or base.get("pool") or "cpu")
    pools = cluster.get("pools") or {}
    if pool_name not in pools:
        raise UsageError(f"cluster {cluster.get('name')} has no pool {pool_name} (its pools: "
                         f"{', '.join(sorted(pools)) or 'none'})", hint="choose one with --pool")
    pool_entry = pools[pool_name] or {}
    has_gpus = bool(pool_entry.get("gpuResource")) and bool(pool_entry.get("gpusPerNode", 1))
    if gpus is None:
        gpus = int(base.get("gpus") or 0) if has_gpus else 0
    if gpus < 0:
        raise UsageError("--gpus must be 0 or more")
    if gpus and not has_gpus:
        raise UsageError(f"pool {pool_name} of cluster {cluster.get('name')} has no GPUs, but {gpus} were asked for",
                         hint="use --pool vgpu or gpu, or --gpus 0")
    return Request(
        name=name, profile=chosen, image=str(image or base["image"]), pool=pool_name, gpus=int(gpus),
        cpu=_quantity(cpu if cpu is not None else base.get("cpu", "1"), "--cpu", "cpu"),
        memory=_quantity(memory if memory is not None else base.get("memory", "2Gi"), "--memory", "memory"),
        volume=_quantity(volume if volume is not None else base.get("volume", "5Gi"), "--volume", "memory"),
        cluster=str(cluster.get("name")), mounts=tuple(parse_mount(m) for m in mounts))


def as_spec(req: Request):
    """The notebook as a one-worker job spec, so the job checks (capacity, quota, policy) apply unchanged."""
    from mlctl.jobs.spec import Resources, Spec

    return Spec(name=req.name, framework="notebook", image=req.image,
                resources=Resources(gpus=req.gpus, cpu=req.cpu, memory=req.memory, pool=req.pool), workers=1,
                restart_policy="Always")


def storage_problems(req: Request, quota: dict) -> list[str]:
    """Why a new workspace claim of req.volume would exceed the quota (requests.storage, PVC count)."""
    hard, used = quota.get("hard") or {}, quota.get("used") or {}
    problems = []
    for key, need, kind in (("requests.storage", parse_quantity(req.volume), "memory"),
                            ("persistentvolumeclaims", Decimal(1), "")):
        if key not in hard:
            continue
        try:
            free = max(parse_quantity(hard[key]) - parse_quantity(used.get(key, 0)), Decimal(0))
        except QuantityError:
            continue
        if need > free:
            what = "of storage" if kind else "PVC"
            problems.append(f"the workspace needs {format_quantity(need, kind)} {what} but the namespace quota has "
                            f"{format_quantity(free, kind)} free ({key}: {hard[key]} hard, {used.get(key, 0)} used)")
    return problems


# ---- objects ------------------------------------------------------------------------------------------------

def _labels(name: str, user: str, profile: str | None = None) -> dict:
    from mlctl.tenancy import OWNER_LABEL

    labels = {NOTEBOOK_LABEL: name, OWNER_LABEL: user}
    if profile:
        labels[PROFILE_LABEL] = profile
    return labels


def workspace_claim(req: Request, namespace: str, user: str) -> dict:
    """The workspace: ReadWriteOnce on the cluster's default StorageClass."""
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": req.claim_name, "namespace": namespace, "labels": _labels(req.name, user, req.profile)},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": req.volume}}}}


def kubeconfig(clusters: list[dict], home_cluster: str, namespace: str) -> dict:
    """A kubeconfig with a context per cluster whose credential is `mlctl token --cluster C` (no --platform:
    mlctl finds the platform from MLCTL_PLATFORM_FILE inside the notebook)."""
    doc: dict = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": [],
                 "current-context": f"mlctl-{home_cluster}", "preferences": {}}
    for c in clusters:
        name = f"mlctl-{c['name']}"
        entry = {"server": c["server"]}
        if c.get("certificateAuthorityData"):
            entry["certificate-authority-data"] = c["certificateAuthorityData"]
        doc["clusters"].append({"name": name, "cluster": entry})
        doc["users"].append({"name": name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": "mlctl",
            "args": ["token", "--cluster", c["name"]], "interactiveMode": "Never", "provideClusterInfo": False}}})
        doc["contexts"].append({"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}})
    return doc


def session_copy(session: dict) -> dict:
    """What of the user's SSO session goes into the notebook: identity and the refresh token, never a client
    secret (a cron client's session cannot be refreshed there)."""
    keep = ("method", "user", "groups", "access_token", "expires_at", "refresh_token", "refresh_expires_at")
    return {k: session[k] for k in keep if k in session}


def secret_name(name: str) -> str:
    return f"{name}-mlctl"


def config_secret(name: str, cluster: str, namespace: str, user: str, platform_doc: dict, session: dict) -> dict:
    """The Secret the notebook reads its platform, login and kubeconfig from (docs/notebooks.md)."""
    import json

    import yaml

    clusters = platform_doc.get("clusters") or []
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": secret_name(name), "namespace": namespace, "labels": _labels(name, user),
                         "annotations": {"mlctl.io/purpose": "the notebook's mlctl configuration and login"}},
            "stringData": {"platform.yaml": yaml.safe_dump(platform_doc, sort_keys=False),
                           "session.json": json.dumps(session_copy(session)),
                           "kubeconfig": yaml.safe_dump(kubeconfig(clusters, cluster, namespace),
                                                        sort_keys=False)}}


def redacted(secret: dict) -> dict:
    """A Secret fit to print: its keys, none of its values."""
    out = {k: v for k, v in secret.items() if k not in ("data", "stringData")}
    keys = sorted(set(secret.get("data") or {}) | set(secret.get("stringData") or {}))
    out["stringData"] = {k: "(redacted)" for k in keys}
    return out


def notebook_object(req: Request, cluster: dict, namespace: str, user: str) -> dict:
    """The Kubeflow Notebook: one container named after it, the pool's selector/tolerations/GPU resource,
    the workspace at /home/jovyan, the configuration read-only at /etc/mlctl, the data mounts read-only."""
    pool = (cluster.get("pools") or {})[req.pool] or {}
    resources = {"cpu": req.cpu, "memory": req.memory}
    if req.gpus:
        resources[str(pool["gpuResource"])] = str(req.gpus)
    env = [
        {"name": "HOME", "value": HOME},
        {"name": "MLCTL_PLATFORM_FILE", "value": f"{CONFIG_DIR}/platform.yaml"},
        {"name": "MLCTL_SESSION_SEED", "value": f"{CONFIG_DIR}/session.json"},
        {"name": "KUBECONFIG", "value": f"{CONFIG_DIR}/kubeconfig"},
        {"name": "XDG_CACHE_HOME", "value": f"{CACHE_DIR}/cache"},
    ]
    mounts = [{"name": "workspace", "mountPath": HOME},
              {"name": "mlctl-config", "mountPath": CONFIG_DIR, "readOnly": True},
              {"name": "mlctl-cache", "mountPath": CACHE_DIR}]
    volumes = [{"name": "workspace", "persistentVolumeClaim": {"claimName": req.claim_name}},
               {"name": "mlctl-config", "secret": {"secretName": req.secret_name, "defaultMode": 0o400}},
               {"name": "mlctl-cache", "emptyDir": {}}]
    for i, m in enumerate(req.mounts):
        vol = f"data-{i}"
        mounts.append({"name": vol, "mountPath": m.path, "readOnly": True})
        volumes.append({"name": vol, "hostPath": {"path": m.source}} if m.host_path
                       else {"name": vol, "persistentVolumeClaim": {"claimName": m.source, "readOnly": True}})
    container = {"name": req.name, "image": req.image, "env": env, "workingDir": HOME,
                 # limits = requests, as Kubeflow's form does by default: the namespace's LimitRange would
                 # otherwise give a default limit below the request
                 "resources": {"requests": dict(resources), "limits": dict(resources)},
                 "ports": [{"name": "notebook-port", "containerPort": PORT, "protocol": "TCP"}],
                 # Ready when the server answers, not when its process starts: `create --wait` and `open`
                 # then mean a page that loads (jupyter-server's /api needs no login)
                 "readinessProbe": {"httpGet": {"path": f"{prefix(namespace, req.name)}/api",
                                                "port": "notebook-port"},
                                    "initialDelaySeconds": 1, "periodSeconds": 2, "failureThreshold": 60},
                 "volumeMounts": mounts}
    pod_spec: dict = {"containers": [container], "volumes": volumes}
    if pool.get("nodeSelector"):
        pod_spec["nodeSelector"] = dict(pool["nodeSelector"])
    if pool.get("tolerations"):
        pod_spec["tolerations"] = [dict(t) for t in pool["tolerations"]]
    labels = {"app": req.name, **_labels(req.name, user, req.profile)}
    labels.pop(NOTEBOOK_LABEL)
    annotations = {"mlctl.io/pool": req.pool, "mlctl.io/gpus": str(req.gpus), "mlctl.io/workspace": req.claim_name}
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
            "metadata": {"name": req.name, "namespace": namespace, "labels": labels, "annotations": annotations},
            "spec": {"template": {"spec": pod_spec}}}


def prefix(namespace: str, name: str) -> str:
    """The path the notebook is served under (the controller's NB_PREFIX, the gateway's route)."""
    return f"/notebook/{namespace}/{name}"


def owner_reference(notebook: dict) -> dict:
    meta = notebook["metadata"]
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "name": meta["name"], "uid": meta["uid"],
            "blockOwnerDeletion": False}


# ---- reading a Notebook ---------------------------------------------------------------------------------------

def stopped(notebook: dict) -> bool:
    return STOP_ANNOTATION in ((notebook.get("metadata") or {}).get("annotations") or {})


def ready(notebook: dict) -> bool:
    return int((notebook.get("status") or {}).get("readyReplicas") or 0) >= 1


def state(notebook: dict) -> str:
    """Ready, Stopped, Stopping, or what the pod waits on (Starting when nothing is known yet)."""
    status = notebook.get("status") or {}
    if stopped(notebook):
        return "Stopping" if ready(notebook) else "Stopped"
    if ready(notebook):
        return "Ready"
    container = status.get("containerState") or {}
    for key in ("waiting", "terminated"):
        reason = (container.get(key) or {}).get("reason")
        if reason:
            return reason
    return "Starting"


def message(notebook: dict) -> str:
    """The newest condition's message, else the container's waiting message."""
    status = notebook.get("status") or {}
    for cond in reversed(status.get("conditions") or []):
        if cond.get("message"):
            return str(cond["message"])
    container = status.get("containerState") or {}
    for key in ("waiting", "terminated"):
        if (container.get(key) or {}).get("message"):
            return str(container[key]["message"])
    return ""


def container(notebook: dict) -> dict:
    containers = (((notebook.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}]
    return containers[0]


def gpus(notebook: dict) -> int:
    limits = (container(notebook).get("resources") or {}).get("limits") or {}
    return sum(int(v) for k, v in limits.items() if "/gpu" in k)


def url(gateway: dict | None, namespace: str, name: str) -> str | None:
    """The notebook's address at the platform's gateway (None when the platform has no gateway)."""
    base = (gateway or {}).get("url")
    if not base:
        return None
    return f"{str(base).rstrip('/')}/notebook/{namespace}/{name}/"
