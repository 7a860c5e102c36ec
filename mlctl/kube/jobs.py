"""Kubeflow training jobs (TFJob, PyTorchJob) on one cluster: create, list, get, watch, pods, logs, events."""

from __future__ import annotations

import json
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
    """Job operations in one namespace of one cluster (api is a kubernetes ApiClient)."""

    def __init__(self, api, namespace: str, cluster: str):
        from kubernetes import client

        self.api, self.namespace, self.cluster = api, namespace, cluster
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    def create(self, obj: dict, dry_run: bool = False) -> dict:
        kind = KINDS[obj["kind"]]
        with kube_errors(f"creating {kind.short}/{obj['metadata']['name']}", self.cluster):
            return self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, kind.plural, obj, dry_run="All" if dry_run else None,
                field_manager="mlctl")

    def get(self, name: str, kinds: tuple[str, ...] = ("TFJob", "PyTorchJob")) -> dict:
        from kubernetes.client.exceptions import ApiException

        from mlctl.errors import NotFound

        for k in kinds:
            try:
                with kube_errors(f"reading job {name}", self.cluster):
                    return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace,
                                                                    KINDS[k].plural, name)
            except NotFound:
                continue
            except ApiException:
                raise
        raise NotFound(f"job {name!r} not found in namespace {self.namespace} on cluster {self.cluster}",
                       hint="list your jobs with 'mlctl train list'")

    def list(self, page_size: int = 500, selector: str | None = None) -> list[dict]:
        """Every TFJob and PyTorchJob, paged with limit/continue; raw JSON, decoded once."""
        items: list[dict] = []
        for kind in KINDS.values():
            token = None
            while True:
                with kube_errors(f"listing {kind.plural}", self.cluster):
                    resp = self.custom.list_namespaced_custom_object(
                        GROUP, VERSION, self.namespace, kind.plural, limit=page_size, _continue=token,
                        label_selector=selector, _preload_content=False)
                    data = json.loads(resp.data)
                for item in data.get("items", []):
                    item.setdefault("kind", kind.kind)
                    items.append(item)
                token = (data.get("metadata") or {}).get("continue")
                if not token:
                    break
        return items

    def delete(self, job: dict) -> None:
        kind = KINDS[job["kind"]]
        with kube_errors(f"deleting {kind.short}/{job['metadata']['name']}", self.cluster):
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, kind.plural,
                                                        job["metadata"]["name"], propagation_policy="Background")

    def pods(self, name: str) -> list:
        with kube_errors(f"listing pods of job {name}", self.cluster):
            return self.core.list_namespaced_pod(self.namespace, label_selector=f"{JOB_NAME_LABEL}={name}").items

    def events(self, job: dict) -> list:
        names = {job["metadata"]["name"]} | {p.metadata.name for p in self.pods(job["metadata"]["name"])}
        with kube_errors("listing events", self.cluster):
            events = self.core.list_namespaced_event(self.namespace).items
        events = [e for e in events if e.involved_object and e.involved_object.name in names]
        return sorted(events, key=lambda e: (e.last_timestamp or e.event_time or e.metadata.creation_timestamp))

    def watch(self, job: dict, timeout: float | None = None) -> Iterator[dict]:
        """Yield the job each time it changes, until it ends; survives API server restarts.

        A dropped watch is resumed from the last resourceVersion; if that is too old (410), the job is read
        again and the watch restarts from there.
        """
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

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
                for event in w.stream(self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace,
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
        with kube_errors(f"reading logs of pod {pod}", self.cluster):
            resp = self.core.read_namespaced_pod_log(pod, self.namespace, container=container, follow=follow,
                                                     _preload_content=False)
        try:
            for line in _lines(resp):
                yield line if isinstance(line, str) else line.decode(errors="replace")
        finally:
            resp.release_conn()


def _lines(resp) -> Iterator[str]:
    buffer = b""
    for chunk in resp.stream(1024):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode(errors="replace") + "\n"
    if buffer:
        yield buffer.decode(errors="replace")
