"""mlctl quota requests: your quota requests on a cluster and what the admins decided."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command
from mlctl.output import Column, parse_time


def display(qr: dict) -> dict:
    """The complete object for json/yaml, with the phase filled in (a new request has no status yet)."""
    from mlctl.quota.requests import phase

    out = dict(qr)
    out["status"] = {**(qr.get("status") or {}), "phase": phase(qr)}
    return out


def _summary(qr):
    from mlctl.quota.requests import summary

    return summary(qr)


def _phase(qr):
    from mlctl.quota.requests import phase

    return phase(qr)


COLUMNS = [
    Column("name", lambda q: q["metadata"]["name"], style="bold"),
    Column("namespace", lambda q: q["metadata"].get("namespace")),
    Column("asks", _summary),
    Column("phase", _phase),
    Column("decided by", lambda q: (q.get("status") or {}).get("decidedBy")),
    Column("age", lambda q: parse_time(q["metadata"]["creationTimestamp"])
           if q["metadata"].get("creationTimestamp") else None),
    Column("reason", lambda q: (q.get("spec") or {}).get("reason"), wide=True),
    Column("message", lambda q: (q.get("status") or {}).get("message"), wide=True),
]


def run(f) -> None:
    from mlctl.commands.quota.common import target_api
    from mlctl.kube.errors import kube_errors
    from mlctl.output import print_list

    t, api = target_api(f)
    with kube_errors(f"listing quota requests in {t.namespace}", t.cluster["name"]):
        items = api.list("QuotaRequest", namespace=t.namespace)
    items.sort(key=lambda q: (q["metadata"].get("creationTimestamp") or "", q["metadata"]["name"]))
    print_list(f.io, items, [c for c in COLUMNS if c.header != "namespace"], f.output, raw=display,
               name=lambda q: f"quotarequest/{q['metadata']['name']}",
               empty=f"No quota requests in {t.namespace} on cluster {t.cluster['name']}.")


@mlctl_command("requests")
@click.pass_obj
def command(f):
    """List your quota requests and their decisions."""
    run(f)
