"""mlctl serve scale NAME [--min-replicas N] [--max-replicas M] [--target-utilization P]: change the
autoscaler's bounds (KServe reconciles the HPA from the InferenceService)."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command
from mlctl.commands.serve.common import dry_run_option


def run(f, name: str, min_replicas: int | None, max_replicas: int | None, target_utilization: int | None,
        dry_run: str) -> None:
    from mlctl.commands.serve.common import get_service, target
    from mlctl.output import print_object, to_json, to_yaml
    from mlctl.serve.isvc import scale_patch

    t = target(f)
    current = get_service(f, t, name)
    patch = scale_patch(min_replicas, max_replicas, target_utilization, current)
    change = patch["spec"]["predictor"]
    summary = f"min {change['minReplicas']}, max {change['maxReplicas']}" + (
        f", cpu target {change['scaleTarget']}%" if "scaleTarget" in change else "")
    if dry_run == "client":
        f.io.stdout.write(to_json(patch) + "\n" if f.output == "json" else to_yaml(patch))
        f.io.note(f"inferenceservice/{name} would be scaled to {summary} (client dry run)")
        return
    updated = f.kube(t.cluster["name"]).patch("InferenceService", name, patch, t.namespace, dry_run=dry_run == "server",
                                              manager="mlctl", what=f"scaling inferenceservice/{name}")
    f.io.note(f"inferenceservice/{name} scaled to {summary}" + (" (server dry run)" if dry_run == "server" else ""))
    if f.output in ("json", "yaml"):
        print_object(f.io, updated, f.output)
    elif f.output == "name":
        f.io.out(f"inferenceservice/{name}")


@mlctl_command("scale")
@click.argument("name")
@click.option("--min-replicas", type=int)
@click.option("--max-replicas", type=int)
@click.option("--target-utilization", type=int, metavar="PERCENT", help="Average CPU utilization to scale on.")
@dry_run_option
@click.pass_obj
def command(f, name, min_replicas, max_replicas, target_utilization, dry_run):
    """Change a service's replica bounds or CPU target."""
    run(f, name, min_replicas, max_replicas, target_utilization, dry_run)
