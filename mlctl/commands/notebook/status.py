"""mlctl notebook status NAME: state, resources, workspace and URL of one notebook."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, name: str) -> None:
    from mlctl.commands.notebook.common import get_notebook, summary, target
    from mlctl.output import print_object

    t = target(f)
    info = summary(f, t, get_notebook(f, t, name))

    def render(io, d):
        io.out(f"Name:       {d['name']}")
        io.out(f"Namespace:  {d['namespace']} (cluster {d['cluster']})")
        io.out(f"State:      {d['state']}" + (f" ({d['message']})" if d["message"] and d["state"] != "Ready" else ""))
        io.out(f"Image:      {d['image']}")
        io.out(f"Resources:  pool {d['pool'] or '-'}, {d['gpus']} GPUs, {d['cpu'] or '-'} CPUs, "
               f"{d['memory'] or '-'} memory")
        io.out(f"Workspace:  {d['workspace'] or '-'} at /home/jovyan")
        io.out(f"URL:        {d['url'] or '-'}")

    print_object(f.io, info, f.output, name=f"notebook/{name}", render=render)


@mlctl_command("status")
@click.argument("name")
@click.pass_obj
def command(f, name):
    """Show a notebook's state, resources, workspace and URL."""
    run(f, name)
