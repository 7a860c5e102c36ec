"""mlctl train list: your training jobs on a cluster, paged through the API."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command
from mlctl.output import Column, parse_time, print_list


def _created(job):
    ts = job["metadata"].get("creationTimestamp")
    return parse_time(ts) if ts else None


def _state(job):
    from mlctl.kube.jobs import state

    return state(job)


def _replicas(job):
    from mlctl.kube.jobs import replica_counts

    counts = replica_counts(job)
    desired = sum(c["desired"] for c in counts.values())
    done = sum(c["succeeded"] for c in counts.values())
    return f"{done}/{desired}"


def _gpus(job):
    from mlctl.kube.jobs import KINDS

    kind = KINDS.get(job.get("kind"), KINDS["TFJob"])
    total = 0
    for rspec in ((job.get("spec") or {}).get(kind.replica_field) or {}).values():
        for c in rspec.get("template", {}).get("spec", {}).get("containers", []):
            limits = (c.get("resources") or {}).get("limits") or {}
            total += sum(int(v) for k, v in limits.items() if k.endswith("/gpu")) * int(rspec.get("replicas") or 1)
    return total


def _annotated_gpus(job):
    value = (job["metadata"].get("annotations") or {}).get("mlctl.io/gpus")
    return value if value is not None else "-"


# Default table: what the API server's Table rendering and the job metadata give (no full objects).
COLUMNS = [
    Column("name", lambda j: j["metadata"]["name"], style="bold"),
    Column("kind", lambda j: j.get("kind")),
    Column("state", lambda j: j["state"]),
    Column("gpus", _annotated_gpus),
    Column("age", _created),
]
# -o wide needs the full objects (replica counts live in .status).
WIDE = [
    Column("name", lambda j: j["metadata"]["name"], style="bold"),
    Column("kind", lambda j: j.get("kind")),
    Column("state", _state),
    Column("done", _replicas),
    Column("gpus", _gpus),
    Column("age", _created),
    Column("spec", lambda j: (j["metadata"].get("labels") or {}).get("mlctl.io/spec-name")),
    Column("namespace", lambda j: j["metadata"].get("namespace")),
]


def run(f, selector: str | None) -> None:
    from mlctl.commands.train.common import jobs_for, target

    t = target(f)
    jobs = jobs_for(f, t)
    full = f.output in ("wide", "json", "yaml")
    items = jobs.list(selector=selector) if full else jobs.list_rows(selector=selector)
    items.sort(key=lambda j: (j["metadata"].get("creationTimestamp") or "", j["metadata"]["name"]))
    print_list(f.io, items, WIDE if full else COLUMNS, f.output,
               name=lambda j: f"{j['kind'].lower()}/{j['metadata']['name']}",
               empty=f"No training jobs in {t.namespace} on cluster {t.cluster['name']}.")


@mlctl_command("list")
@click.option("-l", "--selector", help="Label selector, e.g. mlctl.io/spec-name=3dgan.")
@click.pass_obj
def command(f, selector):
    """List your training jobs."""
    run(f, selector)
