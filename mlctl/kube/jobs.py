"""Kubeflow training jobs (TFJob, PyTorchJob) on one cluster: create, list, get, watch, pods, logs, events."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from mlctl.kube.errors import kube_errors

log = logging.getLogger(__name__)

GROUP, VERSION = "kubeflow.org", "v1"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    replica_field: str
    lead: str  # the replica whose logs `logs` shows by default

    @property
    def short(self) -> str:
        return self.kind.lower()


KINDS = {
    "TFJob": Kind("TFJob", "tfjobs", "tfReplicaSpecs", "Chief"),
    "PyTorchJob": Kind("PyTorchJob", "pytorchjobs", "pytorchReplicaSpecs", "Master"),
}
TERMINAL = ("Succeeded", "Failed")


def replica_of(pod: dict) -> tuple[str, str | None]:
    """A pod's replica type (lower case, "" when unlabelled) and index (None when unlabelled), from the
    training-operator's labels."""
    labels = pod["metadata"].get("labels") or {}
    return labels.get(REPLICA_TYPE_LABEL, "").lower(), labels.get(REPLICA_INDEX_LABEL)


def state(job: dict) -> str:
    """The job's current state: the newest true condition (Created, Running, Restarting, Succeeded, Failed)."""
    conditions = [c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
    if not conditions:
        return "Pending"
    for terminal in TERMINAL:
        if any(c["type"] == terminal for c in conditions):
            return terminal
    return conditions[-1]["type"]


def reason(job: dict) -> str:
    for c in reversed((job.get("status") or {}).get("conditions") or []):
        if c.get("status") == "True" and c.get("type") == state(job):
            return c.get("message") or c.get("reason") or ""
    return ""


def replica_counts(job: dict) -> dict[str, dict[str, int]]:
    """Replica type -> {desired, active, succeeded, failed}."""
    kind = KINDS.get(job.get("kind", ""), KINDS["TFJob"])
    statuses = (job.get("status") or {}).get("replicaStatuses") or {}
    out = {}
    for rtype, rspec in ((job.get("spec") or {}).get(kind.replica_field) or {}).items():
        s = statuses.get(rtype) or {}
        out[rtype] = {"desired": int(rspec.get("replicas") or 1), "active": int(s.get("active") or 0),
                      "succeeded": int(s.get("succeeded") or 0), "failed": int(s.get("failed") or 0)}
    return out


def replicas_summary(job: dict) -> str:
    parts = []
    for rtype, c in replica_counts(job).items():
        done = c["succeeded"] + c["failed"]
        text = f"{rtype} {c['active']}/{c['desired']} running"
        if done:
            text += f", {c['succeeded']} succeeded" + (f", {c['failed']} failed" if c["failed"] else "")
        parts.append(text)
    return "; ".join(parts)


class Jobs:
    """Job operations in one namespace of one cluster.

    rest (kube/rest.py) serves create/get/list/delete/pods/logs without importing the kubernetes package;
    api_factory builds a kubernetes ApiClient on first use, for watches and events.
    """

    def __init__(self, rest, api_factory, namespace: str, cluster: str):
        self.rest, self._api_factory = rest, api_factory
        self.namespace, self.cluster = namespace, cluster
        self._api = None

    @property
    def api(self):
        if self._api is None:
            self._api = self._api_factory()
        return self._api

    def _path(self, kind: Kind, name: str | None = None) -> str:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{kind.plural}"
        return f"{path}/{name}" if name else path

    def create(self, obj: dict, dry_run: bool = False) -> dict:
        kind = KINDS[obj["kind"]]
        return self.rest.request("POST", self._path(kind), body=obj,
                                 query={"fieldManager": "mlctl", "dryRun": "All" if dry_run else None},
                                 what=f"creating {kind.short}/{obj['metadata']['name']}")

    def get(self, name: str, kinds: tuple[str, ...] = ("TFJob", "PyTorchJob")) -> dict:
        from mlctl.errors import NotFound

        for k in kinds:
            try:
                return self.rest.request("GET", self._path(KINDS[k], name), what=f"reading job {name}")
            except NotFound:
                continue
        raise NotFound(f"job {name!r} not found in namespace {self.namespace} on cluster {self.cluster}",
                       hint="list your jobs with 'mlctl train list'")

    def _pages(self, kind: Kind, selector: str | None, page_size: int, accept: str) -> Iterator[dict]:
        token = None
        while True:
            page = self.rest.request("GET", self._path(kind), accept=accept, what=f"listing {kind.plural}",
                                     query={"limit": page_size, "continue": token, "labelSelector": selector})
            yield page
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def list(self, page_size: int = 500, selector: str | None = None) -> list[dict]:
        """Every TFJob and PyTorchJob in full, paged with limit/continue."""
        items: list[dict] = []
        for kind in KINDS.values():
            for page in self._pages(kind, selector, page_size, "application/json"):
                for item in page.get("items", []):
                    item.setdefault("kind", kind.kind)
                    items.append(item)
        return items

    def list_rows(self, page_size: int = 500, selector: str | None = None) -> list[dict]:
        """Only what the job table shows: the API server's Table rendering (name, state, age) plus each
        job's metadata, as kubectl get asks for; far smaller than the full objects."""
        from mlctl.kube.rest import TABLE

        rows: list[dict] = []
        for kind in KINDS.values():
            for page in self._pages(kind, selector, page_size, TABLE):
                names = [c["name"].lower() for c in page.get("columnDefinitions", [])]
                for row in page.get("rows", []):
                    cells = dict(zip(names, row.get("cells", []), strict=False))
                    meta = (row.get("object") or {}).get("metadata") or {}
                    rows.append({"kind": kind.kind, "metadata": meta, "state": cells.get("state") or "Pending"})
        return rows

    def delete(self, job: dict) -> None:
        kind = KINDS[job["kind"]]
        self.rest.request("DELETE", self._path(kind, job["metadata"]["name"]),
                          body={"propagationPolicy": "Background"},
                          what=f"deleting {kind.short}/{job['metadata']['name']}")

    def pods(self, name: str) -> list[dict]:
        return self.rest.request("GET", f"/api/v1/namespaces/{self.namespace}/pods",
                                 query={"labelSelector": f"{JOB_NAME_LABEL}={name}"},
                                 what=f"listing pods of job {name}").get("items", [])

    def quotas(self) -> list[dict]:
        return self.rest.request("GET", f"/api/v1/namespaces/{self.namespace}/resourcequotas",
                                 what="reading the namespace quota").get("items", [])

    def events(self, job: dict) -> list:
        from kubernetes import client

        names = {job["metadata"]["name"]} | {p["metadata"]["name"] for p in self.pods(job["metadata"]["name"])}
        with kube_errors("listing events", self.cluster):
            events = client.CoreV1Api(self.api).list_namespaced_event(self.namespace).items
        events = [e for e in events if e.involved_object and e.involved_object.name in names]
        return sorted(events, key=lambda e: (e.last_timestamp or e.event_time or e.metadata.creation_timestamp))

    def watch(self, job: dict, timeout: float | None = None) -> Iterator[dict]:
        """Yield the job each time it changes, until it ends; survives API server restarts.

        A dropped watch is resumed from the last resourceVersion; if that is too old (410), the job is read
        again and the watch restarts from there.
        """
        from kubernetes import client, watch
        from kubernetes.client.exceptions import ApiException

        custom = client.CustomObjectsApi(self.api)
        kind = KINDS[job["kind"]]
        name = job["metadata"]["name"]
        version = job["metadata"].get("resourceVersion")
        deadline = None if timeout is None else time.monotonic() + timeout
        yield job
        if state(job) in TERMINAL:
            return
        failures = 0
        while deadline is None or time.monotonic() < deadline:
            w = watch.Watch()
            try:
                for event in w.stream(custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace,
                                      kind.plural, field_selector=f"metadata.name={name}",
                                      resource_version=version, timeout_seconds=30):
                    failures = 0
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        raise ApiException(status=obj.get("code", 500), reason=obj.get("message"))
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "DELETED":
                        from mlctl.errors import NotFound

                        raise NotFound(f"{kind.short}/{name} was deleted")
                    yield obj
                    if state(obj) in TERMINAL:
                        return
            except ApiException as e:
                if e.status == 410:
                    job = self.get(name, (kind.kind,))
                    version = job["metadata"]["resourceVersion"]
                    yield job
                    if state(job) in TERMINAL:
                        return
                    continue
                failures += 1
                log.info("watch of %s/%s interrupted (%s); resuming", kind.short, name, e.status)
            except Exception as e:  # noqa: BLE001 - connection reset while the API server restarts
                import urllib3

                if not isinstance(e, (urllib3.exceptions.HTTPError, ConnectionError, OSError)):
                    raise
                failures += 1
                log.info("watch of %s/%s lost its connection; resuming", kind.short, name)
            finally:
                w.stop()
            if failures:
                if failures > 60:
                    from mlctl.errors import Unavailable

                    raise Unavailable(f"lost the API server of cluster {self.cluster} while watching {name}")
                time.sleep(min(5.0, 0.5 * failures))

    def stream_logs(self, pod: str, follow: bool, container: str | None = None) -> Iterator[str]:
        yield from self.rest.lines(f"/api/v1/namespaces/{self.namespace}/pods/{pod}/log",
                                   query={"follow": "true" if follow else None, "container": container},
                                   what=f"reading logs of pod {pod}")
