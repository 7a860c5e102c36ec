"""Raw Kubernetes REST for admin work: whole-kind LISTs, creates, server-side apply, JSON patches, deletes,
status patches and the Lease, over one kubernetes ApiClient per cluster. Every request is counted (by verb
and kind), which `admin sync -v` and bench/admin_sync.py report.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from urllib.parse import quote

from mlctl.admin.lease import Conflict


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

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


KINDS: dict[str, Kind] = {
    "Namespace": Kind("", "v1", "namespaces", False),
    "ResourceQuota": Kind("", "v1", "resourcequotas", True),
    "LimitRange": Kind("", "v1", "limitranges", True),
    "Pod": Kind("", "v1", "pods", True),
    "PersistentVolumeClaim": Kind("", "v1", "persistentvolumeclaims", True),
    "RoleBinding": Kind("rbac.authorization.k8s.io", "v1", "rolebindings", True),
    "ClusterRole": Kind("rbac.authorization.k8s.io", "v1", "clusterroles", False),
    "ClusterRoleBinding": Kind("rbac.authorization.k8s.io", "v1", "clusterrolebindings", False),
    "CustomResourceDefinition": Kind("apiextensions.k8s.io", "v1", "customresourcedefinitions", False),
    "QuotaRequest": Kind("mlctl.io", "v1alpha1", "quotarequests", True),
    "Lease": Kind("coordination.k8s.io", "v1", "leases", True),
    "TFJob": Kind("kubeflow.org", "v1", "tfjobs", True),
    "PyTorchJob": Kind("kubeflow.org", "v1", "pytorchjobs", True),
    "Notebook": Kind("kubeflow.org", "v1", "notebooks", True),
    "InferenceService": Kind("serving.kserve.io", "v1beta1", "inferenceservices", True),
}


class KubeApi:
    """One cluster's API, as whoever the ApiClient authenticates."""

    def __init__(self, api_client, cluster: str, timeout: float = 60):
        self.api = api_client
        self.cluster = cluster
        cfg = getattr(api_client, "configuration", None)
        prefixes = getattr(cfg, "api_key_prefix", None)
        if isinstance(prefixes, dict) and "authorization" in prefixes and "BearerToken" not in prefixes:
            # kubernetes>=36 looks the prefix up under 'BearerToken'; without it the token goes out without
            # "Bearer " and the API server treats the request as anonymous (reported for mlctl/kube/client.py)
            prefixes["BearerToken"] = prefixes["authorization"]
        self.timeout = timeout
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def _call(self, method: str, path: str, kind: str, query: list | None = None, body=None,
              content_type: str | None = None):
        with self._lock:
            self.counts[(method, kind)] += 1
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        resp = self.api.call_api(path, "GET" if method == "LIST" else method, query_params=query or [], header_params=headers, body=body,
                                 auth_settings=["BearerToken"], _preload_content=False,
                                 _return_http_data_only=True, _request_timeout=self.timeout)
        data = resp.data
        return json.loads(data) if data else {}

    @property
    def requests(self) -> dict[str, int]:
        """{"LIST ResourceQuota": 1, "PATCH ResourceQuota": 10, ...} (GETs of lists count as LIST)."""
        return {f"{m} {k}": n for (m, k), n in sorted(self.counts.items())}

    def list(self, kind: str, *, namespace: str | None = None, selector: str | None = None) -> list[dict]:
        """All objects of kind in ONE request (no paging: the apiserver serves it from its watch cache)."""
        query = [("labelSelector", selector)] if selector else []
        data = self._call("LIST", KINDS[kind].path(namespace), kind, query)
        items = data.get("items") or []
        api_version = KINDS[kind].api_version
        for item in items:  # list items come without apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def exists_any(self, kind: str, namespace: str) -> bool:
        """Whether namespace holds at least one object of kind (limit=1; a kind not installed holds none)."""
        from kubernetes.client.exceptions import ApiException

        try:
            data = self._call("LIST", KINDS[kind].path(namespace), kind, [("limit", 1)])
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return bool(data.get("items"))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._call("GET", KINDS[kind].path(namespace, name), kind)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def apply(self, obj: dict, manager: str, *, force: bool = True, dry_run: bool = False) -> dict:
        """Server-side apply (PATCH application/apply-patch+yaml; JSON is YAML)."""
        kind = obj["kind"]
        meta = obj["metadata"]
        query = [("fieldManager", manager), ("force", "true" if force else "false")]
        if dry_run:
            query.append(("dryRun", "All"))
        return self._call("PATCH", KINDS[kind].path(meta.get("namespace"), meta["name"]), kind, query,
                          body=obj, content_type="application/apply-patch+yaml")

    def create(self, obj: dict, *, dry_run: bool = False, strict: bool = True, manager: str | None = None) -> dict:
        kind = obj["kind"]
        query = [("fieldValidation", "Strict")] if strict else []
        if manager:
            query.append(("fieldManager", manager))
        if dry_run:
            query.append(("dryRun", "All"))
        return self._call("POST", KINDS[kind].path(obj["metadata"].get("namespace")), kind, query, body=obj)

    def replace(self, obj: dict) -> dict:
        meta = obj["metadata"]
        return self._call("PUT", KINDS[obj["kind"]].path(meta.get("namespace"), meta["name"]), obj["kind"],
                          body=obj)

    def patch_json(self, kind: str, name: str, namespace: str | None, ops: list[dict]) -> dict:
        """A JSON patch (RFC 6902) of the object itself."""
        return self._call("PATCH", KINDS[kind].path(namespace, name), kind, body=ops,
                          content_type="application/json-patch+json")

    def patch_status(self, kind: str, name: str, namespace: str, patch: dict, *, dry_run: bool = False) -> dict:
        query = [("dryRun", "All")] if dry_run else []
        return self._call("PATCH", KINDS[kind].path(namespace, name, "status"), kind, query, body=patch,
                          content_type="application/merge-patch+json")

    def delete(self, kind: str, name: str, namespace: str | None = None, *, dry_run: bool = False) -> None:
        query = [("dryRun", "All")] if dry_run else []
        self._call("DELETE", KINDS[kind].path(namespace, name), kind, query,
                   body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})


class KubeLeaseStore:
    """The LeaseStore of lease.LeaseLock over KubeApi: 409 becomes Conflict."""

    def __init__(self, api: KubeApi, name: str, namespace: str):
        self.api, self.name, self.namespace = api, name, namespace

    def _conflicts(self, fn, *args):
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args)
        except ApiException as e:
            if e.status == 409:
                raise Conflict(str(e.reason)) from e
            raise

    def get(self) -> dict | None:
        return self.api.get("Lease", self.name, self.namespace)

    def create(self, lease: dict) -> dict:
        return self._conflicts(lambda: self.api.create(lease, strict=False))

    def replace(self, lease: dict) -> dict:
        return self._conflicts(lambda: self.api.replace(lease))


def admin_api_client(kubeconfig: str, cluster: str, template: str = "{cluster}", pool_size: int = 16):
    """An ApiClient from a kubeconfig for cluster: context template.format(cluster=...), or else the one
    context whose name ends in -<cluster> (sandbox-local, mlctl-gcp)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    from mlctl.errors import NotFound, UsageError

    try:
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
    except (ConfigException, OSError) as e:
        raise UsageError(f"cannot use kubeconfig {kubeconfig}: {str(e).splitlines()[0]}",
                         hint="pass --kubeconfig (or MLCTL_ADMIN_KUBECONFIG) naming a readable kubeconfig") from e
    names = [c["name"] for c in contexts]
    wanted = template.format(cluster=cluster)
    if wanted not in names:
        suffixed = [n for n in names if n.endswith(f"-{cluster}")]
        if len(suffixed) != 1:
            raise NotFound(f"kubeconfig {kubeconfig} has no context {wanted!r} for cluster {cluster}",
                           hint="pass --context-template, e.g. 'admin@{cluster}'")
        wanted = suffixed[0]
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, context=wanted, client_configuration=configuration,
                                persist_config=False)
    except (ConfigException, OSError) as e:
        raise UsageError(f"kubeconfig {kubeconfig}, context {wanted}: {str(e).splitlines()[0]}") from e
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


def user_api_client(f, cluster: str, pool_size: int = 16):
    """The logged-in session's ApiClient for cluster, with a connection pool as large as the thread pool."""
    from kubernetes.client import rest

    from mlctl.kube.client import api_client

    api = api_client(f, cluster)
    api.configuration.connection_pool_maxsize = pool_size
    api.rest_client = rest.RESTClientObject(api.configuration)
    return api
