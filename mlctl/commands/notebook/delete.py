"""mlctl notebook delete NAME: the Notebook and its configuration Secret; the workspace claim only when asked."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, name: str, delete_volume: bool, dry_run: str) -> None:
    from mlctl import notebooks as N
    from mlctl.commands.notebook.common import connect, get_notebook, target

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
    if kube.find("Secret", N.secret_name(name), t.namespace) is not None:
        kube.delete("Secret", N.secret_name(name), t.namespace, dry_run=server,
                    what=f"deleting secret/{N.secret_name(name)}")
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
@click.pass_obj
def command(f, name, delete_volume, dry_run):
    """Delete a notebook; its workspace volume stays unless --delete-volume."""
    run(f, name, delete_volume, dry_run)
