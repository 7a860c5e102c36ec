"""mlctl clusters: the platform's cluster registry, joined with the cluster policy and free capacity."""

from mlctl.cli import lazy_group

group = lazy_group("clusters", {
    "list": ("mlctl.commands.clusters.list:command",
             "List the clusters: your access and why, free GPUs now, cost per GPU-hour (* marks the default)."),
    "ls": ("mlctl.commands.clusters.list:alias", "Alias of list."),
    "show": ("mlctl.commands.clusters.show:command",
             "Show one cluster's entry: server, pools, cost, your access and free GPUs."),
    "use": ("mlctl.commands.clusters.use:command", "Make a cluster the default for your commands (written to the config file)."),
    "explain": ("mlctl.commands.clusters.explain:command",
                "Explain the cluster policy's decision for you on a cluster, and for a job spec's request."),
}, help="The platform's clusters: access, free GPUs, cost; choose the default; explain the policy.")
