"""mlctl clusters use NAME: make NAME the default cluster (the config file's `cluster`, under the current
platform's profile when one is selected)."""

from __future__ import annotations

import click

from mlctl.cli import _complete_cluster, mlctl_command


def run(f, name: str) -> None:
    from mlctl.commands.clusters.common import access, session_user

    cluster = f.platform.cluster(name)["name"]  # NotFound (exit 4) names the known clusters
    profile = f.config.platform_name()
    if profile:
        f.config.file.setdefault("platforms", {}).setdefault(profile, {})["cluster"] = cluster
    else:
        f.config.file["cluster"] = cluster
    f.config.save()
    f.io.note(f"default cluster is now {cluster}" + (f" for platform {profile}" if profile else ""))
    user, groups = session_user(f)
    decisions, _ = access(f, user, groups)
    d = decisions.get(cluster)
    if d is not None and not d.allow:
        f.io.warn(f"the cluster policy denies you {cluster}: {d.reason}")


@mlctl_command("use")
@click.argument("name", shell_complete=_complete_cluster)
@click.pass_obj
def command(f, name):
    """Make a cluster the default for your commands (written to the config file)."""
    run(f, name)
