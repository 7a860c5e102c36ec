"""mlctl clusters list: the clusters of the current platform and their node pools (no server needed)."""

from __future__ import annotations

from dataclasses import dataclass

import click

from mlctl.cli import mlctl_command
from mlctl.output import Column, print_list


@dataclass
class Options:
    output: str


def pool_summary(cluster: dict) -> str:
    parts = []
    for name, pool in sorted((cluster.get("pools") or {}).items()):
        gpus = (pool.get("gpusPerNode") or 0) * (pool.get("nodes") or 0)
        parts.append(f"{name}({gpus} GPU)" if gpus else name)
    return ",".join(parts)


def total_gpus(cluster: dict) -> int:
    return sum((p.get("gpusPerNode") or 0) * (p.get("nodes") or 0) for p in (cluster.get("pools") or {}).values())


COLUMNS = [
    Column("name", lambda c: c["name"], style="bold"),
    Column("provider", lambda c: c.get("provider")),
    Column("gpus", lambda c: total_gpus(c)),
    Column("pools", pool_summary),
    Column("gpu-hour", lambda c: f"{float(c.get('gpuHourCost') or 0):.2f}"),
    Column("server", lambda c: c.get("server"), wide=True),
    Column("audience", lambda c: c.get("audience"), wide=True),
]


def run(f, opts: Options) -> None:
    clusters = f.platform.clusters
    print_list(f.io, clusters, COLUMNS, opts.output, name=lambda c: f"cluster/{c['name']}",
               empty="No clusters in this platform.")


@mlctl_command("list")
@click.pass_obj
def command(f):
    """List the clusters and node pools of the platform."""
    run(f, Options(output=f.output))


alias = mlctl_command("ls", hidden=True)(click.pass_obj(lambda f: run(f, Options(output=f.output))))
alias.help = "Alias of list."
