"""mlctl notebook delete NAME: the Notebook and its configuration Secret; the workspace claim only when asked."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def wait_gone(kube, kind: str, name: str, namespace: str, timeout: float) -> bool:
    """Poll until the object is gone (as `kubectl delete` waits); False after timeout."""
    import time

    deadline = time.monotonic() + timeout
    while kube.find(kind, name, namespace) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def run(f, name: str, delete_volume: bool, dry_run: str, wait: bool = True, timeout: float = 120) -> None:
    from mlctl import notebooks as N
    from mlctl.commands.notebook.common import connect, get_notebook, target
    from mlctl.errors import NotFound

    t = target(f)
    get_notebook(f, t, name)  # exit 4 before asking anything
    kube = connect(f, t)
    claim = N.workspace_claim_name(name)
    if dry_run == "none":
        what = f"delete notebook {name}" + (f" and its workspace volume {claim} (its files are lost)"
                                            if delete_volume else f" (workspace {claim} is kept)")
        f.io.confirm(f"{what} in {t.namespace}?", yes=f.yes)
    server = dry_run == "server"
    suffix = " (server dry run)" if server else ""
    kube.delete("Notebook", name, t.namespace, dry_run=server, propagation="Foreground",
                what=f"deleting notebook/{name}")
    try:  # the Secret belongs to the Notebook, so the garbage collector may delete it first: gone either way
        kube.delete("Secret", N.secret_name(name), t.namespace, dry_run=server,
                    what=f"deleting secret/{N.secret_name(name)}")
    except NotFound:
        pass
    if wait and not server and not wait_gone(kube, "Notebook", name, t.namespace, timeout):
        f.io.warn(f"notebook/{name} is still being deleted after {timeout:g}s (its pod is stopping)")
    f.io.note(f"notebook/{name} deleted{suffix}")
    if delete_volume:
        if kube.find("PersistentVolumeClaim", claim, t.namespace) is not None:
            kube.delete("PersistentVolumeClaim", claim, t.namespace, dry_run=server,
                        what=f"deleting persistentvolumeclaim/{claim}")
            f.io.note(f"persistentvolumeclaim/{claim} deleted{suffix}")
    elif kube.find("PersistentVolumeClaim", claim, t.namespace) is not None:
        f.io.note(f"workspace {claim} kept: 'mlctl notebook create {name}' uses it again; "
                  "--delete-volume removes it")
    if f.output == "name":
        f.io.out(f"notebook/{name}")


@mlctl_command("delete")
@click.argument("name")
@click.option("--delete-volume", is_flag=True, help="Also delete the workspace volume and its files.")
@click.option("--dry-run", type=click.Choice(["none", "server"]), default="none", show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the notebook and its pod are gone (as kubectl delete does).")
@click.option("--timeout", type=float, default=120, show_default=True, help="How long --wait waits, in seconds.")
@click.pass_obj
def command(f, name, delete_volume, dry_run, wait, timeout):
    """Delete a notebook; its workspace volume stays unless --delete-volume."""
    run(f, name, delete_volume, dry_run, wait, timeout)
