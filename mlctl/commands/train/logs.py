"""mlctl train logs NAME [-f] [--replica TYPE-INDEX]: a replica's logs (the lead replica by default)."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, name: str, follow: bool, replica: str | None) -> None:
    from mlctl.commands.train.common import jobs_for, target
    from mlctl.commands.train.follow import lead_pod
    from mlctl.errors import NotFound
    from mlctl.kube.jobs import replica_of
    from mlctl.output import stream_lines

    t = target(f)
    jobs = jobs_for(f, t)
    job = jobs.get(name)
    if replica:
        rtype, _, index = replica.lower().rpartition("-")
        if not rtype or not index.isdigit():
            rtype, index = replica.lower(), "0"
        pods = [p for p in jobs.pods(name) if replica_of(p) == (rtype, index)]
        if not pods:
            raise NotFound(f"job {name} has no replica {replica}", hint="replicas look like chief-0, worker-3")
        pod = pods[0]["metadata"]["name"]
    else:
        pod = lead_pod(jobs, job)
    if not pod:
        raise NotFound(f"job {name} has no pods yet", hint=f"see 'mlctl train events {name}'")
    stream_lines(f.io, jobs.stream_logs(pod, follow=follow), "stopped following logs; the job keeps running")


@mlctl_command("logs")
@click.argument("name")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines.")
@click.option("--replica", metavar="TYPE-INDEX", help="Which replica, e.g. worker-1 (default: chief/master).")
@click.pass_obj
def command(f, name, follow, replica):
    """Print (or follow) the logs of a job's replica."""
    run(f, name, follow, replica)
