"""The one table of Kubernetes kinds mlctl reads or writes: group, version, plural, namespaced, and paths."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote


class Kind(NamedTuple):
    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def short(self) -> str:
        return self.kind.lower()

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if sub:
            base += f"/{sub}"
        return base


_TABLE = (
    Kind("Namespace", "", "v1", "namespaces", False),
    Kind("Node", "", "v1", "nodes", False),
    Kind("Pod", "", "v1", "pods"),
    Kind("Service", "", "v1", "services"),
    Kind("Endpoints", "", "v1", "endpoints"),
    Kind("Secret", "", "v1", "secrets"),
    Kind("ConfigMap", "", "v1", "configmaps"),
    Kind("ServiceAccount", "", "v1", "serviceaccounts"),
    Kind("Event", "", "v1", "events"),
    Kind("ResourceQuota", "", "v1", "resourcequotas"),
    Kind("LimitRange", "", "v1", "limitranges"),
    Kind("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims"),
    Kind("PersistentVolume", "", "v1", "persistentvolumes", False),
    Kind("StorageClass", "storage.k8s.io", "v1", "storageclasses", False),
    Kind("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices"),
    Kind("Deployment", "apps", "v1", "deployments"),
    Kind("StatefulSet", "apps", "v1", "statefulsets"),
    Kind("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers"),
    Kind("RoleBinding", "rbac.authorization.k8s.io", "v1", "rolebindings"),
    Kind("ClusterRole", "rbac.authorization.k8s.io", "v1", "clusterroles", False),
    Kind("ClusterRoleBinding", "rbac.authorization.k8s.io", "v1", "clusterrolebindings", False),
    Kind("CustomResourceDefinition", "apiextensions.k8s.io", "v1", "customresourcedefinitions", False),
    Kind("ValidatingWebhookConfiguration", "admissionregistration.k8s.io", "v1",
         "validatingwebhookconfigurations", False),
    Kind("MutatingWebhookConfiguration", "admissionregistration.k8s.io", "v1",
         "mutatingwebhookconfigurations", False),
    Kind("Lease", "coordination.k8s.io", "v1", "leases"),
    Kind("QuotaRequest", "mlctl.io", "v1alpha1", "quotarequests"),
    Kind("TFJob", "kubeflow.org", "v1", "tfjobs"),
    Kind("PyTorchJob", "kubeflow.org", "v1", "pytorchjobs"),
    Kind("Notebook", "kubeflow.org", "v1", "notebooks"),
    Kind("InferenceService", "serving.kserve.io", "v1beta1", "inferenceservices"),
    Kind("ClusterServingRuntime", "serving.kserve.io", "v1alpha1", "clusterservingruntimes", False),
    Kind("Stage", "kwok.x-k8s.io", "v1alpha1", "stages", False),
    Kind("Logs", "kwok.x-k8s.io", "v1alpha1", "logs"),
    Kind("ResourceUsage", "kwok.x-k8s.io", "v1alpha1", "resourceusages"),
    Kind("APIService", "apiregistration.k8s.io", "v1", "apiservices", False),
    Kind("PodMetrics", "metrics.k8s.io", "v1beta1", "pods"),
    Kind("NodeMetrics", "metrics.k8s.io", "v1beta1", "nodes", False),
)
KINDS: dict[str, Kind] = {k.kind: k for k in _TABLE}


def kind(name_or_obj: str | dict) -> Kind:
    """The Kind of a kind name ("TFJob") or of an object (its "kind" field)."""
    name = name_or_obj if isinstance(name_or_obj, str) else name_or_obj.get("kind", "")
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"kind {name!r} is not in mlctl's kind table (mlctl/kube/kinds.py)") from None
