"""The Kubeflow Notebook API on cluster local: its CRD, RBAC, the sandbox's notebook controller, and the
provisioner of the default StorageClass (docs/notebook-controller.md).

The upstream notebook-controller cannot be had from the Go module proxy, so the sandbox runs a controller of its
own (notebookcontroller.py, one process) that keeps the upstream contract. This module holds its pure parts —
the StatefulSet and Service a Notebook yields, the status mirrored from its pod, the events re-emitted on it, the
PersistentVolume made for a claim — and the component that installs and starts it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from mlctl.sandbox.component import Component, Context
from mlctl.sandbox.procs import interpreter, wait_until

PROCESS = "notebook-controller"
CRD = "notebooks.kubeflow.org"
API_VERSION = "kubeflow.org/v1"
#: the cluster whose Notebooks the controller reconciles (claims are provisioned on every cluster)
CLUSTER = "local"
COMPONENT = "notebook-controller"  # the events' source, as upstream's recorder names it
FIELD_MANAGER = "notebook-controller"

STOP_ANNOTATION = "kubeflow-resource-stopped"
PREFIX_ENV = "NB_PREFIX"
CONTAINER_PORT = 8888
SERVING_PORT = 80
DEFAULT_WORKING_DIR = "/home/jovyan"
DEFAULT_FS_GROUP = 100
NAME_LABEL = "notebook-name"
SET_LABEL = "statefulset"

STORAGE_CLASS = "standard"
PROVISIONER = "mlctl.io/local"
PROVISIONER_ANNOTATIONS = ("volume.kubernetes.io/storage-provisioner", "volume.beta.kubernetes.io/storage-provisioner")
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"

PROFILES = {
    "jupyterlab": {"image": "mlctl.sandbox/notebook:1", "pool": "vgpu", "gpus": 1, "cpu": "1", "memory": "2Gi",
                   "volume": "5Gi", "description": "JupyterLab on a shared virtual GPU"},
    "cpu-only": {"image": "mlctl.sandbox/notebook:1", "pool": "cpu", "gpus": 0, "cpu": "1", "memory": "2Gi",
                 "volume": "5Gi", "description": "JupyterLab on a CPU node, no GPU"},
}


def prefix(namespace: str, name: str) -> str:
    """The URL path the notebook is served under (its NB_PREFIX; the gateway's route)."""
    return f"/notebook/{namespace}/{name}"


def owner_reference(nb: dict) -> dict:
    meta = nb["metadata"]
    return {"apiVersion": nb.get("apiVersion") or API_VERSION, "kind": "Notebook", "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def stopped(nb: dict) -> bool:
    return STOP_ANNOTATION in ((nb.get("metadata") or {}).get("annotations") or {})


# ---- what a Notebook yields ------------------------------------------------------------------------------

def statefulset(nb: dict) -> dict:
    """The StatefulSet of the Notebook's name: one replica (none while the stop annotation is there), the pod
    template from spec.template.spec with the Notebook's labels and annotations, the labels `statefulset` and
    `notebook-name`, and upstream's defaults for the first container (working directory, port 8888 named
    notebook-port, NB_PREFIX) and the pod (fsGroup 100 without a security context)."""
    import copy

    meta = nb["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    labels = {SET_LABEL: name, NAME_LABEL: name, **(meta.get("labels") or {})}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if "kubectl" not in k and "notebook" not in k}
    spec = copy.deepcopy(((nb.get("spec") or {}).get("template") or {}).get("spec") or {})
    containers = spec.get("containers") or []
    if containers:
        first = containers[0]
        if not first.get("workingDir"):
            first["workingDir"] = DEFAULT_WORKING_DIR
        if first.get("ports") is None:
            first["ports"] = [{"containerPort": CONTAINER_PORT, "name": "notebook-port", "protocol": "TCP"}]
        env = [e for e in first.get("env") or [] if e.get("name") != PREFIX_ENV]
        first["env"] = [*env, {"name": PREFIX_ENV, "value": prefix(namespace, name)}]
    if spec.get("securityContext") is None:
        spec["securityContext"] = {"fsGroup": DEFAULT_FS_GROUP}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "ownerReferences": [owner_reference(nb)]},
        "spec": {
            "replicas": 0 if stopped(nb) else 1,
            "selector": {"matchLabels": {SET_LABEL: name}},
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec},
        },
    }


def service(nb: dict) -> dict:
    """The Service of the Notebook's name: port 80 (`http-<name>`) to the first container's first port
    (8888 when it names none), selecting the StatefulSet's pods."""
    meta = nb["metadata"]
    name = meta["name"]
    containers = (((nb.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}]
    ports = containers[0].get("ports")
    target = int(ports[0]["containerPort"]) if ports else CONTAINER_PORT
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": meta["namespace"], "ownerReferences": [owner_reference(nb)]},
        "spec": {"type": "ClusterIP", "selector": {SET_LABEL: name},
                 "ports": [{"name": f"http-{name}", "port": SERVING_PORT, "targetPort": target, "protocol": "TCP"}]},
    }


def drifted(desired: dict, live: dict | None) -> bool:
    """Whether someone changed what the controller owns in the live StatefulSet (replicas) or Service
    (selector; ports' name, port, targetPort) — put back, as upstream's update does. Other fields are compared
    through the fingerprint of what was last applied (the API server's defaults make a live comparison noisy)."""
    if live is None:
        return True
    want, have = desired.get("spec") or {}, live.get("spec") or {}
    if desired["kind"] == "StatefulSet":
        return have.get("replicas") != want.get("replicas")

    def ports(spec: dict) -> list:
        return [(p.get("name"), p.get("port"), p.get("targetPort")) for p in spec.get("ports") or []]

    return have.get("selector") != want.get("selector") or ports(have) != ports(want)


def fingerprint(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


# ---- status ----------------------------------------------------------------------------------------------

def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def notebook_status(nb: dict, sts: dict | None, pod: dict | None, now: str) -> dict:
    """The Notebook's status: readyReplicas from the StatefulSet; containerState of the pod's container named
    after the Notebook (as upstream: none of that name, no containerState); the pod's conditions, mirrored.
    A condition's lastProbeTime and lastTransitionTime, when the pod has none, are `now` — kept from the
    Notebook's previous status while the condition does not change, so an unchanged pod writes nothing."""
    status = {"readyReplicas": int(((sts or {}).get("status") or {}).get("readyReplicas") or 0),
              "containerState": {}, "conditions": []}
    pod_status = (pod or {}).get("status") or {}
    if not pod_status:
        return status
    name = nb["metadata"]["name"]
    for cs in pod_status.get("containerStatuses") or []:
        if cs.get("name") == name:
            status["containerState"] = cs.get("state") or {}
            break
    before = {c.get("type"): c for c in ((nb.get("status") or {}).get("conditions") or [])}
    for pc in pod_status.get("conditions") or []:
        cond = {"type": pc.get("type", ""), "status": pc.get("status", "")}
        for key in ("reason", "message"):
            if pc.get(key):
                cond[key] = pc[key]
        old = before.get(cond["type"]) or {}
        same = all(old.get(k) == cond.get(k) for k in ("status", "reason", "message"))
        for key in ("lastProbeTime", "lastTransitionTime"):
            cond[key] = pc.get(key) or (old.get(key) if same and old.get(key) else now)
        status["conditions"].append(cond)
    return status


def status_patch(current: dict | None, desired: dict) -> dict | None:
    """A merge patch of the status subresource taking current to desired, None when they are equal. A
    containerState key that is gone is set to null (a merge patch keeps what it does not name)."""
    current = current or {}
    if all(current.get(k) == desired[k] for k in desired):
        return None
    state = dict(desired["containerState"])
    for key in (current.get("containerState") or {}):
        state.setdefault(key, None)
    return {"status": {**desired, "containerState": state}}


# ---- events ----------------------------------------------------------------------------------------------

def reissued_event(event: dict, nb: dict, now: str) -> dict:
    """An event of the Notebook's pod or StatefulSet, re-emitted on the Notebook as upstream does ("Reissued
    from pod/NAME: message"). Its name is derived from the source event, so a repeat of the source (its count
    going up) is counted on the same event, as an event recorder aggregates, and a restarted controller does
    not emit it twice."""
    src = event.get("involvedObject") or {}
    meta = nb["metadata"]
    uid = (event.get("metadata") or {}).get("uid") or (event.get("metadata") or {}).get("name", "")
    digest = hashlib.sha256(f"{meta['uid']}/{uid}".encode()).hexdigest()[:16]
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{digest}", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": nb.get("apiVersion") or API_VERSION, "kind": "Notebook",
                           "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
        "reason": event.get("reason") or "",
        "message": f"Reissued from {(src.get('kind') or '').lower()}/{src.get('name')}: {event.get('message') or ''}",
        "type": event.get("type") or "Normal", "count": event_count(event),
        "firstTimestamp": now, "lastTimestamp": now,
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
    }


def event_count(event: dict) -> int:
    return int(event.get("count") or (event.get("series") or {}).get("count") or 1)


def warning_event(nb: dict, reason: str, message: str, now: str) -> dict:
    """A Warning event of the controller's own on the Notebook (what it made was refused)."""
    meta = nb["metadata"]
    digest = hashlib.sha256(f"{meta['uid']}/{meta.get('generation')}/{reason}/{message}".encode()).hexdigest()[:16]
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{digest}", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": nb.get("apiVersion") or API_VERSION, "kind": "Notebook",
                           "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
        "reason": reason, "message": message, "type": "Warning", "count": 1,
        "firstTimestamp": now, "lastTimestamp": now,
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
    }


def event_notebook(event: dict, pod_notebooks: dict[tuple[str, str], str]) -> str | None:
    """The name of the Notebook an event is about, as upstream finds it: a StatefulSet's event names it; a
    pod's is that of the pod's notebook-name label (pod_notebooks: (namespace, pod) -> that label, kept after
    the pod is gone). Events of anything else: None."""
    src = event.get("involvedObject") or {}
    if src.get("kind") == "StatefulSet":
        return src.get("name")
    if src.get("kind") == "Pod":
        return pod_notebooks.get((src.get("namespace") or "", src.get("name") or ""))
    return None


# ---- claims ----------------------------------------------------------------------------------------------

def wants_volume(pvc: dict) -> bool:
    """A claim of the default class that waits for a volume: Pending, no volume named, and handed to this
    provisioner by the persistentvolume-binder (its storage-provisioner annotation)."""
    spec, meta = pvc.get("spec") or {}, pvc.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return (spec.get("storageClassName") == STORAGE_CLASS and not spec.get("volumeName")
            and not meta.get("deletionTimestamp")
            and ((pvc.get("status") or {}).get("phase") or "Pending") == "Pending"
            and any(annotations.get(a) == PROVISIONER for a in PROVISIONER_ANNOTATIONS))


def volume_name(pvc: dict) -> str:
    return f"pvc-{pvc['metadata']['uid']}"


def volume_for(pvc: dict, directory: str, reclaim: str = "Delete") -> dict:
    """The PersistentVolume provisioned for a claim, pre-bound to it (claimRef with uid), as an external
    provisioner makes it: the binder then binds the pair. Its hostPath is the directory the pod runner keeps
    for the claim."""
    meta, spec = pvc["metadata"], pvc.get("spec") or {}
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": volume_name(pvc), "annotations": {PROVISIONED_BY: PROVISIONER},
                     "labels": {"app.kubernetes.io/managed-by": "mlctl-sandbox"}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "persistentVolumeReclaimPolicy": reclaim,
            "storageClassName": STORAGE_CLASS,
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                         "name": meta["name"], "uid": meta["uid"]},
            "hostPath": {"path": directory},
        },
    }


def released(pv: dict) -> bool:
    """A volume this provisioner made whose claim is gone and whose policy is Delete: delete it."""
    meta, spec = pv.get("metadata") or {}, pv.get("spec") or {}
    return ((meta.get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER
            and spec.get("persistentVolumeReclaimPolicy") == "Delete"
            and (pv.get("status") or {}).get("phase") in ("Released", "Failed")
            and not meta.get("deletionTimestamp"))


def claim_dir(volumes: Path, cluster: str, namespace: str, claim: str) -> Path:
    """Where a claim's files live: the pod runner's directory for it under <state>/volumes (docs/workloads.md)."""
    return volumes / cluster / namespace / claim


# ---- the component ---------------------------------------------------------------------------------------

def manifests_dir() -> Path:
    from mlctl.sandbox import core

    return core.source_dir() / "manifests" / "notebooks"


def _documents(name: str) -> list[dict]:
    import yaml

    return [d for d in yaml.safe_load_all((manifests_dir() / name).read_text()) if d]


def info(root: Path) -> dict:
    """The controller's configuration as it was started (clusters, volumes directory)."""
    return json.loads((root / PROCESS / "config.json").read_text())


class NotebookController(Component):
    """The Notebook CRD and RBAC on cluster local, the default StorageClass on every cluster, and one process
    reconciling Notebooks and provisioning claims (notebookcontroller.py)."""

    name = PROCESS

    def manifests(self, ctx: Context, cluster: str) -> list[dict]:
        objs = _documents("storageclass.yaml")
        if cluster == CLUSTER:
            objs += _documents("crd.yaml") + _documents("rbac.yaml")
        return objs

    def start(self, ctx: Context) -> dict:

        from mlctl.kube import api
        from mlctl.sandbox import core, notebookcontroller

        kube = ctx.kube(CLUSTER)
        wait_until(lambda: _established(kube), 30, f"the Notebook CRD in cluster {CLUSTER}")
        home = ctx.dir(PROCESS)
        cfg = {"kubeconfig": str(ctx.kubeconfig), "notebooks": {CLUSTER: f"sandbox-{CLUSTER}"},
               "volumes": {c: f"sandbox-{c}" for c in core.CLUSTERS}, "volumesDir": str(ctx.root / "volumes")}
        path = home / "config.json"
        text = json.dumps(cfg, indent=2, sort_keys=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        argv = [interpreter(), "-m", "mlctl.sandbox.notebookcontroller", f"--config={path}"]
        # its own code is part of its configuration: an upgraded mlctl restarts it
        code = [Path(notebookcontroller.__file__), Path(__file__), Path(api.__file__)]
        state = ctx.state
        action = state.ensure(PROCESS, argv, files=[path, ctx.kubeconfig, *code], cwd=home)
        ready = home / "ready"
        wait_until(lambda: ready.exists() and state.is_running(PROCESS) and
                   ready.read_text().strip() == str(state.data["processes"][PROCESS]["pid"]),
                   60, "the notebook controller to watch its clusters", state, PROCESS)
        proc = state.data["processes"][PROCESS]
        return {"pid": proc["pid"], "log": proc["log"], "action": action}

    def platform(self, ctx: Context) -> dict:
        return {"notebooks": {"cluster": CLUSTER, "defaultProfile": "jupyterlab",
                              "profiles": {k: dict(v) for k, v in PROFILES.items()}}}

    def processes(self, ctx: Context) -> list[str]:
        return [PROCESS]


def _established(kube) -> bool:
    crd = kube.find("CustomResourceDefinition", CRD)
    return bool(crd) and any(c.get("type") == "Established" and c.get("status") == "True"
                             for c in (crd.get("status") or {}).get("conditions") or [])
