"""mlctl train status NAME: a job's state and replica counts."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, name: str) -> None:
    from mlctl.commands.train.common import jobs_for, target
    from mlctl.kube.jobs import reason, replica_counts, restarts, state, unschedulable
    from mlctl.output import print_object

    t = target(f)
    jobs = jobs_for(f, t)
    job = jobs.get(name)
    pods = jobs.pods(name)
    info = {"name": name, "kind": job["kind"], "cluster": t.cluster["name"], "namespace": t.namespace,
            "state": state(job), "reason": reason(job), "replicas": replica_counts(job),
            "restarts": restarts(job, pods), "unschedulable": unschedulable(pods)}

    def render(io, data):
        io.out(f"{data['kind'].lower()}/{name} on {data['cluster']}: {data['state']}"
               + (f" ({data['reason']})" if data["reason"] else ""))
        for rtype, c in data["replicas"].items():
            io.out(f"  {rtype:<8} desired {c['desired']}  running {c['active']}  succeeded {c['succeeded']}"
                   f"  failed {c['failed']}")
        r = data["restarts"]
        if r["recreated"] or r["restarting"]:
            io.out(f"  restarted: {len(r['recreated'])} replica(s) recreated after a lost node or a retryable "
                   f"failure: {', '.join(r['recreated']) or '-'}" + (f"; last: {r['restarting']}" if r["restarting"] else ""))
        for pod, why in sorted(data["unschedulable"].items()):
            io.out(f"  pod {pod} cannot be scheduled: {why}")

    print_object(f.io, info, f.output, name=f"{job['kind'].lower()}/{name}", render=render)


@mlctl_command("status")
@click.argument("name")
@click.pass_obj
def command(f, name):
    """Show a job's state and replicas."""
    run(f, name)
