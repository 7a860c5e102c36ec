"""Who may do what on the sandbox's clusters: platform admins (the Keycloak group and the admin client) are
cluster-admin, and what `mlctl admin install` applies (the QuotaRequest CRD, mlctl's ClusterRoles and
bindings) is installed on every cluster."""

from __future__ import annotations

from mlctl.sandbox.component import Component, Context

ADMINS_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "mlctl-platform-admins", "labels": {"app.kubernetes.io/managed-by": "mlctl-sandbox"}},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
    "subjects": [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "oidc:platform-admins"},
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "oidc:service-account-mlctl-admin"},
    ],
}


class Access(Component):
    name = "access"

    def manifests(self, ctx: Context, cluster: str) -> list[dict]:
        return [ADMINS_BINDING]

    def start(self, ctx: Context) -> dict:
        import yaml

        from mlctl.admin.objects import Settings, install
        from mlctl.sandbox import core

        doc = yaml.safe_load((ctx.root / "platform.yaml").read_text())
        for cluster in core.CLUSTERS:
            entry = next(c for c in doc["clusters"] if c["name"] == cluster)
            install(ctx.kube(cluster), Settings.from_platform(doc, entry))
        return {}
