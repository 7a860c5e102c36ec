"""mlctl train wait NAME: block until the job ends; exit 0 if it succeeded, 1 if it failed, 7 on timeout."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


@mlctl_command("wait")
@click.argument("name")
@click.option("--timeout", type=float, help="Give up after this many seconds (exit 7).")
@click.pass_obj
def command(f, name, timeout):
    """Wait until a job succeeds or fails."""
    from mlctl.commands.train.common import jobs_for, target
    from mlctl.commands.train.follow import follow

    t = target(f)
    jobs = jobs_for(f, t)
    follow(f, jobs, jobs.get(name), logs=False, timeout=timeout)
