"""mlctl clusters show NAME: one cluster's registry entry."""

from __future__ import annotations

from dataclasses import dataclass

import click

from mlctl.cli import _complete_cluster, mlctl_command
from mlctl.output import print_object


@dataclass
class Options:
    name: str | None
    output: str


def _render(io, cluster: dict) -> None:
    from mlctl.commands.clusters.common import access_text, free_text

    access = cluster.get("access") or {}
    io.out(f"Name:       {cluster['name']}")
    io.out(f"Provider:   {cluster.get('provider', '-')}")
    io.out(f"Server:     {cluster.get('server')}")
    io.out(f"Audience:   {cluster.get('audience', '-')}")
    io.out(f"GPU-hour:   {float(cluster.get('gpuHourCost') or 0):.2f}")
    if access:
        io.out(f"Access:     {access_text(access)} ({access['reason']})")
        io.out(f"Free GPUs:  {free_text(access)}")
    io.out("Pools:")
    for name, pool in sorted((cluster.get("pools") or {}).items()):
        gpu = f"{pool.get('gpusPerNode', 0)} x {pool.get('gpuModel') or 'GPU'}" if pool.get("gpusPerNode") else "no GPU"
        pre = ", preemptible" if pool.get("preemptible") else ""
        io.out(f"  {name:<6} {pool.get('nodes', '?')} nodes, {gpu}, {pool.get('cpuPerNode', '?')} CPU{pre}")


def run(f, opts: Options) -> None:
    cluster = f.platform.cluster(opts.name or f.config.get("cluster"))
    from mlctl.commands.clusters.common import access, row, session_user

    user, groups = session_user(f)
    decisions, problem = access(f, user, groups)
    default = f.platform.cluster(f.config.get("cluster"))["name"]
    shown = {k: v for k, v in cluster.items() if k != "certificateAuthorityData"}
    r = row(f, cluster, decisions, problem, default, bool(user))
    shown["access"] = {k: r[k] for k in ("default", "allowed", "reason", "decisionId", "freeGpus", "gpus")}
    print_object(f.io, shown, opts.output, name=f"cluster/{cluster['name']}", render=_render)


@mlctl_command("show")
@click.argument("name", required=False, shell_complete=_complete_cluster)
@click.pass_obj
def command(f, name):
    """Show one cluster's entry: server, pools, cost, your access and free GPUs."""
    run(f, Options(name=name, output=f.output))
