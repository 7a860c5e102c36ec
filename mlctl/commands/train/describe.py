"""mlctl train describe NAME: the job in full, with its pods and events."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, name: str) -> None:
    from mlctl.commands.train.common import jobs_for, target
    from mlctl.kube.jobs import reason, replicas_summary, state
    from mlctl.output import print_object

    t = target(f)
    jobs = jobs_for(f, t)
    job = jobs.get(name)
    if f.output in ("json", "yaml", "name"):
        print_object(f.io, job, f.output, name=f"{job['kind'].lower()}/{name}")
        return
    pods = jobs.pods(name)
    events = jobs.events(job)
    meta = job["metadata"]
    io = f.io
    io.out(f"Name:       {name}")
    io.out(f"Kind:       {job['kind']}")
    io.out(f"Cluster:    {t.cluster['name']}")
    io.out(f"Namespace:  {t.namespace}")
    io.out(f"Created:    {meta.get('creationTimestamp')}")
    io.out(f"State:      {state(job)}" + (f" ({reason(job)})" if reason(job) else ""))
    io.out(f"Replicas:   {replicas_summary(job)}")
    for key, value in sorted((meta.get("labels") or {}).items()):
        io.out(f"Label:      {key}={value}")
    io.out("Pods:")
    for p in sorted(pods, key=lambda p: p["metadata"]["name"]):
        phase = (p.get("status") or {}).get("phase", "-")
        io.out(f"  {p['metadata']['name']:<40} {phase:<10} {(p.get('spec') or {}).get('nodeName') or '-'}")
    io.out("Events:")
    for e in events[-20:]:
        about = (e.get("involvedObject") or {}).get("name")
        io.out(f"  {e.get('type') or '':<8} {e.get('reason') or '':<20} {about}: {(e.get('message') or '').strip()}")


@mlctl_command("describe")
@click.argument("name")
@click.pass_obj
def command(f, name):
    """Show a job in full: spec, replicas, pods, events."""
    run(f, name)
