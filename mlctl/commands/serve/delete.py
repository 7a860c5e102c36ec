"""mlctl serve delete NAME...: delete inference services (asks on a terminal, needs --yes otherwise).
KServe's Deployment, Service and HPA are owned by the InferenceService and go with it."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command
from mlctl.commands.serve.common import dry_run_option


def run(f, names: list[str], dry_run: str) -> None:
    from mlctl.commands.serve.common import get_service, target

    t = target(f)
    kube = f.kube(t.cluster["name"])
    for name in names:  # all must exist before anything is deleted
        get_service(f, t, name)
    if dry_run == "none":
        f.io.confirm(f"delete {len(names)} inference service(s) ({', '.join(names)}) on {t.cluster['name']}?",
                     yes=f.yes)
    for name in names:
        if dry_run == "client":
            f.io.note(f"inferenceservice/{name} would be deleted (client dry run)")
            continue
        kube.delete("InferenceService", name, t.namespace, dry_run=dry_run == "server",
                    what=f"deleting inferenceservice/{name}")
        f.io.note(f"inferenceservice/{name} deleted" + (" (server dry run)" if dry_run == "server" else ""))
        if f.output == "name":
            f.io.out(f"inferenceservice/{name}")


@mlctl_command("delete")
@click.argument("names", nargs=-1, required=True)
@dry_run_option
@click.pass_obj
def command(f, names, dry_run):
    """Delete inference services."""
    run(f, list(names), dry_run)
