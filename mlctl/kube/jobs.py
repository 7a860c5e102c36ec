"""Kubeflow training jobs (TFJob, PyTorchJob) on one cluster: create, list, get, watch, pods, logs, events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

JOB_NAME_LABEL = "training.kubeflow.org/job-name"
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"


class Kind(NamedTuple):
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


def unschedulable(pods: list[dict]) -> dict[str, str]:
    """{pod name: the scheduler's reason} for pods the scheduler could not place (condition PodScheduled=False,
    reason Unschedulable)."""
    out = {}
    for pod in pods:
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
                out[pod["metadata"]["name"]] = c.get("message") or "no node fits"
    return out


RECREATED_AFTER_SECONDS = 1


def restarts(job: dict, pods: list[dict]) -> dict:
    """How the job coped with lost pods: {"recreated": names of pods created again, "restarting": the
    operator's last Restarting message or None}.

    The operator creates every replica in one pass, which on a busy API server takes several seconds; a pod
    that replaces a lost or retried one comes later. So the first pass is the run of creation times with no gap
    of more than RECREATED_AFTER_SECONDS between one and the next (times have one-second resolution), and
    every pod after the first such gap was created again (a first pass slower than a pod a second, with pods
    lost from its middle, would be misread). Events are no record: the event recorder drops and combines
    them."""
    import datetime as dt

    def created(pod: dict) -> dt.datetime:
        return dt.datetime.fromisoformat(pod["metadata"]["creationTimestamp"].replace("Z", "+00:00"))

    stamped = sorted((p for p in pods if (p.get("metadata") or {}).get("creationTimestamp")), key=created)
    recreated: list[str] = []
    for before, pod in zip(stamped, stamped[1:], strict=False):
        if (created(pod) - created(before)).total_seconds() > RECREATED_AFTER_SECONDS:
            recreated = sorted(p["metadata"]["name"] for p in stamped if created(p) >= created(pod))
            break
    restarting = None
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Restarting":
            restarting = f"{c.get('message') or c.get('reason')} (at {c.get('lastTransitionTime')})"
    return {"recreated": recreated, "restarting": restarting}


class Jobs:
    """Job operations in one namespace of one cluster, over the cluster's Kube (mlctl/kube/api.py)."""

    def __init__(self, kube, namespace: str, cluster: str):
        self.kube, self.namespace, self.cluster = kube, namespace, cluster

    def create(self, obj: dict, dry_run: bool = False) -> dict:
        return self.kube.create(obj, dry_run=dry_run, strict=False, manager="mlctl",
                                what=f"creating {KINDS[obj['kind']].short}/{obj['metadata']['name']}")

    def get(self, name: str, kinds: tuple[str, ...] = ("TFJob", "PyTorchJob")) -> dict:
        from mlctl.errors import NotFound

        for k in kinds:
            try:
                job = self.kube.get(k, name, self.namespace, what=f"reading job {name}")
                job.setdefault("kind", k)
                return job
            except NotFound:
                continue
        raise NotFound(f"job {name!r} not found in namespace {self.namespace} on cluster {self.cluster}",
                       hint="list your jobs with 'mlctl train list'")

    def list(self, page_size: int = 500, selector: str | None = None) -> list[dict]:
        """Every TFJob and PyTorchJob in full, paged with limit/continue."""
        items: list[dict] = []
        for k in KINDS:
            items += self.kube.list(k, self.namespace, selector=selector, limit=page_size)
        return items

    def list_rows(self, page_size: int = 500, selector: str | None = None) -> list[dict]:
        """Only what the job table shows: the API server's Table rendering (name, state, age) plus each
        job's metadata, as kubectl get asks for; far smaller than the full objects."""
        rows: list[dict] = []
        for k in KINDS:
            for page in self.kube.pages(k, self.namespace, selector=selector, limit=page_size, table=True):
                names = [c["name"].lower() for c in page.get("columnDefinitions", [])]
                for row in page.get("rows", []):
                    cells = dict(zip(names, row.get("cells", []), strict=False))
                    meta = (row.get("object") or {}).get("metadata") or {}
                    rows.append({"kind": k, "metadata": meta, "state": cells.get("state") or "Pending"})
        return rows

    def delete(self, job: dict) -> None:
        self.kube.delete(job["kind"], job["metadata"]["name"], self.namespace,
                         what=f"deleting {KINDS[job['kind']].short}/{job['metadata']['name']}")

    def pods(self, name: str) -> list[dict]:
        return self.kube.list("Pod", self.namespace, selector=f"{JOB_NAME_LABEL}={name}",
                              what=f"listing pods of job {name}")

    def quotas(self) -> list[dict]:
        return self.kube.list("ResourceQuota", self.namespace, what="reading the namespace quota")

    def events(self, job: dict) -> list[dict]:
        names = {job["metadata"]["name"]} | {p["metadata"]["name"] for p in self.pods(job["metadata"]["name"])}
        return self.kube.events(self.namespace, names)

    def watch(self, job: dict, timeout: float | None = None, on_open=None) -> Iterator[dict]:
        """Yield the job each time it changes, until it ends; survives API server restarts (the watch resumes
        from the last resourceVersion, or reads the job again when that is too old)."""
        from mlctl import logs
        from mlctl.errors import NotFound

        kind = KINDS[job["kind"]]
        name = job["metadata"]["name"]
        yield job
        if state(job) in TERMINAL:
            return

        def opened():  # -v shows it; tests wait for this line instead of guessing when the watch is open
            logs.info(__name__, "watching %s/%s", kind.short, name)
            if on_open:
                on_open()

        for event, obj in self.kube.watch(job["kind"], self.namespace, name=name, timeout=timeout,
                                          resource_version=job["metadata"].get("resourceVersion"),
                                          on_open=opened):
            if event == "DELETED":
                raise NotFound(f"{kind.short}/{name} was deleted")
            yield obj
            if state(obj) in TERMINAL:
                return

    def stream_logs(self, pod: str, follow: bool, container: str | None = None) -> Iterator[str]:
        yield from self.kube.lines(f"/api/v1/namespaces/{self.namespace}/pods/{pod}/log",
                                   query={"follow": "true" if follow else None, "container": container},
                                   what=f"reading logs of pod {pod}")
