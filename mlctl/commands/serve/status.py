"""mlctl serve status NAME: readiness, replicas (Deployment and HPA), the endpoint on the gateway."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def info(f, t, item: dict, deployment: dict | None, hpa: dict | None) -> dict:
    from mlctl.serve import isvc

    name = item["metadata"]["name"]
    lo, hi = isvc.bounds(item)
    hpa_status = (hpa or {}).get("status") or {}
    gateway = (f.platform.section("gateway") or {}).get("url")
    return {"name": name, "cluster": t.cluster["name"], "namespace": t.namespace, "state": isvc.state(item),
            "reason": isvc.reason(item), "framework": (isvc.model_of(item).get("modelFormat") or {}).get("name"),
            "model": isvc.model_of(item).get("storageUri"),
            "source": (item["metadata"].get("annotations") or {}).get(isvc.MODEL_ANNOTATION),
            "replicas": isvc.replicas(deployment) if deployment else None,
            "autoscaler": {"min": lo, "max": hi, "target": isvc.target(item),
                           "current": hpa_status.get("currentReplicas"),
                           "desired": hpa_status.get("desiredReplicas")} if hpa else {"min": lo, "max": hi,
                                                                                       "target": isvc.target(item)},
            "url": f"{gateway}/serve/{t.namespace}/{name}" if gateway else None,
            "clusterUrl": (item.get("status") or {}).get("url")}


def render(io, data: dict) -> None:
    io.out(f"inferenceservice/{data['name']} on {data['cluster']} in {data['namespace']}: {data['state']}"
           + (f" ({data['reason']})" if data["reason"] and data["state"] != "Ready" else ""))
    io.out(f"  model       {data['source'] or data['model']} ({data['framework']})")
    if data["source"] and data["source"] != data["model"]:
        io.out(f"  storage     {data['model']}")
    r = data["replicas"]
    io.out("  replicas    " + (f"{r['ready']} ready of {r['desired']} desired" if r else "no predictor deployment yet"))
    a = data["autoscaler"]
    line = f"  autoscaler  min {a['min']}  max {a['max']}  target {a['target']}"
    if a.get("desired") is not None:
        line += f"  (HPA: {a.get('current')} current, {a['desired']} desired)"
    io.out(line)
    if data["url"]:
        io.out(f"  endpoint    {data['url']}/v1/models/{data['name']}:predict")


def run(f, name: str) -> None:
    from mlctl.commands.serve.common import get_service, predictor_objects, target
    from mlctl.output import print_object

    t = target(f)
    item = get_service(f, t, name)
    deployment, hpa = predictor_objects(f.kube(t.cluster["name"]), t.namespace, name)
    print_object(f.io, info(f, t, item, deployment, hpa), f.output, name=f"inferenceservice/{name}", render=render)


@mlctl_command("status")
@click.argument("name")
@click.pass_obj
def command(f, name):
    """Show a service's readiness, replicas and endpoint."""
    run(f, name)
