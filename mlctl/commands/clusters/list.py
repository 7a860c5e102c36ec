"""mlctl clusters list: the platform's clusters with your access (the policy's decision and reason), free GPUs
per pool now, and cost per GPU-hour."""

from __future__ import annotations

from dataclasses import dataclass

import click

from mlctl.cli import mlctl_command
from mlctl.output import Column, print_list


@dataclass
class Options:
    output: str


def _columns():
    from mlctl.commands.clusters.common import access_text, free_text

    return [
        Column("name", lambda r: r["name"] + (" *" if r["default"] else ""), style="bold"),
        Column("provider", lambda r: r["provider"]),
        Column("access", access_text),
        Column("free-gpus", free_text),
        Column("gpu-hour", lambda r: f"{r['gpuHourCost']:.2f}"),
        Column("reason", lambda r: r["reason"]),
        Column("decision", lambda r: r["decisionId"] or "-", wide=True),
        Column("server", lambda r: r["server"], wide=True),
        Column("audience", lambda r: r["entry"].get("audience"), wide=True),
    ]


def raw(r: dict) -> dict:
    """json/yaml: the registry entry (without its CA) and your access."""
    shown = {k: v for k, v in r["entry"].items() if k != "certificateAuthorityData"}
    shown["access"] = {k: r[k] for k in ("default", "allowed", "reason", "decisionId", "freeGpus")}
    return shown


def run(f, opts: Options) -> None:
    from mlctl.commands.clusters.common import access, row, session_user

    clusters = f.platform.clusters
    if not clusters:
        print_list(f.io, [], _columns(), opts.output, empty="No clusters in this platform.")
        return
    user, groups = session_user(f)
    decisions, problem = access(f, user, groups)
    if problem and user:
        f.io.warn(f"access unknown: {problem}")
    default = f.platform.cluster(f.config.get("cluster"))["name"]
    rows = [row(f, c, decisions, problem, default, bool(user)) for c in clusters]
    print_list(f.io, rows, _columns(), opts.output, raw=raw, name=lambda r: f"cluster/{r['name']}",
               empty="No clusters in this platform.")


@mlctl_command("list")
@click.pass_obj
def command(f):
    """List the clusters: your access and why, free GPUs now, cost per GPU-hour (* marks the default)."""
    run(f, Options(output=f.output))


alias = mlctl_command("ls", hidden=True)(click.pass_obj(lambda f: run(f, Options(output=f.output))))
alias.help = "Alias of list."
