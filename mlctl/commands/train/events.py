"""mlctl train events NAME: Kubernetes events of the job and its pods, oldest first."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command
from mlctl.output import Column, print_list


def _when(e: dict) -> str:
    from mlctl.kube.api import event_time

    return event_time(e)


def _involved(e: dict) -> str:
    obj = e.get("involvedObject") or {}
    return f"{(obj.get('kind') or '').lower()}/{obj.get('name')}"


COLUMNS = [
    Column("last seen", _when),
    Column("type", lambda e: e.get("type")),
    Column("reason", lambda e: e.get("reason")),
    Column("object", _involved),
    Column("message", lambda e: (e.get("message") or "").strip()),
]


def run(f, name: str) -> None:
    from mlctl.commands.train.common import jobs_for, target

    t = target(f)
    jobs = jobs_for(f, t)
    events = jobs.events(jobs.get(name))
    print_list(f.io, events, COLUMNS, f.output, raw=lambda e: e,
               name=lambda e: f"event/{e['metadata']['name']}", empty=f"No events for job {name}.")


@mlctl_command("events")
@click.argument("name")
@click.pass_obj
def command(f, name):
    """List the Kubernetes events of a job and its pods."""
    run(f, name)
