"""mlctl train events NAME: Kubernetes events of the job and its pods, oldest first."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command
from mlctl.output import Column, print_list


def _when(e):
    return e.last_timestamp or e.event_time or e.metadata.creation_timestamp


COLUMNS = [
    Column("last seen", _when),
    Column("type", lambda e: e.type),
    Column("reason", lambda e: e.reason),
    Column("object", lambda e: f"{(e.involved_object.kind or '').lower()}/{e.involved_object.name}"),
    Column("message", lambda e: (e.message or "").strip()),
]


def run(f, name: str) -> None:
    from mlctl.commands.train.common import jobs_for, target

    t = target(f)
    jobs = jobs_for(f, t)
    events = jobs.events(jobs.get(name))
    print_list(f.io, events, COLUMNS, f.output, raw=lambda e: jobs.api.sanitize_for_serialization(e),
               name=lambda e: f"event/{e.metadata.name}", empty=f"No events for job {name}.")


@mlctl_command("events")
@click.argument("name")
@click.pass_obj
def command(f, name):
    """List the Kubernetes events of a job and its pods."""
    run(f, name)
