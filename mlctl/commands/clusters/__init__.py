"""mlctl clusters: the platform's cluster registry."""

from mlctl.cli import lazy_group

group = lazy_group("clusters", {
    "list": ("mlctl.commands.clusters.list:command", "List the clusters and node pools of the platform."),
    "ls": ("mlctl.commands.clusters.list:alias", "Alias of list."),
    "show": ("mlctl.commands.clusters.show:command", "Show one cluster's entry: server, pools, cost."),
}, help="List the platform's clusters and their node pools.")
