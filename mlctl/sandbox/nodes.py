"""The sandbox's clusters as data: node pools, the kwok nodes that make them up, and their platform entries.

GPU resources follow the NVIDIA device plugin: full GPUs are `nvidia.com/gpu`; the shared virtual GPUs of the
`vgpu` pool are time-sliced replicas that the plugin publishes under the renamed resource
`nvidia.com/gpu.shared` (its `renameByDefault` option), so a notebook asking for a slice can never be
mistaken for, or counted against the quota of, a full GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

POOL_LABEL = "mlctl.io/pool"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
PREEMPTIBLE_TAINT = {"key": "cloud.google.com/gke-preemptible", "value": "true", "effect": "NoSchedule"}


@dataclass(frozen=True)
class Pool:
    name: str
    nodes: int
    cpu: int
    memory: str
    gpu_resource: str | None = None
    gpus: int = 0
    gpu_model: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()
    preemptible: bool = False
    max_pods: int = 110

    def tolerations(self) -> list[dict[str, str]]:
        """What a pod needs to land on this pool's nodes."""
        out = []
        for taint in self.taints:
            if taint["key"] == GPU_TAINT["key"]:
                out.append({"key": taint["key"], "operator": "Exists", "effect": taint["effect"]})
            else:
                out.append({"key": taint["key"], "operator": "Equal", "value": taint["value"],
                            "effect": taint["effect"]})
        return out

    def platform_entry(self) -> dict:
        return {
            "nodeSelector": {POOL_LABEL: self.name},
            "tolerations": self.tolerations(),
            "gpuResource": self.gpu_resource,
            "gpuModel": self.gpu_model,
            "gpusPerNode": self.gpus,
            "cpuPerNode": self.cpu,
            "memoryPerNode": self.memory,
            "nodes": self.nodes,
            "preemptible": self.preemptible,
        }


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    provider: str
    gpu_hour_cost: float
    pools: tuple[Pool, ...]
    node_labels: dict[str, str] = field(default_factory=dict)

    @property
    def node_count(self) -> int:
        return sum(p.nodes for p in self.pools)


CLUSTERS: dict[str, ClusterSpec] = {
    "local": ClusterSpec(
        name="local",
        provider="on-prem",
        gpu_hour_cost=0.0,
        node_labels={"topology.kubernetes.io/region": "on-prem", "topology.kubernetes.io/zone": "on-prem-a"},
        pools=(
            Pool(
                name="vgpu", nodes=20, cpu=16, memory="128Gi",
                gpu_resource="nvidia.com/gpu.shared", gpus=4, gpu_model="NVIDIA-A10-SHARED",
                labels={"nvidia.com/gpu.product": "NVIDIA-A10-SHARED", "nvidia.com/gpu.count": "1",
                        "nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.sharing-strategy": "time-slicing",
                        "mlctl.io/gpu-sharing": "shared"},
                taints=(GPU_TAINT,),
            ),
            Pool(
                name="gpu", nodes=10, cpu=32, memory="256Gi",
                gpu_resource="nvidia.com/gpu", gpus=4, gpu_model="NVIDIA-A100-SXM4-40GB",
                labels={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB", "nvidia.com/gpu.count": "4",
                        "nvidia.com/gpu.memory": "40960"},
                taints=(GPU_TAINT,),
            ),
            Pool(name="cpu", nodes=40, cpu=64, memory="256Gi"),
        ),
    ),
    "gcp": ClusterSpec(
        name="gcp",
        provider="gcp",
        gpu_hour_cost=2.48,
        node_labels={"topology.kubernetes.io/region": "europe-west4",
                     "topology.kubernetes.io/zone": "europe-west4-a"},
        pools=(
            Pool(
                name="gpu", nodes=128, cpu=96, memory="624Gi",
                gpu_resource="nvidia.com/gpu", gpus=8, gpu_model="Tesla-V100-SXM2-16GB",
                labels={"nvidia.com/gpu.product": "Tesla-V100-SXM2-16GB", "nvidia.com/gpu.count": "8",
                        "cloud.google.com/gke-accelerator": "nvidia-tesla-v100",
                        "cloud.google.com/gke-nodepool": "gpu",
                        "cloud.google.com/gke-preemptible": "true"},
                taints=(GPU_TAINT, PREEMPTIBLE_TAINT),
                preemptible=True,
            ),
        ),
    ),
}


def node_manifests(cluster: ClusterSpec) -> Iterator[dict]:
    """Every kwok node of cluster, with capacity, allocatable, labels and taints set at creation."""
    for pool in cluster.pools:
        width = len(str(pool.nodes - 1))
        for i in range(pool.nodes):
            name = f"{cluster.name}-{pool.name}-{i:0{width}d}"
            resources = {"cpu": str(pool.cpu), "memory": pool.memory, "pods": str(pool.max_pods),
                         "ephemeral-storage": "500Gi"}
            if pool.gpu_resource:
                resources[pool.gpu_resource] = str(pool.gpus)
            yield {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE,
                                    "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        **cluster.node_labels,
                        **pool.labels,
                        POOL_LABEL: pool.name,
                        "mlctl.io/cluster": cluster.name,
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "node.kubernetes.io/instance-type": f"sandbox-{pool.name}",
                        "type": "kwok",
                    },
                },
                "spec": {"taints": [dict(t) for t in pool.taints]},
                "status": {"capacity": dict(resources), "allocatable": dict(resources)},
            }


def create_nodes(kube, cluster: ClusterSpec, parallelism: int = 16) -> int:
    """Create the nodes of cluster that do not exist yet (kube: its admin Kube); return how many."""
    existing = {n["metadata"]["name"] for n in kube.list("Node", selector=POOL_LABEL)}
    missing = [m for m in node_manifests(cluster) if m["metadata"]["name"] not in existing]

    def create(manifest: dict) -> int:
        try:
            kube.create(manifest, strict=False)
        except Exception as exc:
            if getattr(exc, "status", None) == 409:  # created by a concurrent `up`
                return 0
            raise
        return 1

    with ThreadPoolExecutor(parallelism) as pool:
        return sum(pool.map(create, missing))


def is_ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in node.get("status", {}).get("conditions", []))


def ready_nodes(kube) -> int:
    return sum(1 for n in kube.list("Node", selector=POOL_LABEL) if is_ready(n))


def platform_cluster(cluster: ClusterSpec) -> dict:
    """The part of a platform document's cluster entry that the node pools decide."""
    return {
        "audience": cluster.name,
        "provider": cluster.provider,
        "gpuHourCost": cluster.gpu_hour_cost,
        "pools": {p.name: p.platform_entry() for p in cluster.pools},
    }
