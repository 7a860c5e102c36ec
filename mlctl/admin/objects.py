"""The Kubernetes objects of tenancy, built as plain dicts (pure): per-user namespace objects, and what
`mlctl admin install` puts in every cluster (the QuotaRequest CRD, ClusterRoles, bindings, mlctl-system).

Settings come from the platform document (all optional):

    quota:
      default: {requests.cpu: "8", requests.memory: 32Gi, requests.nvidia.com/gpu: "1", pods: "20"}
      limitRange: {defaultRequest: {cpu: 100m, memory: 256Mi}, default: {cpu: "1", memory: 1Gi}}
    tenancy:
      userGroup: ml-users                        # only its members get a namespace (default: every user)
      adminGroups: [platform-admins]             # may approve/deny quota requests
      syncUser: service-account-mlctl-admin      # the Keycloak user `admin sync` runs as
      usernamePrefix: "oidc:"                    # the API servers' OIDC username/group prefixes
      groupPrefix: "oidc:"
    clusters:
    - name: gcp
      quota: {default: {...}}                    # a cluster may replace the default
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources

from mlctl.quota import (
    BUILTIN_DEFAULT,
    QUOTA_NAME,
    SOURCES_ANNOTATION,
    QuotaError,
    parse_resources,
)
from mlctl.tenancy import NAMESPACE_PREFIX, OWNER_LABEL, user_namespace

FIELD_MANAGER = "mlctl-admin-sync"
INSTALL_FIELD_MANAGER = "mlctl-admin-install"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "mlctl"
SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
TENANT_LABEL = "mlctl.io/tenant"
OWNER_ANNOTATION = "mlctl.io/owner-username"
SYSTEM_NAMESPACE = "mlctl-system"
LEASE_NAME = "mlctl-admin-sync"
ROLEBINDING_NAME = "mlctl-owner"
LIMITRANGE_NAME = "mlctl-limits"
USER_ROLE = "mlctl-user"
QUOTA_ADMIN_ROLE = "mlctl-quota-admin"
SYNC_ROLE = "mlctl-admin-sync"
CRD_GROUP, CRD_VERSION, CRD_PLURAL = "mlctl.io", "v1alpha1", "quotarequests"

BUILTIN_LIMIT_RANGE = {
    "defaultRequest": {"cpu": "100m", "memory": "256Mi"},
    "default": {"cpu": "1", "memory": "1Gi"},
}


@dataclass(frozen=True)
class Settings:
    default: dict[str, Decimal]
    limit_range: dict = field(default_factory=lambda: dict(BUILTIN_LIMIT_RANGE))
    user_group: str | None = None
    admin_groups: tuple[str, ...] = ("platform-admins",)
    sync_user: str = "service-account-mlctl-admin"
    username_prefix: str = "oidc:"
    group_prefix: str = "oidc:"
    cluster: str | None = None  # the cluster these settings are for (group grants may name clusters)

    @classmethod
    def from_platform(cls, doc: dict, cluster: dict | None = None) -> Settings:
        from mlctl.errors import UsageError

        quota = doc.get("quota") if isinstance(doc.get("quota"), dict) else {}
        tenancy = doc.get("tenancy") if isinstance(doc.get("tenancy"), dict) else {}
        cluster_quota = (cluster or {}).get("quota") if isinstance((cluster or {}).get("quota"), dict) else {}
        raw = cluster_quota.get("default") or quota.get("default") or BUILTIN_DEFAULT
        where = f"cluster {cluster['name']} quota.default" if cluster_quota.get("default") else "quota.default"
        if not isinstance(raw, dict):
            raise UsageError(f"platform document: {where} must be a mapping of ResourceQuota keys to quantities")
        try:
            default = parse_resources({str(k): v for k, v in raw.items()}, f"platform document {where}")
        except QuotaError as e:
            raise UsageError(str(e), hint="fix the platform document") from e
        admin_groups = tenancy.get("adminGroups") or ["platform-admins"]
        return cls(
            default=default,
            limit_range=cluster_quota.get("limitRange") or quota.get("limitRange") or dict(BUILTIN_LIMIT_RANGE),
            user_group=tenancy.get("userGroup"),
            admin_groups=tuple(admin_groups if isinstance(admin_groups, list) else [admin_groups]),
            sync_user=tenancy.get("syncUser") or "service-account-mlctl-admin",
            username_prefix=tenancy.get("usernamePrefix", "oidc:"),
            group_prefix=tenancy.get("groupPrefix", "oidc:"),
            cluster=(cluster or {}).get("name"),
        )


def owner_label_value(user: str) -> str:
    """A label value for a user name (label values cannot hold '@' and are at most 63 characters)."""
    return user_namespace(user)[len(NAMESPACE_PREFIX):]


def _meta(name: str, namespace: str | None, user: str, extra_labels: dict | None = None,
          annotations: dict | None = None) -> dict:
    meta: dict = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {MANAGED_BY_LABEL: MANAGED_BY, OWNER_LABEL: owner_label_value(user), **(extra_labels or {})}
    meta["annotations"] = {OWNER_ANNOTATION: user, **(annotations or {})}
    return meta


def namespace(user: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta(user_namespace(user), None, user, {TENANT_LABEL: "true"})}


def owner_binding(user: str, settings: Settings) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": _meta(ROLEBINDING_NAME, user_namespace(user), user),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": f"{settings.username_prefix}{user}"}],
    }


def resource_quota(user: str, hard: dict[str, str], sources: str) -> dict:
    """hard: Effective.hard_text(); sources: Effective.annotation()."""
    return {
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": _meta(QUOTA_NAME, user_namespace(user), user, annotations={SOURCES_ANNOTATION: sources}),
        "spec": {"hard": dict(hard)},
    }


def limit_range(user: str, settings: Settings) -> dict:
    item = {"type": "Container"}
    for key in ("default", "defaultRequest", "max", "min", "maxLimitRequestRatio"):
        if settings.limit_range.get(key):
            item[key] = {str(k): str(v) for k, v in settings.limit_range[key].items()}
    return {"apiVersion": "v1", "kind": "LimitRange",
            "metadata": _meta(LIMITRANGE_NAME, user_namespace(user), user),
            "spec": {"limits": [item]}}


# ---- what `mlctl admin install` applies -------------------------------------------------------------------

def quota_request_crd() -> dict:
    import yaml

    text = resources.files("mlctl").joinpath("data/crds/quotarequest.yaml").read_text()
    return yaml.safe_load(text)


def _rule(groups: list[str], res: list[str], verbs: list[str]) -> dict:
    return {"apiGroups": groups, "resources": res, "verbs": verbs}


ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
READ = ["get", "list", "watch"]


def user_cluster_role() -> dict:
    """What a namespace owner may do there (bound per namespace by the mlctl-owner RoleBinding)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": USER_ROLE, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "rules": [
            _rule([""], ["pods", "services", "configmaps", "secrets", "persistentvolumeclaims"], ALL_VERBS),
            _rule([""], ["pods/log", "events", "pods/status"], READ),
            _rule(["apps"], ["statefulsets"], READ),  # what a Notebook runs as
            _rule(["events.k8s.io"], ["events"], READ),
            _rule(["kubeflow.org"], ["tfjobs", "pytorchjobs", "notebooks"], ALL_VERBS),
            _rule(["kubeflow.org"], ["tfjobs/status", "pytorchjobs/status", "notebooks/status"], READ),
            _rule(["serving.kserve.io"], ["inferenceservices"], ALL_VERBS),
            _rule(["serving.kserve.io"], ["inferenceservices/status"], READ),
            # what KServe makes for an InferenceService, to show and explain it
            _rule(["apps"], ["deployments", "replicasets"], READ),
            _rule(["autoscaling"], ["horizontalpodautoscalers"], READ),
            # requests, never their status: approving is for admins (mlctl-quota-admin)
            _rule([CRD_GROUP], [CRD_PLURAL], ["create", "get", "list", "watch", "delete"]),
            _rule([""], ["resourcequotas", "limitranges"], READ),
        ],
    }


def quota_admin_cluster_role() -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": QUOTA_ADMIN_ROLE, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "rules": [
            _rule([CRD_GROUP], [CRD_PLURAL], READ + ["delete"]),
            _rule([CRD_GROUP], [f"{CRD_PLURAL}/status"], ["get", "update", "patch"]),
            _rule([""], ["resourcequotas", "namespaces"], READ),
        ],
    }


def sync_cluster_role() -> dict:
    """What `admin sync` needs; binding mlctl-user needs `bind` on it (or holding all its rights)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": SYNC_ROLE, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "rules": [
            _rule([""], ["namespaces", "resourcequotas", "limitranges"], ALL_VERBS),
            _rule(["rbac.authorization.k8s.io"], ["rolebindings"], ALL_VERBS),
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"],
             "resourceNames": [USER_ROLE]},
            _rule([CRD_GROUP], [CRD_PLURAL], READ),
            _rule(["coordination.k8s.io"], ["leases"], ALL_VERBS),
            # --prune checks that a namespace holds no workloads or volumes before deleting it
            _rule(["", ], ["pods", "persistentvolumeclaims"], ["list"]),
            _rule(["kubeflow.org"], ["tfjobs", "pytorchjobs", "notebooks"], ["list"]),
            _rule(["serving.kserve.io"], ["inferenceservices"], ["list"]),
        ],
    }


def install_objects(settings: Settings) -> list[dict]:
    """Everything `mlctl admin install` applies, in order (the CRD first, the namespace before the lease)."""
    rbac = "rbac.authorization.k8s.io"
    labels = {MANAGED_BY_LABEL: MANAGED_BY}
    return [
        quota_request_crd(),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE, "labels": labels}},
        user_cluster_role(),
        quota_admin_cluster_role(),
        sync_cluster_role(),
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": QUOTA_ADMIN_ROLE, "labels": labels},
         "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": QUOTA_ADMIN_ROLE},
         "subjects": [{"apiGroup": rbac, "kind": "Group", "name": f"{settings.group_prefix}{g}"}
                      for g in settings.admin_groups]},
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": SYNC_ROLE, "labels": labels},
         "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": SYNC_ROLE},
         "subjects": [{"apiGroup": rbac, "kind": "User", "name": f"{settings.username_prefix}{settings.sync_user}"}]},
    ]


def install(api, settings: Settings) -> None:
    """Server-side apply install_objects on one cluster (api: a Kube) as mlctl-admin-install, for
    the sandbox and the bench. `mlctl admin install` applies them one at a time itself, to report each."""
    for obj in install_objects(settings):
        api.apply(obj, INSTALL_FIELD_MANAGER, force=True)
