"""mlctl serve logs NAME [-f] [--pod POD]: the model server's output (the newest ready predictor pod)."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def pick_pod(pods: list[dict], wanted: str | None) -> str | None:
    if wanted:
        return wanted if any(p["metadata"]["name"] == wanted for p in pods) else None
    ready = [p for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                    for c in (p.get("status") or {}).get("conditions") or [])]
    chosen = (ready or pods)[-1:] if pods else []
    return chosen[0]["metadata"]["name"] if chosen else None


def run(f, name: str, follow: bool, pod: str | None) -> None:
    from mlctl.commands.serve.common import get_service, predictor_pods, target
    from mlctl.errors import NotFound
    from mlctl.kube.kinds import kind
    from mlctl.output import stream_lines

    t = target(f)
    kube = f.kube(t.cluster["name"])
    get_service(f, t, name)
    chosen = pick_pod(predictor_pods(kube, t.namespace, name), pod)
    if not chosen:
        raise NotFound(f"inferenceservice {name} has {'no pod ' + pod if pod else 'no predictor pods yet'}",
                       hint=f"see 'mlctl serve describe {name}'")
    stream_lines(f.io, kube.lines(kind("Pod").path(t.namespace, chosen, "log"),
                                  query={"follow": "true" if follow else None, "container": "kserve-container"},
                                  what=f"reading logs of pod {chosen}"),
                 "stopped following logs; the service keeps running")


@mlctl_command("logs")
@click.argument("name")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines.")
@click.option("--pod", metavar="POD", help="Which predictor pod (default: the newest ready one).")
@click.pass_obj
def command(f, name, follow, pod):
    """Print (or follow) the model server's logs."""
    run(f, name, follow, pod)
