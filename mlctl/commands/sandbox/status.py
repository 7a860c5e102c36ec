"""mlctl sandbox status."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command
from mlctl.output import Column, print_list

COLUMNS = [
    Column("component", lambda c: c["name"], style="bold"),
    Column("running", lambda c: c.get("running")),
    Column("pid", lambda c: c.get("pid")),
    Column("port", lambda c: c.get("port")),
    Column("log", lambda c: c.get("log"), wide=True),
]


def run(f) -> None:
    from mlctl.errors import Unavailable
    from mlctl.sandbox import core

    status = core.status(core.state_dir())
    components = [{"name": name, **info} for name, info in (status.get("components") or {}).items()]
    if f.output in ("json", "yaml"):
        from mlctl.output import print_object

        print_object(f.io, status, f.output)
    else:
        print_list(f.io, components, COLUMNS, f.output, name=lambda c: f"component/{c['name']}",
                   empty="The sandbox is not running: start it with 'mlctl sandbox up'.")
    if not components or not all(c.get("running") for c in components):
        raise Unavailable("the sandbox is not (fully) running", hint="run 'mlctl sandbox up'")


@mlctl_command("status")
@click.pass_obj
def command(f):
    """Show the sandbox's processes, ports and health."""
    run(f)
