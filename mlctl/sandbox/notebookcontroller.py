"""The sandbox's notebook controller: Kubeflow's Notebook contract on cluster local, and the provisioner of the
default StorageClass on every cluster (docs/notebook-controller.md).

    python -m mlctl.sandbox.notebookcontroller --config <state>/notebook-controller/config.json

One process. A thread per watch (Notebooks, StatefulSets, Services, notebook pods and Events on local;
PersistentVolumeClaims and PersistentVolumes on each cluster) feeds one queue; the main thread keeps the caches
and reconciles. A Notebook gets a StatefulSet and a Service of its name, owned by it (the garbage collector
deletes them with it), its status mirrored from pod `<name>-0`, and its pod's and StatefulSet's events
re-emitted on it. A pending claim of the default class gets a PersistentVolume made for it, which the
controller-manager's persistentvolume-binder binds; a released one is deleted. What it builds is notebooks.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path

from mlctl.sandbox import notebooks as nbs

log = logging.getLogger("notebook-controller")

POLL = 0.2
RETRY = 2.0
BACKOFF_MAX = 30.0


class Controller:
    def __init__(self, cfg: dict):
        from mlctl.kube.api import from_kubeconfig

        self.cfg = cfg
        self.notebook_clusters = list(cfg["notebooks"])
        self.volume_clusters = list(cfg["volumes"])
        self.volumes_dir = Path(cfg["volumesDir"])
        contexts = {**cfg["volumes"], **cfg["notebooks"]}
        self.kubes = {c: from_kubeconfig(cfg["kubeconfig"], ctx, cluster=c) for c, ctx in contexts.items()}
        self.events: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.watches: list[tuple[str, str, str | None]] = (
            [(c, k, "notebook-name" if k == "Pod" else None) for c in self.notebook_clusters
             for k in ("Notebook", "StatefulSet", "Service", "Pod", "Event")]
            + [(c, k, None) for c in self.volume_clusters for k in ("PersistentVolumeClaim", "PersistentVolume")])
        self.opened: set[tuple[str, str]] = set()
        # caches, per (cluster, namespace, name)
        self.notebooks: dict[tuple, dict] = {}
        self.sets: dict[tuple, dict] = {}
        self.services: dict[tuple, dict] = {}
        self.pods: dict[tuple, dict] = {}
        # cluster -> (namespace, pod) -> notebook-name; kept after the pod is gone: its last events still count
        self.pod_notebook: dict[str, dict[tuple[str, str], str]] = {}
        self.applied: dict[tuple, str] = {}  # (what, cluster, ns, name) -> fingerprint last applied
        self.dirty: dict[tuple, float] = {}  # notebook key -> when to reconcile
        self.failures: dict[tuple, int] = {}  # notebook key -> failed reconciles in a row (back-off)

    # ---- watching ----------------------------------------------------------------------------------------

    def _watch(self, cluster: str, kind: str, selector: str | None) -> None:
        kube = self.kubes[cluster]

        def opened() -> None:
            self.events.put(("OPENED", cluster, kind, None))

        while not self.stopping.is_set():
            try:
                for typ, obj in kube.watch(kind, selector=selector, on_open=opened):
                    if self.stopping.is_set():
                        return
                    self.events.put((typ, cluster, kind, obj))
            except Exception as e:  # noqa: BLE001 - a lost API server: keep trying until stopped
                log.warning("watch of %s on %s failed (%s); retrying", kind, cluster, e)
                self.stopping.wait(2)

    def run(self, ready_file: Path) -> None:
        for cluster, kind, selector in self.watches:
            threading.Thread(target=self._watch, args=(cluster, kind, selector), daemon=True,
                             name=f"watch-{cluster}-{kind}").start()
        while not self.stopping.is_set():
            try:
                item = self.events.get(timeout=POLL)
                while True:
                    try:
                        self._on_event(*item)
                    except Exception as e:  # noqa: BLE001 - one object's trouble must not stop the others
                        log.warning("%s %s: %s", item[0], item[2], e)
                    item = self.events.get_nowait()
            except queue.Empty:
                pass
            if len(self.opened) == len(self.watches) and not ready_file.exists():
                ready_file.write_text(str(os.getpid()))
            now = time.monotonic()
            for key, when in sorted(self.dirty.items(), key=lambda kv: kv[1]):
                if when > now:
                    continue
                del self.dirty[key]
                self._reconcile_once(key)
        for kube in self.kubes.values():
            kube.close()

    def _mark(self, key: tuple) -> None:
        self.dirty[key] = 0.0
        self.failures.pop(key, None)

    def _reconcile_once(self, key: tuple) -> None:
        """Reconcile; a refused object (an invalid pod spec) is reported on the Notebook as a Warning event and
        left until the Notebook changes; anything else (an API server restarting) is retried with back-off."""
        from mlctl.errors import MlctlError, UsageError

        try:
            self.reconcile(key)
        except UsageError as e:
            log.warning("notebook %s/%s on %s refused: %s", key[1], key[2], key[0], e)
            nb = self.notebooks.get(key)
            if nb is not None:
                with contextlib.suppress(MlctlError):
                    self.kubes[key[0]].create(nbs.warning_event(nb, "FailedCreate", str(e), nbs.now_iso()))
        except Exception as e:  # noqa: BLE001 - retried: the API server may be restarting
            n = self.failures[key] = self.failures.get(key, 0) + 1
            delay = min(BACKOFF_MAX, RETRY * 2 ** (n - 1))
            log.warning("notebook %s/%s on %s: %s; retrying in %.0f s", key[1], key[2], key[0], e, delay)
            self.dirty[key] = time.monotonic() + delay

    def _on_event(self, typ: str, cluster: str, kind: str, obj: dict | None) -> None:
        if typ == "OPENED":
            self.opened.add((cluster, kind))
            return
        meta = obj.get("metadata") or {}
        key = (cluster, meta.get("namespace") or "", meta.get("name") or "")
        gone = typ == "DELETED"
        if kind == "Notebook":
            if gone:
                self.notebooks.pop(key, None)
                for what in ("sts", "svc"):
                    self.applied.pop((what, *key), None)
            else:
                self.notebooks[key] = obj
                self._mark(key)
        elif kind in ("StatefulSet", "Service"):
            cache, what = (self.sets, "sts") if kind == "StatefulSet" else (self.services, "svc")
            owner = _notebook_owner(obj)
            if owner is None:
                return
            nb_key = (cluster, key[1], owner)
            if gone:
                cache.pop(key, None)
                self.applied.pop((what, *nb_key), None)  # someone deleted it: make it again
            else:
                cache[key] = obj
            self._mark(nb_key)
        elif kind == "Pod":
            name = (meta.get("labels") or {}).get(nbs.NAME_LABEL)
            if not name:
                return
            self.pod_notebook.setdefault(cluster, {})[key[1:]] = name
            if gone:
                self.pods.pop(key, None)
            else:
                self.pods[key] = obj
            self._mark((cluster, key[1], name))
        elif kind == "Event":
            if typ in ("ADDED", "MODIFIED"):  # not SYNC: events from before the watch were re-emitted then
                self._reissue(cluster, obj)
        elif kind == "PersistentVolumeClaim":
            if not gone and nbs.wants_volume(obj):
                self._provision(cluster, obj)
        elif kind == "PersistentVolume":
            if not gone and nbs.released(obj):
                log.info("deleting released volume %s on %s", meta.get("name"), cluster)
                with contextlib.suppress(Exception):
                    self.kubes[cluster].delete("PersistentVolume", meta["name"])

    # ---- notebooks ---------------------------------------------------------------------------------------

    def reconcile(self, key: tuple) -> None:
        cluster, namespace, name = key
        nb = self.notebooks.get(key)
        if nb is None or (nb.get("metadata") or {}).get("deletionTimestamp"):
            return  # the garbage collector deletes what it owned
        kube = self.kubes[cluster]
        for what, desired, cache in (("sts", nbs.statefulset(nb), self.sets), ("svc", nbs.service(nb), self.services)):
            fp = nbs.fingerprint(desired)
            if self.applied.get((what, *key)) != fp or nbs.drifted(desired, cache.get(key)):
                kind = desired["kind"]
                log.info("applying %s %s/%s on %s", kind.lower(), namespace, name, cluster)
                cache[key] = kube.apply(desired, nbs.FIELD_MANAGER, force=True)
                self.applied[(what, *key)] = fp
        pod = self.pods.get((cluster, namespace, f"{name}-0"))
        status = nbs.notebook_status(nb, self.sets.get(key), pod, nbs.now_iso())
        patch = nbs.status_patch(nb.get("status"), status)
        if patch:
            from mlctl.errors import NotFound

            try:
                self.notebooks[key] = kube.patch("Notebook", name, patch, namespace, sub="status",
                                                 manager=nbs.FIELD_MANAGER)
            except NotFound:
                self.notebooks.pop(key, None)

    def _reissue(self, cluster: str, event: dict) -> None:
        from mlctl.errors import MlctlError

        src = event.get("involvedObject") or {}
        namespace = src.get("namespace") or (event.get("metadata") or {}).get("namespace") or ""
        name = nbs.event_notebook(event, self.pod_notebook.get(cluster, {}))
        nb = self.notebooks.get((cluster, namespace, name)) if name else None
        if nb is None or (src.get("kind") == "StatefulSet" and (cluster, namespace, name) not in self.sets):
            return  # not a notebook's; a StatefulSet of the same name that it does not own is not either
        out = nbs.reissued_event(event, nb, nbs.now_iso())
        kube = self.kubes[cluster]
        try:
            try:
                kube.create(out)
            except MlctlError as e:
                if getattr(e, "status", None) != 409:
                    raise
                # re-emitted already: the source repeated (count up), or a restart saw it again
                kube.patch("Event", out["metadata"]["name"], {"count": out["count"], "message": out["message"],
                                                              "lastTimestamp": out["lastTimestamp"]}, namespace)
        except MlctlError as e:
            log.warning("re-emitting an event on notebook %s/%s: %s", namespace, name, e)

    # ---- claims ------------------------------------------------------------------------------------------

    def _provision(self, cluster: str, pvc: dict) -> None:
        from mlctl.errors import MlctlError

        meta = pvc["metadata"]
        directory = nbs.claim_dir(self.volumes_dir, cluster, meta["namespace"], meta["name"])
        try:
            self.kubes[cluster].create(nbs.volume_for(pvc, str(directory)), manager=nbs.FIELD_MANAGER)
            log.info("provisioned %s for claim %s/%s on %s", nbs.volume_name(pvc), meta["namespace"],
                     meta["name"], cluster)
        except MlctlError as e:
            if getattr(e, "status", None) != 409:  # 409: made already
                raise


def _notebook_owner(obj: dict) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Notebook" and ref.get("controller") and ref.get("apiVersion", "").startswith(
                "kubeflow.org/"):
            return ref.get("name")
    return None


def main(argv: list[str] | None = None) -> int:
    from mlctl.sandbox.procs import controller_main

    return controller_main("python -m mlctl.sandbox.notebookcontroller", argv, Controller,
                           lambda c: f"notebooks on {', '.join(c.notebook_clusters)}; claims of class "
                                     f"{nbs.STORAGE_CLASS} on {', '.join(c.volume_clusters)}")


if __name__ == "__main__":
    sys.exit(main())
