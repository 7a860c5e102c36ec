"""Free capacity of a cluster's node pools now: each node's allocatable minus the requests of the pods bound
to it (as the scheduler counts), read with the caller's own credentials.

Two LISTs: the nodes, and the pods of every namespace that are not finished. A user whom RBAC does not let
list either gets None ("unknown"): mlctl never guesses capacity it cannot see.
"""

from __future__ import annotations

from decimal import Decimal

from mlctl.jobs.quantity import QuantityError, parse_quantity

ACTIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"


class PoolFree:
    """What is free on each schedulable, ready node of one pool: [(gpus, cpu, memory), ...]. (A plain class:
    every submission loads this module, see jobs/spec.py.)"""

    __slots__ = ("pool", "gpu_resource", "nodes")

    def __init__(self, pool: str, gpu_resource: str | None, nodes: list[tuple[Decimal, Decimal, Decimal]] | None = None):
        self.pool = pool
        self.gpu_resource = gpu_resource
        self.nodes = [] if nodes is None else nodes

    @property
    def free_gpus(self) -> int:
        return int(sum(n[0] for n in self.nodes))

    def slots(self, gpus: int, cpu: Decimal, memory: Decimal) -> int:
        """How many workers of that size fit the free room now (whole workers per node)."""
        total = 0
        for free_gpu, free_cpu, free_mem in self.nodes:
            fits = [int(have // want) for have, want in ((free_gpu, Decimal(gpus)), (free_cpu, cpu),
                                                          (free_mem, memory)) if want > 0]
            total += max(0, min(fits)) if fits else 0
        return total


def _q(value) -> Decimal:
    try:
        return parse_quantity(value if value is not None else 0)
    except QuantityError:
        return Decimal(0)


def _matches(labels: dict, selector: dict) -> bool:
    return bool(selector) and all(labels.get(str(k)) == str(v) for k, v in selector.items())


def _ready(node: dict) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _requests(pod: dict) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        for key, value in ((container.get("resources") or {}).get("requests") or {}).items():
            out[key] = out.get(key, Decimal(0)) + _q(value)
    return out


def free_by_pool(kube, cluster: dict) -> dict[str, PoolFree] | None:
    """{pool name: PoolFree} for cluster (its platform entry), or None when the caller may not list nodes or
    pods there."""
    from mlctl.errors import AuthError, Forbidden

    try:
        nodes = kube.list("Node", what="listing nodes")
        pods = kube.list("Pod", field_selector=ACTIVE_PODS, what="listing pods")
    except (Forbidden, AuthError):
        return None
    used: dict[str, dict[str, Decimal]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            bucket = used.setdefault(node, {})
            for key, value in _requests(pod).items():
                bucket[key] = bucket.get(key, Decimal(0)) + value
    out: dict[str, PoolFree] = {}
    for name, pool in sorted((cluster.get("pools") or {}).items()):
        if not isinstance(pool, dict):
            continue
        gpu = pool.get("gpuResource")
        free = PoolFree(name, gpu)
        for node in nodes:
            meta = node.get("metadata") or {}
            if not _ready(node) or not _matches(meta.get("labels") or {}, pool.get("nodeSelector") or {}):
                continue
            alloc = (node.get("status") or {}).get("allocatable") or {}
            taken = used.get(meta.get("name"), {})
            free.nodes.append(tuple(max(Decimal(0), _q(alloc.get(k)) - taken.get(k, Decimal(0)))
                                    for k in (gpu or "-", "cpu", "memory")))
        out[name] = free
    return out
