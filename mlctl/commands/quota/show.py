"""mlctl quota show: used vs hard for GPUs, CPU, memory and pods, and which source gives what."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def report(quota: dict, cluster: str, namespace: str) -> dict:
    from mlctl.quota import parse_sources, usage_rows

    annotations = (quota.get("metadata") or {}).get("annotations") or {}
    from mlctl.quota import SOURCES_ANNOTATION

    return {"cluster": cluster, "namespace": namespace, "quota": quota["metadata"]["name"],
            "resources": [r.to_dict() for r in usage_rows(quota)],
            "sources": [s.to_dict() for s in parse_sources(annotations.get(SOURCES_ANNOTATION))]}


def render(io, quota: dict, cluster: str, namespace: str) -> None:
    from mlctl.quota import bar, usage_rows

    rows = usage_rows(quota)
    if io.stdout_tty:
        from rich.table import Table

        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold" if io.color else None,
                      title=f"{namespace} on {cluster}", title_justify="left")
        for header in ("RESOURCE", "USED", "HARD", "", "SOURCES"):
            table.add_column(header, no_wrap=True)
        for r in rows:
            colour = "red" if r.fraction >= 1 else "yellow" if r.fraction >= 0.8 else "green"
            used_bar = f"[{colour}]{bar(r.fraction)}[/]" if io.color else bar(r.fraction)
            table.add_row(r.resource, r.used_text, r.hard_text, used_bar + f" {r.fraction:4.0%}", r.breakdown())
        io.console.print(table)
        return
    from tabulate import tabulate

    data = [[r.resource, r.used_text, r.hard_text, f"{r.fraction:.0%}", r.breakdown()] for r in rows]
    io.out(tabulate(data, headers=["RESOURCE", "USED", "HARD", "USE%", "SOURCES"], tablefmt="plain",
                    disable_numparse=True))


def run(f, cluster: str | None) -> None:
    from mlctl.commands.quota.common import target_api
    from mlctl.errors import NotFound
    from mlctl.kube.errors import kube_errors
    from mlctl.output import print_object
    from mlctl.quota import QUOTA_NAME

    t, api = target_api(f, cluster)
    name = t.cluster["name"]
    with kube_errors(f"reading the quota of {t.namespace}", name):
        quota = api.find("ResourceQuota", QUOTA_NAME, t.namespace)
    if quota is None:
        raise NotFound(f"namespace {t.namespace} has no quota {QUOTA_NAME} on cluster {name}",
                       hint="the platform admins' 'mlctl admin sync' creates it; ask them if it persists")
    print_object(f.io, report(quota, name, t.namespace), f.output,
                 name=f"resourcequota/{QUOTA_NAME}", render=lambda io, _: render(io, quota, name, t.namespace))


@mlctl_command("show")
@click.pass_obj
def command(f):
    """Show used vs hard quota and which source grants what."""
    run(f, None)
