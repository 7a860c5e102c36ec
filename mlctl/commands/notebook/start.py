"""mlctl notebook start NAME: renew the notebook's copy of your login, then remove the stop annotation."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, name: str, dry_run: str, wait: bool, timeout: float | None) -> None:
    from mlctl import notebooks as N
    from mlctl.commands.notebook.common import (
        connect,
        get_notebook,
        refresh_secret,
        show_result,
        target,
        wait_ready,
    )

    t = target(f)
    nb = get_notebook(f, t, name)
    if not N.stopped(nb):
        f.io.note(f"notebook/{name} is not stopped")
    else:
        if dry_run == "none":
            refresh_secret(f, t, name)  # a login renewed since the notebook was created reaches it now
        nb = connect(f, t).patch("Notebook", name, {"metadata": {"annotations": {N.STOP_ANNOTATION: None}}},
                                 t.namespace, dry_run=dry_run == "server", what=f"starting notebook/{name}")
        suffix = " (server dry run)" if dry_run == "server" else ""
        f.io.note(f"notebook/{name} started{suffix}")
    if wait and dry_run == "none":
        wait_ready(f, t, nb, timeout)
    show_result(f, name, nb)


@mlctl_command("start")
@click.argument("name")
@click.option("--dry-run", type=click.Choice(["none", "server"]), default="none", show_default=True)
@click.option("--wait", is_flag=True, help="Wait until the notebook is Ready.")
@click.option("--timeout", type=float, help="Give up waiting after this many seconds (exit 7).")
@click.pass_obj
def command(f, name, dry_run, wait, timeout):
    """Start a stopped notebook again, with a fresh copy of your login."""
    run(f, name, dry_run, wait, timeout)
