"""mlctl notebook stop NAME: set the stop annotation, so the controller scales the notebook to zero pods."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, name: str, dry_run: str, wait: bool, timeout: float | None) -> None:
    import datetime as dt

    from mlctl import notebooks as N
    from mlctl.commands.notebook.common import connect, get_notebook, show_result, target, wait_for

    t = target(f)
    nb = get_notebook(f, t, name)
    if N.stopped(nb):
        f.io.note(f"notebook/{name} is already stopped")
    else:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        nb = connect(f, t).patch("Notebook", name, {"metadata": {"annotations": {N.STOP_ANNOTATION: stamp}}},
                                 t.namespace, dry_run=dry_run == "server", what=f"stopping notebook/{name}")
        suffix = " (server dry run)" if dry_run == "server" else ""
        f.io.note(f"notebook/{name} stopped; its workspace {N.workspace_claim_name(name)} is kept{suffix}")
    if wait and dry_run == "none":
        wait_for(f, t, nb, lambda n: N.stopped(n) and not N.ready(n), "stopped", timeout)
    show_result(f, name, nb)


@mlctl_command("stop")
@click.argument("name")
@click.option("--dry-run", type=click.Choice(["none", "server"]), default="none", show_default=True)
@click.option("--wait", is_flag=True, help="Wait until the notebook has no ready pod.")
@click.option("--timeout", type=float, help="Give up waiting after this many seconds (exit 7).")
@click.pass_obj
def command(f, name, dry_run, wait, timeout):
    """Stop a notebook (its pod goes away, the workspace stays)."""
    run(f, name, dry_run, wait, timeout)
