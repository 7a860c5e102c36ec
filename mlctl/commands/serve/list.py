"""mlctl serve list: your inference services, their readiness, model and replicas."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command
from mlctl.output import Column, parse_time
from mlctl.serve import isvc


def _created(item):
    ts = item["metadata"].get("creationTimestamp")
    return parse_time(ts) if ts else None


def _replicas(item):
    lo, hi = isvc.bounds(item)
    dep = item.get("_deployment")
    now = f"{dep['ready']}/{dep['desired']}" if dep else "-"
    return f"{now} ({lo}-{hi})"


def _model(item):
    notes = item["metadata"].get("annotations") or {}
    return notes.get(isvc.MODEL_ANNOTATION) or isvc.model_of(item).get("storageUri")


COLUMNS = [
    Column("name", lambda i: i["metadata"]["name"], style="bold"),
    Column("state", lambda i: i["_state"]),
    Column("framework", lambda i: (isvc.model_of(i).get("modelFormat") or {}).get("name")),
    Column("replicas", _replicas),
    Column("model", _model),
    Column("age", _created),
    Column("storage", lambda i: isvc.model_of(i).get("storageUri"), wide=True),
    Column("target", isvc.target, wide=True),
    Column("url", lambda i: i.get("_url"), wide=True),
]


def run(f, selector: str | None) -> None:
    from mlctl.commands.serve.common import target
    from mlctl.errors import Forbidden
    from mlctl.output import print_list

    t = target(f)
    kube = f.kube(t.cluster["name"])
    items = kube.list("InferenceService", t.namespace, selector=selector, what="listing inferenceservices")
    try:
        deployments = {d["metadata"]["name"]: d for d in kube.list("Deployment", t.namespace,
                                                                   selector="serving.kserve.io/inferenceservice",
                                                                   what="listing deployments")}
    except Forbidden:
        deployments = {}
    gateway = (f.platform.section("gateway") or {}).get("url")
    for item in items:
        name = item["metadata"]["name"]
        item["_state"] = isvc.state(item)
        dep = deployments.get(isvc.predictor_name(name))
        item["_deployment"] = isvc.replicas(dep) if dep else None
        item["_url"] = f"{gateway}/serve/{t.namespace}/{name}" if gateway else None
    items.sort(key=lambda i: (i["metadata"].get("creationTimestamp") or "", i["metadata"]["name"]))

    def raw(i):
        return {k: v for k, v in i.items() if not k.startswith("_")}

    print_list(f.io, items, COLUMNS, f.output, raw=raw, name=lambda i: f"inferenceservice/{i['metadata']['name']}",
               empty=f"No inference services in {t.namespace} on cluster {t.cluster['name']}.")


@mlctl_command("list")
@click.option("-l", "--selector", help="Label selector.")
@click.pass_obj
def command(f, selector):
    """List your inference services."""
    run(f, selector)
