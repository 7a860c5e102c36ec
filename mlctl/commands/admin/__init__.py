"""mlctl admin: platform administration (tenancy sync from Keycloak, install, quota requests)."""

from mlctl.cli import lazy_group

group = lazy_group("admin", {
    "sync": ("mlctl.commands.admin.sync:command",
             "Make every cluster's namespaces, owner bindings and quotas match Keycloak."),
    "install": ("mlctl.commands.admin.install:command",
                "Install the QuotaRequest CRD, mlctl's ClusterRoles and bindings on each cluster."),
    "quota": ("mlctl.commands.admin.quota:group", "List, approve and deny users' quota requests."),
}, help="Platform administration: tenancy sync from Keycloak, install, quota requests.")
