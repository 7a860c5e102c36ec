"""mlctl admin install: the QuotaRequest CRD, ClusterRoles (mlctl-user, mlctl-quota-admin, mlctl-admin-sync),
their bindings and the mlctl-system namespace, server-side applied on each cluster (or --cluster)."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command
from mlctl.commands.admin.common import access_options


def run(f, dry_run: str, kubeconfig: str | None, context_template: str) -> None:
    from mlctl.admin.desired import describe, key_of
    from mlctl.admin.objects import INSTALL_FIELD_MANAGER, Settings, install_objects
    from mlctl.commands.admin.common import kube_api, selected_clusters
    from mlctl.kube.errors import kube_errors
    from mlctl.output import to_json, to_yaml

    for cluster in selected_clusters(f):
        objs = install_objects(Settings.from_platform(f.platform.doc, cluster))
        if dry_run == "client":
            if f.output == "json":
                f.io.out(to_json(objs))
            else:
                f.io.stdout.write("---\n".join(to_yaml(o) for o in objs))
            continue
        api = kube_api(f, cluster["name"], kubeconfig, context_template)
        for obj in objs:
            what = describe(key_of(obj))
            with kube_errors(f"applying {what}", cluster["name"]):
                api.apply(obj, INSTALL_FIELD_MANAGER, force=True, dry_run=dry_run == "server")
            suffix = " (server dry run)" if dry_run == "server" else ""
            f.io.note(f"{cluster['name']}: {what} applied{suffix}")


@mlctl_command("install")
@click.option("--dry-run", type=click.Choice(["none", "client", "server"]), default="none", show_default=True,
              help="client: print the objects; server: let the API servers check them without saving.")
@access_options
@click.pass_obj
def command(f, dry_run, kubeconfig, context_template):
    """Install the QuotaRequest CRD, mlctl's ClusterRoles and bindings on each cluster."""
    run(f, dry_run, kubeconfig, context_template)
