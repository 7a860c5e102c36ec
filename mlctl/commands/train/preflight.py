"""What `mlctl train` and `mlctl burst` check before anything is created, in this order (docs/burst.md):

1. the spec against the cluster's declared pools (no server);
2. the cluster policy (OPA) for the user's groups and the job's request: a deny is exit 5 with the policy's
   reason, no answer is exit 7 (never an allow); each decision is written to the audit trail;
3. the namespace quota (exit 6), the spec's PVCs on that cluster (exit 4), and the pool's free capacity now
   (a warning for `train`, a reason to pass a cluster over for `burst --cluster auto`).
Then submit() renders, annotates the job with the decision, creates it and records the submission.
"""

from __future__ import annotations

from typing import NamedTuple

# Only the bench sets this, to time `--check` without the policy and capacity checks; it is honoured with
# --check alone, so it can never let a submission skip the policy.
SKIP_ENV = "MLCTL_BENCH_SKIP_PREFLIGHT"
DECISION_ANNOTATION = "mlctl.io/policy-decision"
REASON_ANNOTATION = "mlctl.io/policy-reason"


class Fit(NamedTuple):
    """Whether a job fits a pool's free room now: ok None means unknown (the user may not list nodes)."""

    ok: bool | None
    free_gpus: int | None
    why: str


def groups(f) -> list[str]:
    from mlctl.auth.session import cache_for

    return list((cache_for(f).session() or {}).get("groups") or [])


def policy_request(spec, cluster: dict) -> dict:
    """The job as the policy sees it: GPUs in all, pools, whether it runs on preemptible nodes."""
    from mlctl.jobs.render import pool_of

    pool = pool_of(spec, cluster)
    return {"gpus": spec.workers * spec.resources.gpus, "pools": [spec.resources.pool],
            "preemptible": bool(pool.get("preemptible"))}


def hourly_cost(spec, cluster: dict) -> float:
    return spec.workers * spec.resources.gpus * float(cluster.get("gpuHourCost") or 0)


def ask_policy(f, spec, cluster: dict, user: str, command: str):
    """The policy's decision for this job on cluster (recorded in the audit trail); Unavailable when OPA
    cannot be asked."""
    from mlctl import audit

    request = policy_request(spec, cluster)
    mine = groups(f)
    decision = f.opa().decide(user, mine, cluster["name"], request)
    audit.decision(f, decision, user=user, groups=mine, job=spec.name, request=request, command=command)
    return decision


def check_quota(jobs, spec, cluster: dict) -> None:
    from mlctl.jobs.check import check_fit
    from mlctl.quota import readable_quotas

    for quota in readable_quotas(jobs.quotas):
        check_fit(spec, cluster, quota)


def check_pvcs(kube, spec, namespace: str, cluster: str) -> None:
    """Every PVC the spec mounts must exist in the namespace on that cluster (data is not copied for you)."""
    from mlctl.errors import NotFound

    for mount in spec.data:
        if mount.pvc and kube.find("PersistentVolumeClaim", mount.pvc, namespace) is None:
            raise NotFound(f"PVC {mount.pvc} (data {mount.name}) does not exist in {namespace} on cluster {cluster}",
                           hint=f"stage the data into PVC {mount.pvc} on {cluster} first, or override "
                                f"clusters.{cluster}.data in the spec")


def fit_now(f, spec, cluster: dict) -> Fit:
    from mlctl.jobs.quantity import parse_quantity
    from mlctl.kube.capacity import free_by_pool

    free = free_by_pool(f.kube(cluster["name"]), cluster)
    pool = spec.resources.pool
    if free is None or pool not in free:
        return Fit(None, None, f"free capacity of {cluster['name']} unknown (you may not list its nodes)")
    room = free[pool]
    slots = room.slots(spec.resources.gpus, parse_quantity(spec.resources.cpu), parse_quantity(spec.resources.memory))
    if slots >= spec.workers:
        return Fit(True, room.free_gpus, f"{room.free_gpus} GPUs free in pool {pool} now")
    return Fit(False, room.free_gpus, f"pool {pool} has room for {slots} of {spec.workers} workers now "
                                      f"({room.free_gpus} GPUs free)")


def connect_ahead(f, cluster: str) -> None:
    """Open the connections the checks will use, to the cluster's API server and to the policy server, while
    the caller reads the spec (mlctl/ahead.py). Nothing is sent; a failure shows on the check's own request."""
    import sys

    from mlctl.errors import MlctlError

    # From here up to three threads share the interpreter lock, and one whose answer has arrived waits for
    # it up to the switch interval (5 ms by default) while another runs Python code: 1 ms keeps that short.
    sys.setswitchinterval(0.001)
    try:
        f.kube(cluster).connect_ahead()
        f.opa().connect_ahead()
    except MlctlError:
        pass


def run_checks(f, spec, cluster: dict, t, jobs, command: str, *, skip: bool = False):
    """Steps 2 and 3 at once, since none of them writes anything: the policy is asked while the quota, the
    PVCs and the free capacity are read, and they are judged in the order above (a deny wins over a quota
    that is exceeded). (decision or None, Fit or None); skip leaves out all but the quota (the bench)."""
    import threading

    from mlctl.policy import require

    if skip:
        check_quota(jobs, spec, cluster)
        return None, None
    f.opa(), f.kube(cluster["name"])  # built once, before a thread shares them
    # The policy's answer comes from another server: it is asked from a thread of its own while this one
    # reads the cluster over its one kept-alive connection (a connection per thread would pay a TLS
    # handshake each).
    # (a plain thread: concurrent.futures would add its import to every submission)
    answer: list = []

    def asked() -> None:
        try:
            answer.append(ask_policy(f, spec, cluster, t.user, command))
        except BaseException as e:  # noqa: BLE001 - re-raised on the command's thread
            answer.append(e)

    policy = threading.Thread(target=asked, name="preflight-policy", daemon=True)
    policy.start()
    read: list = []
    try:
        check_quota(jobs, spec, cluster)
        check_pvcs(jobs.kube, spec, t.namespace, cluster["name"])
        read.append(fit_now(f, spec, cluster))
    except Exception as e:  # noqa: BLE001 - judged after the policy's answer
        read.append(e)
    policy.join()
    if isinstance(answer[0], BaseException):
        raise answer[0]
    decision = require(answer[0])
    if isinstance(read[0], Exception):
        raise read[0]
    return decision, read[0]


def skip_checks(f, check: bool) -> bool:
    return check and f.env.get(SKIP_ENV) == "1"


def submit(f, spec, cluster: dict, t, jobs, decision, *, dry_run: str, output: str, follow: bool, wait: bool,
           timeout: float | None, command: str, run: str | None = None) -> None:
    """Create the job (run: the run id that decides its outputs' prefix, storage/layout.py)."""
    from mlctl import audit
    from mlctl.jobs.render import render

    if run is None:
        from mlctl.storage.layout import new_run_id

        run = new_run_id()
    objects = render(spec, cluster, user=t.user, namespace=t.namespace, s3=f.platform.section("s3"), run=run)
    job = None
    for obj in objects:
        notes = obj["metadata"].setdefault("annotations", {})
        if decision is not None:
            if decision.id:
                notes[DECISION_ANNOTATION] = decision.id
            notes[REASON_ANNOTATION] = decision.reason
        created = jobs.create(obj, dry_run=dry_run == "server")
        name = f"{obj['kind'].lower()}/{obj['metadata']['name']}"
        suffix = " (server dry run)" if dry_run == "server" else ""
        if dry_run != "server":
            audit.record(f, "submission", command=command, user=t.user, cluster=cluster["name"],
                         namespace=t.namespace, job=name, uid=(created.get("metadata") or {}).get("uid"),
                         decisionId=decision.id if decision else None, reason=decision.reason if decision else None)
        f.io.note(f"{name} created on {cluster['name']} in {t.namespace}{suffix}")
        url = obj["metadata"]["annotations"].get("mlctl.io/output-url")
        if url and dry_run != "server":
            f.io.note(f"outputs of run {run}: {url}")
        if output == "name":
            f.io.out(name)
        job = created
    if dry_run != "server" and job is not None and (follow or wait):
        from mlctl.commands.train.follow import follow as follow_job

        follow_job(f, jobs, job, logs=follow, timeout=timeout)
