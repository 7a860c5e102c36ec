"""Will the job fit? Per-node and per-pool capacity of the cluster, and the namespace quota's free headroom.

check_fit raises QuotaExceeded (exit 6) with the numbers when the job can never be scheduled or would be
refused by the ResourceQuota, and returns warnings (one line each) for things that are allowed but unwise.
Capacity is what the platform document declares per node (allocatable, before daemonsets).
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from mlctl.errors import QuotaExceeded, UsageError
from mlctl.jobs.quantity import QuantityError, format_quantity, parse_quantity
from mlctl.jobs.render import gpu_resource, pool_of
from mlctl.jobs.spec import Spec

_QUOTA_HINT = "lower workers or resources.gpus, try another cluster, or see `mlctl quota show`"
_CAPACITY_HINT = "lower workers or the per-worker resources, or use a cluster with a bigger pool"


class Totals(NamedTuple):
    """What the whole job requests (every pod together)."""

    pods: int
    gpus: int
    cpu: Decimal
    memory: Decimal
    gpu_resource: str | None


def totals(spec: Spec, cluster: dict) -> Totals:
    return Totals(pods=spec.workers, gpus=spec.workers * spec.resources.gpus,
                  cpu=spec.workers * parse_quantity(spec.resources.cpu),
                  memory=spec.workers * parse_quantity(spec.resources.memory),
                  gpu_resource=gpu_resource(spec, cluster))


def _capacity(pool: dict, key: str, where: str) -> Decimal | None:
    value = pool.get(key)
    if value is None:
        return None
    try:
        return parse_quantity(value)
    except QuantityError:
        raise UsageError(f"platform document: {where}: {key}: not a quantity: {value!r}") from None


def _capacity_problems(spec: Spec, cluster: dict) -> list[str]:
    pool = pool_of(spec, cluster)
    name, pool_name = cluster.get("name", "?"), spec.resources.pool
    where = f"pool {pool_name} of cluster {name}"
    gpu_resource(spec, cluster)  # a GPU request on a pool without GPUs is a usage error
    per_worker = {"gpus": Decimal(spec.resources.gpus), "cpu": parse_quantity(spec.resources.cpu),
                  "memory": parse_quantity(spec.resources.memory)}
    per_node = {"gpus": _capacity(pool, "gpusPerNode", where), "cpu": _capacity(pool, "cpuPerNode", where),
                "memory": _capacity(pool, "memoryPerNode", where)}
    nodes = _capacity(pool, "nodes", where)
    units = {"gpus": "GPUs", "cpu": "CPUs", "memory": "memory"}

    def show(kind: str, amount: Decimal) -> str:
        if kind == "memory":
            return f"{format_quantity(amount, 'memory')} of memory"
        return f"{format_quantity(amount, 'cpu')} {units[kind]}"

    problems = []
    for kind, want in per_worker.items():
        have = per_node[kind]
        if want > 0 and have is not None and want > have:
            have_text = format_quantity(have, "memory" if kind == "memory" else "cpu")
            problems.append(f"{show(kind, want)} per worker but nodes in {where} have {have_text}")
    if problems or nodes is None:
        return problems
    # Whole workers per node, limited by the scarcest resource; total = that × nodes.
    fits = [int(per_node[k] // want) for k, want in per_worker.items() if want > 0 and per_node[k] is not None]
    if not fits:
        return []
    max_workers = min(fits) * int(nodes)
    if spec.workers <= max_workers:
        return []
    gpus = spec.resources.gpus
    if gpus and per_node["gpus"] is not None and spec.workers * gpus > per_node["gpus"] * nodes:
        return [f"{spec.workers} workers × {gpus} GPUs = {spec.workers * gpus} GPUs but {where} has "
                f"{int(per_node['gpus'] * nodes)} ({int(nodes)} nodes × {int(per_node['gpus'])})"]
    return [f"{spec.workers} workers but at most {max_workers} fit {where} "
            f"({min(fits)} per node × {int(nodes)} nodes)"]


def _quota_problems(spec: Spec, cluster: dict, quota: dict) -> list[str]:
    t = totals(spec, cluster)
    # ResourceQuota key -> (what the job needs, quantity kind, what to call it)
    need: dict[str, tuple[Decimal, str, str]] = {"pods": (Decimal(t.pods), "", "pods")}
    for key in ("cpu", "requests.cpu", "limits.cpu"):
        need[key] = (t.cpu, "cpu", "CPUs")
    for key in ("memory", "requests.memory", "limits.memory"):
        need[key] = (t.memory, "memory", "memory")
    hard = quota.get("hard") or {}
    if t.gpu_resource:
        # Kubernetes counts extended resources under requests.X only; limits.X matters when it is alone
        keys = [f"requests.{t.gpu_resource}"] if f"requests.{t.gpu_resource}" in hard else [f"limits.{t.gpu_resource}"]
        for key in keys:
            need[key] = (Decimal(t.gpus), "", "GPUs")
    used = quota.get("used") or {}
    # One problem per resource: GPUs limited by requests.X and limits.X are reported once, by the tighter key.
    worst: dict[str, tuple[Decimal, str]] = {}
    for key in sorted(hard):
        if key not in need or need[key][0] == 0:
            continue
        amount, kind, what = need[key]
        try:
            limit = parse_quantity(hard[key])
            spent = parse_quantity(used.get(key, 0))
        except QuantityError:
            continue  # a quota we cannot read is the apiserver's to enforce
        free = max(limit - spent, Decimal(0))
        if amount > free and (what not in worst or free < worst[what][0]):
            shown = [format_quantity(x, kind) for x in (amount, free, limit, spent)]
            unit = " of memory" if kind == "memory" else f" {what}"
            worst[what] = (free, f"the job needs {shown[0]}{unit} but the namespace quota has {shown[1]} free "
                                 f"({key}: {shown[2]} hard, {shown[3]} used)")
    order = ["GPUs", "CPUs", "memory", "pods"]
    return [worst[w][1] for w in sorted(worst, key=order.index)]


def _warnings(spec: Spec, cluster: dict) -> list[str]:
    pool = pool_of(spec, cluster)
    notes = []
    name = cluster.get("name", "?")
    if pool.get("preemptible") and spec.restart_policy == "Never":
        notes.append(f"pool {spec.resources.pool} of cluster {name} is preemptible: restartPolicy Never becomes "
                     "ExitCode, so a preempted worker is recreated instead of failing the job")
    cost = cluster.get("gpuHourCost")
    gpus = spec.workers * spec.resources.gpus
    if spec.active_deadline_seconds is None and gpus and isinstance(cost, int | float) and cost > 0:
        notes.append(f"no activeDeadlineSeconds: the job costs about {gpus * cost:.2f}/hour on {name} "
                     f"({gpus} GPUs × {cost}) until it ends")
    return notes


def check_fit(spec: Spec, cluster: dict, quota: dict | None = None) -> list[str]:
    """Raise QuotaExceeded if the job cannot fit `cluster` or the quota; else return warnings."""
    problems = _capacity_problems(spec, cluster)
    if problems:
        raise QuotaExceeded("; ".join(problems), hint=_CAPACITY_HINT)
    if quota:
        problems = _quota_problems(spec, cluster, quota)
        if problems:
            raise QuotaExceeded("; ".join(problems), hint=_QUOTA_HINT)
    return _warnings(spec, cluster)
