"""mlctl quota request: ask the admins for more quota in your namespace (a QuotaRequest object)."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, resources: dict, reason: str, dry_run: str) -> None:
    from mlctl.commands.quota.common import target_api
    from mlctl.kube.errors import kube_errors
    from mlctl.output import print_object
    from mlctl.quota.requests import build, summary

    t, api = target_api(f)
    qr = build(t.namespace, resources, reason, t.user)
    if dry_run == "client":
        print_object(f.io, qr, f.output if f.output in ("json", "yaml") else "yaml")
        return
    with kube_errors(f"creating a quota request in {t.namespace}", t.cluster["name"]):
        created = api.create(qr, dry_run=dry_run == "server")
    suffix = " (server dry run)" if dry_run == "server" else ""
    f.io.note(f"quotarequest/{created['metadata'].get('name', 'qr-?')} created{suffix}: {summary(created)} "
              f"on cluster {t.cluster['name']}; an admin will approve or deny it ('mlctl quota requests')")
    print_object(f.io, created, f.output, name=f"quotarequest/{created['metadata'].get('name')}",
                 render=lambda io, obj: io.out(f"quotarequest/{obj['metadata'].get('name')}"))


@mlctl_command("request")
@click.option("--gpu", "gpu", metavar="N", help="Extra GPUs (nvidia.com/gpu).")
@click.option("--cpu", metavar="CORES", help="Extra CPU, e.g. 16 or 500m.")
@click.option("--memory", metavar="SIZE", help="Extra memory, e.g. 64Gi.")
@click.option("--pods", metavar="N", help="Extra pods.")
@click.option("--storage", metavar="SIZE", help="Extra volume storage, e.g. 500Gi.")
@click.option("--reason", required=True, help="Why you need it (the admins read this).")
@click.option("--dry-run", type=click.Choice(["none", "client", "server"]), default="none", show_default=True)
@click.pass_obj
def command(f, gpu, cpu, memory, pods, storage, reason, dry_run):
    """Ask the admins for more quota (GPUs, CPU, memory, pods)."""
    asked = {"nvidia.com/gpu": gpu, "cpu": cpu, "memory": memory, "pods": pods, "storage": storage}
    run(f, {k: v for k, v in asked.items() if v is not None}, reason, dry_run)
