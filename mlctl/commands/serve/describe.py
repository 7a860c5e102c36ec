"""mlctl serve describe NAME: the service in full: model, autoscaling, predictor pods, HPA and events."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, name: str) -> None:
    from mlctl.commands.serve.common import get_service, predictor_objects, predictor_pods, target
    from mlctl.commands.serve.status import info, render
    from mlctl.errors import Forbidden
    from mlctl.output import print_object
    from mlctl.serve.isvc import predictor_name

    t = target(f)
    kube = f.kube(t.cluster["name"])
    item = get_service(f, t, name)
    deployment, hpa = predictor_objects(kube, t.namespace, name)
    pods = predictor_pods(kube, t.namespace, name)
    names = {name, predictor_name(name)} | {p["metadata"]["name"] for p in pods}
    try:
        events = kube.events(t.namespace, None)
        prefix = predictor_name(name) + "-"
        # the predictor's objects and pods by name; events older than the service are of an earlier one
        # of the same name
        born = _seconds(item["metadata"].get("creationTimestamp")) or ""
        events = [e for e in events if ((e.get("involvedObject") or {}).get("name") in names
                                        or str((e.get("involvedObject") or {}).get("name", "")).startswith(prefix))
                  and (_seconds(e.get("lastTimestamp") or e.get("eventTime")
                                or (e.get("metadata") or {}).get("creationTimestamp")) or "") >= born]
    except Forbidden:
        events = []
    data = info(f, t, item, deployment, hpa)
    data["pods"] = [{"name": p["metadata"]["name"], "phase": (p.get("status") or {}).get("phase"),
                     "ready": any(c.get("type") == "Ready" and c.get("status") == "True"
                                  for c in (p.get("status") or {}).get("conditions") or []),
                     "ip": (p.get("status") or {}).get("podIP"), "node": (p.get("spec") or {}).get("nodeName"),
                     "restarts": sum(int(c.get("restartCount") or 0)
                                     for c in (p.get("status") or {}).get("containerStatuses") or [])}
                    for p in pods]
    data["conditions"] = [{k: c.get(k) for k in ("type", "status", "reason", "message") if c.get(k)}
                          for c in (item.get("status") or {}).get("conditions") or []]
    data["hpa"] = {"metrics": (hpa.get("spec") or {}).get("metrics"),
                   "currentMetrics": (hpa.get("status") or {}).get("currentMetrics"),
                   "conditions": [{k: c.get(k) for k in ("type", "status", "reason", "message") if c.get(k)}
                                  for c in (hpa.get("status") or {}).get("conditions") or []]} if hpa else None
    data["events"] = [{"time": _seconds(e.get("lastTimestamp") or e.get("eventTime") or (e.get("metadata") or {}).get(
        "creationTimestamp")), "type": e.get("type"), "object": f"{(e.get('involvedObject') or {}).get('kind', '').lower()}/"
        f"{(e.get('involvedObject') or {}).get('name')}", "reason": e.get("reason"), "message": e.get("message")}
        for e in events]

    def show(io, d):
        render(io, d)
        io.out("Conditions:")
        for c in d["conditions"] or [{"type": "-", "status": "-"}]:
            io.out(f"  {c.get('type'):<22} {c.get('status'):<6} {c.get('reason') or ''} {c.get('message') or ''}".rstrip())
        io.out("Pods:")
        for p in d["pods"] or [{"name": "(none)", "phase": "", "ready": False, "ip": "", "node": "", "restarts": 0}]:
            io.out(f"  {p['name']:<40} {p['phase'] or '':<10} ready={'yes' if p['ready'] else 'no':<4}"
                   f" restarts={p['restarts']}  {p['ip'] or ''}".rstrip())
        if d["hpa"]:
            io.out("HPA:")
            for c in d["hpa"]["conditions"]:
                io.out(f"  {c.get('type'):<22} {c.get('status'):<6} {c.get('reason') or ''}: {c.get('message') or ''}")
        io.out("Events:")
        for e in d["events"] or [{"time": "", "type": "", "object": "(none)", "reason": "", "message": ""}]:
            io.out(f"  {e['time'] or '':<21} {e['type'] or '':<8} {e['object']:<45} {e['reason'] or ''}: "
                   f"{e['message'] or ''}".rstrip(": "))

    print_object(f.io, data, f.output, name=f"inferenceservice/{name}", render=show)


def _seconds(ts: str | None) -> str | None:
    """An event time to the second (events carry both RFC 3339 and MicroTime stamps)."""
    return ts.split(".")[0].rstrip("Z") + "Z" if ts else ts


@mlctl_command("describe")
@click.argument("name")
@click.pass_obj
def command(f, name):
    """Show a service in full: model, autoscaling, predictor pods, HPA and events."""
    run(f, name)
