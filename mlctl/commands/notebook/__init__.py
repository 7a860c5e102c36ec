"""mlctl notebook: Kubeflow notebook servers on the platform's vGPU/GPU/CPU pools (docs/notebooks.md)."""

from __future__ import annotations

from mlctl.cli import lazy_group

VERBS = {
    "create": ("mlctl.commands.notebook.create:command",
               "Create a notebook server with a workspace volume and your platform login inside."),
    "list": ("mlctl.commands.notebook.list:command", "List your notebooks and whether they are Ready or stopped."),
    "status": ("mlctl.commands.notebook.status:command", "Show a notebook's state, resources, workspace and URL."),
    "stop": ("mlctl.commands.notebook.stop:command", "Stop a notebook (its pod goes away, the workspace stays)."),
    "start": ("mlctl.commands.notebook.start:command", "Start a stopped notebook again, with a fresh copy of your login."),
    "delete": ("mlctl.commands.notebook.delete:command",
               "Delete a notebook; its workspace volume stays unless --delete-volume."),
    "open": ("mlctl.commands.notebook.open:command", "Print a notebook's URL (and open it in a browser on a desktop)."),
    "logs": ("mlctl.commands.notebook.logs:command", "Print (or follow) the logs of a notebook's server."),
}

group = lazy_group("notebook", VERBS, """Notebook servers (JupyterLab) in your namespace, on vGPU, GPU or CPU nodes.

    \b
    mlctl notebook create nb1 --pool vgpu --gpus 1 --wait
    mlctl notebook open nb1
    mlctl notebook stop nb1 && mlctl notebook start nb1
    mlctl notebook delete nb1 --yes""")
group.short_help = "Notebook servers (JupyterLab) on vGPU/GPU/CPU pools, with your login inside."
