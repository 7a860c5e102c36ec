"""mlctl notebook list: your notebooks, Ready or stopped, from each Notebook's status."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command
from mlctl.output import Column, parse_time, print_list


def _created(nb):
    ts = nb["metadata"].get("creationTimestamp")
    return parse_time(ts) if ts else None


def _state(nb):
    from mlctl.notebooks import state

    return state(nb)


def _gpus(nb):
    from mlctl.notebooks import gpus

    return gpus(nb)


def _image(nb):
    from mlctl.notebooks import container

    return container(nb).get("image")


COLUMNS = [
    Column("name", lambda nb: nb["metadata"]["name"], style="bold"),
    Column("state", _state),
    Column("pool", lambda nb: (nb["metadata"].get("annotations") or {}).get("mlctl.io/pool") or "-"),
    Column("gpus", _gpus),
    Column("age", _created),
    Column("image", _image, wide=True),
    Column("workspace", lambda nb: (nb["metadata"].get("annotations") or {}).get("mlctl.io/workspace") or "-",
           wide=True),
]


def run(f) -> None:
    from mlctl.commands.notebook.common import connect, target

    t = target(f)
    items = connect(f, t).list("Notebook", t.namespace, what="listing notebooks")
    items.sort(key=lambda nb: (nb["metadata"].get("creationTimestamp") or "", nb["metadata"]["name"]))
    print_list(f.io, items, COLUMNS, f.output, name=lambda nb: f"notebook/{nb['metadata']['name']}",
               empty=f"No notebooks in {t.namespace} on cluster {t.cluster['name']}.")


@mlctl_command("list")
@click.pass_obj
def command(f):
    """List your notebooks and whether they are Ready or stopped."""
    run(f)
