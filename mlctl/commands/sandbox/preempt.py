"""mlctl sandbox preempt: take preemptible nodes away, as a cloud reclaims spot VMs, and bring them back."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, nodes: list[str], count: int | None, return_after: float) -> None:
    from mlctl.errors import UsageError
    from mlctl.sandbox import core
    from mlctl.sandbox.preempt import preempt
    from mlctl.sandbox.procs import SandboxError

    cluster = f.flags.get("cluster") or "gcp"
    if bool(nodes) == bool(count):
        raise UsageError("name nodes or pass --random N", hint="e.g. mlctl sandbox preempt --cluster gcp --random 3")
    try:
        done = preempt(core.state_dir(), cluster, nodes or None, count, return_after)
    except SandboxError as e:
        raise UsageError(str(e), hint="'kubectl get nodes -l mlctl.io/pool' lists the sandbox's nodes") from e
    for name in done:
        f.io.out(f"node/{name}")
    back = f"they come back after {return_after:g} s" if return_after > 0 else "'mlctl sandbox up' brings them back"
    f.io.note(f"preempted {len(done)} node(s) of {cluster}; their pods were terminated; {back}")


@mlctl_command("preempt")
@click.argument("nodes", nargs=-1)
@click.option("--random", "count", type=click.IntRange(min=1), metavar="N", help="Preempt N random preemptible nodes.")
@click.option("--return-after", type=float, default=30.0, show_default=True, metavar="S",
              help="Bring replacement nodes (same names) back after S seconds; 0: at the next 'sandbox up'.")
@click.pass_obj
def command(f, nodes, count, return_after):
    """Preempt sandbox nodes (default cluster gcp): their pods are terminated, the nodes come back later."""
    run(f, list(nodes), count, return_after)
