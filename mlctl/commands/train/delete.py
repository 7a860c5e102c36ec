"""mlctl train delete NAME...: delete jobs (asks on a terminal, needs --yes otherwise)."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, names: list[str], dry_run: str) -> None:
    from mlctl.commands.train.common import jobs_for, target

    t = target(f)
    jobs = jobs_for(f, t)
    found = [jobs.get(n) for n in names]  # all must exist before anything is deleted
    if dry_run == "none":
        f.io.confirm(f"delete {len(found)} job(s) ({', '.join(names)}) on {t.cluster['name']}?", yes=f.yes)
    for job in found:
        label = f"{job['kind'].lower()}/{job['metadata']['name']}"
        if dry_run == "none":
            jobs.delete(job)
            f.io.note(f"{label} deleted")
        else:
            f.io.note(f"{label} would be deleted ({dry_run} dry run)")


@mlctl_command("delete")
@click.argument("names", nargs=-1, required=True)
@click.option("--dry-run", type=click.Choice(["none", "client", "server"]), default="none", show_default=True)
@click.pass_obj
def command(f, names, dry_run):
    """Delete a training job and its pods."""
    run(f, list(names), dry_run)
