"""mlctl notebook logs NAME [-f]: the notebook server's own output (its pod's logs)."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, name: str, follow: bool, previous: bool) -> None:
    from mlctl import notebooks as N
    from mlctl.commands.notebook.common import connect, get_notebook, target
    from mlctl.errors import NotFound
    from mlctl.kube.kinds import kind
    from mlctl.output import stream_lines

    t = target(f)
    nb = get_notebook(f, t, name)
    kube = connect(f, t)
    pods = kube.list("Pod", t.namespace, selector=f"{N.POD_LABEL}={name}", what=f"listing pods of notebook {name}")
    if not pods:
        why = "it is stopped" if N.stopped(nb) else "its pod is not there yet"
        raise NotFound(f"notebook {name} has no pod: {why}", hint=f"see 'mlctl notebook status {name}'")
    pod = sorted(pods, key=lambda p: p["metadata"]["name"])[0]["metadata"]["name"]
    query = {"follow": "true" if follow else None, "previous": "true" if previous else None,
             "container": N.container(nb).get("name") or name}
    stream_lines(f.io, kube.lines(kind("Pod").path(t.namespace, pod, "log"), query=query,
                                  what=f"reading logs of notebook {name}"),
                 "stopped following logs; the notebook keeps running")


@mlctl_command("logs")
@click.argument("name")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines.")
@click.option("-p", "--previous", is_flag=True, help="The logs of the server's previous run (after a restart).")
@click.pass_obj
def command(f, name, follow, previous):
    """Print (or follow) the logs of a notebook's server."""
    run(f, name, follow, previous)
