"""mlctl train SPEC: check, render and submit a job spec; optionally wait for it or follow it."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from mlctl.cli import mlctl_command


@dataclass
class Options:
    spec: str
    sets: list[str] = field(default_factory=list)
    check: bool = False
    dry_run: str = "none"
    wait: bool = False
    follow: bool = False
    timeout: float | None = None
    output: str = "table"


def run(f, opts: Options) -> None:
    from mlctl.commands.train import preflight
    from mlctl.commands.train.common import jobs_for, read_spec_text, target, user_or_placeholder
    from mlctl.jobs.check import check_fit
    from mlctl.jobs.render import render
    from mlctl.jobs.spec import load_spec
    from mlctl.output import to_yaml
    from mlctl.storage.layout import new_run_id

    text, filename = read_spec_text(opts.spec)
    cluster = f.platform.cluster(f.config.get("cluster"))
    spec = load_spec(text, filename, opts.sets, cluster=cluster["name"])
    # Capacity first: it needs no server, so an impossible request fails before any login or request.
    for warning in check_fit(spec, cluster):
        f.io.warn(warning)
    run_id = new_run_id()  # a job submitted again writes beside its last run (docs/artifacts.md)
    if opts.dry_run == "client":
        t = target(f, cluster["name"], user=user_or_placeholder(f))
        for obj in render(spec, cluster, user=t.user, namespace=t.namespace, s3=f.platform.section("s3"),
                          run=run_id):
            f.io.stdout.write("---\n" + to_yaml(obj))
        return
    t = target(f, cluster["name"])
    jobs = jobs_for(f, t)
    # The policy, quota, PVCs and free room, read at once; nothing is created before the policy allowed it
    # (a deny is exit 5, no answer exit 7).
    decision, fit = preflight.run_checks(f, spec, cluster, t, jobs, "train",
                                         skip=preflight.skip_checks(f, opts.check))
    if fit is not None and fit.ok is False:
        f.io.warn(f"{spec.name} will wait on {cluster['name']}: {fit.why}")
    if opts.check:
        f.io.note(f"{spec.name} fits cluster {cluster['name']} and the quota of namespace {t.namespace}")
        return
    preflight.submit(f, spec, cluster, t, jobs, decision, dry_run=opts.dry_run, output=opts.output,
                     follow=opts.follow, wait=opts.wait, timeout=opts.timeout, command="train", run=run_id)


@mlctl_command("submit")
@click.argument("spec")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a spec field (repeatable).")
@click.option("--check", is_flag=True, help="Only check that the job fits the pool and your quota.")
@click.option("--dry-run", type=click.Choice(["none", "client", "server"]), default="none", show_default=True,
              help="client: print the objects; server: let the API server validate them without saving.")
@click.option("--wait", is_flag=True, help="Wait until the job succeeds or fails.")
@click.option("--follow", "-f", is_flag=True, help="Show live status, then stream the lead replica's logs.")
@click.option("--timeout", type=float, help="Give up waiting after this many seconds (exit 7).")
@click.pass_obj
def command(f, spec, sets, check, dry_run, wait, follow, timeout):
    """Submit a job spec (same as 'mlctl train SPEC').

    \b
    mlctl train 3dgan.yaml --cluster gcp --follow
    mlctl train 3dgan.yaml --set workers=2 --set resources.gpus=1 --check
    """
    run(f, Options(spec=spec, sets=list(sets), check=check, dry_run=dry_run, wait=wait, follow=follow,
                   timeout=timeout, output=f.output))
