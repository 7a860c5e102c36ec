"""mlctl train schema: the job spec's published JSON schema."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


@mlctl_command("schema")
@click.pass_obj
def command(f):
    """Print the job spec's JSON schema."""
    from mlctl.jobs.schema import schema
    from mlctl.output import to_json, to_yaml

    data = schema()
    if f.output == "yaml":
        f.io.stdout.write(to_yaml(data))
    else:
        f.io.out(to_json(data))
