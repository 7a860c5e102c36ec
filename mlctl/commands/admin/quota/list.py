"""mlctl admin quota list: quota requests in every namespace of a cluster."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command
from mlctl.commands.admin.common import access_options
from mlctl.commands.quota.requests import COLUMNS, display


def run(f, phase: str, kubeconfig: str | None, context_template: str) -> None:
    from mlctl.commands.admin.common import kube_api
    from mlctl.kube.errors import kube_errors
    from mlctl.output import print_list
    from mlctl.quota.requests import phase as phase_of

    cluster = f.cluster_name()
    api = kube_api(f, cluster, kubeconfig, context_template)
    with kube_errors("listing quota requests", cluster):
        items = api.list("QuotaRequest")
    if phase != "all":
        items = [i for i in items if phase_of(i).lower() == phase]
    items.sort(key=lambda q: (q["metadata"].get("creationTimestamp") or "", q["metadata"]["name"]))
    print_list(f.io, items, COLUMNS, f.output, raw=display, name=lambda q: f"quotarequest/{q['metadata']['name']}",
               empty=f"No {'' if phase == 'all' else phase + ' '}quota requests on cluster {cluster}.")


@mlctl_command("list")
@click.option("--phase", type=click.Choice(["pending", "approved", "denied", "all"]), default="all",
              show_default=True, help="Only requests in this phase.")
@access_options
@click.pass_obj
def command(f, phase, kubeconfig, context_template):
    """List quota requests in every namespace."""
    run(f, phase, kubeconfig, context_template)
