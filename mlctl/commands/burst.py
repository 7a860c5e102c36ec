"""mlctl burst SPEC: the same job as `mlctl train SPEC`, sent to another cluster, or with `--cluster auto` to
the first allowed cluster where it fits now (on-premise first, then the cheapest); says where and why."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from mlctl.cli import mlctl_command


@dataclass
class Options:
    spec: str
    cluster: str = "auto"
    max_cost: float | None = None
    sets: list[str] = field(default_factory=list)
    check: bool = False
    dry_run: str = "none"
    wait: bool = False
    follow: bool = False
    timeout: float | None = None
    output: str = "table"


def candidates(clusters: list[dict]) -> list[dict]:
    """On-premise clusters first (they cost nothing extra), then by GPU-hour cost; the document's order
    breaks ties."""
    return sorted(clusters, key=lambda c: (c.get("provider") != "on-prem", float(c.get("gpuHourCost") or 0)))


def _cost_problem(spec, cluster: dict, max_cost: float | None) -> str | None:
    from mlctl.commands.train.preflight import hourly_cost

    cost = hourly_cost(spec, cluster)
    if max_cost is None or cost <= max_cost:
        return None
    gpus = spec.workers * spec.resources.gpus
    return (f"{spec.name} costs {cost:.2f}/hour on {cluster['name']} ({gpus} GPUs × "
            f"{float(cluster.get('gpuHourCost') or 0):.2f} per GPU-hour), more than --max-cost {max_cost:g}")


def _consider(f, text: str, filename: str, opts: Options, cluster: dict, t, explicit: bool):
    """(spec, decision, jobs, why) when the job may go to cluster now; raises (explicit) or returns the
    reason it may not as a str."""
    from mlctl.commands.train import preflight
    from mlctl.commands.train.common import jobs_for
    from mlctl.errors import Forbidden, MlctlError, NotFound, QuotaExceeded, UsageError
    from mlctl.jobs.check import check_fit
    from mlctl.jobs.spec import load_spec

    name = cluster["name"]
    spec = load_spec(text, filename, opts.sets, cluster=name)
    try:
        warnings = check_fit(spec, cluster)
        problem = _cost_problem(spec, cluster, opts.max_cost)
        if problem:
            raise QuotaExceeded(problem, hint="raise --max-cost, or choose a cheaper cluster")
        jobs = jobs_for(f, t.__class__(cluster, t.namespace, t.user))
        decision, fit = preflight.run_checks(f, spec, cluster, t, jobs, "burst")
        if fit.ok is False and not explicit:
            raise QuotaExceeded(fit.why)
    except (Forbidden, QuotaExceeded, NotFound, UsageError) as e:
        if explicit:
            raise
        return e
    except MlctlError:
        raise
    for warning in warnings:
        f.io.warn(warning)
    if fit.ok is False:
        f.io.warn(f"{spec.name} will wait on {name}: {fit.why}")
    why = "the policy allows it, it fits your quota" + (f", {fit.why}" if fit.ok else f"; {fit.why}")
    return spec, decision, jobs, why


def run(f, opts: Options) -> None:
    from mlctl.commands.train import preflight
    from mlctl.commands.train.common import read_spec_text, target
    from mlctl.errors import Forbidden, QuotaExceeded
    from mlctl.jobs.spec import load_spec

    text, filename = read_spec_text(opts.spec)
    if opts.cluster != "auto":
        cluster = f.platform.cluster(opts.cluster)
        # the price needs no server: a job over --max-cost fails before any login or request
        problem = _cost_problem(load_spec(text, filename, opts.sets, cluster=cluster["name"]), cluster, opts.max_cost)
        if problem:
            raise QuotaExceeded(problem, hint="raise --max-cost, or choose a cheaper cluster")
        chosen = [cluster]
    else:
        chosen = candidates(f.platform.clusters)
    t = target(f, chosen[0]["name"])
    passed: list[tuple[str, Exception]] = []
    for cluster in chosen:
        result = _consider(f, text, filename, opts, cluster, t, explicit=opts.cluster != "auto")
        if isinstance(result, Exception):
            f.io.note(f"{cluster['name']}: passed over: {result.message}")
            passed.append((cluster["name"], result))
            continue
        spec, decision, jobs, why = result
        where = f"cluster {cluster['name']}" + (" (auto)" if opts.cluster == "auto" else "")
        f.io.note(f"{spec.name} goes to {where}: {why}")
        if opts.check:
            return
        preflight.submit(f, spec, cluster, target(f, cluster["name"], t.user), jobs, decision,
                         dry_run=opts.dry_run, output=opts.output, follow=opts.follow, wait=opts.wait,
                         timeout=opts.timeout, command="burst")
        return
    summary = "; ".join(f"{name}: {e.message}" for name, e in passed)
    if all(isinstance(e, Forbidden) for _, e in passed):
        raise Forbidden(f"no cluster is open to this job: {summary}",
                        hint="'mlctl clusters explain NAME SPEC' shows the policy's rule")
    raise QuotaExceeded(f"no allowed cluster can take this job now: {summary}",
                        hint="wait for room, lower the job's size, or raise --max-cost")


@mlctl_command("burst")
@click.argument("spec")
@click.option("--max-cost", type=float, metavar="PER_HOUR",
              help="Refuse clusters where the job would cost more than this per hour (all its GPUs).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a spec field (repeatable).")
@click.option("--check", is_flag=True, help="Only choose the cluster and check the job; create nothing.")
@click.option("--dry-run", type=click.Choice(["none", "server"]), default="none", show_default=True,
              help="server: let the chosen API server validate the job without saving it.")
@click.option("--wait", is_flag=True, help="Wait until the job succeeds or fails.")
@click.option("--follow", "-f", is_flag=True, help="Show live status, then stream the lead replica's logs.")
@click.option("--timeout", type=float, help="Give up waiting after this many seconds (exit 7).")
@click.pass_obj
def command(f, spec, max_cost, sets, check, dry_run, wait, follow, timeout):
    """Send a training job to another cluster, or to the best one now (--cluster auto).

    --cluster NAME sends it there; --cluster auto (the default) takes the first cluster the policy allows where
    it fits your quota and the free GPUs now, on-premise first, then the cheapest.

    \b
    mlctl burst 3dgan.yaml --cluster gcp --follow
    mlctl burst 3dgan.yaml --cluster auto --max-cost 400
    """
    # the global --cluster names the target here; the configured default cluster does not (auto is the default)
    cluster = f.flags.get("cluster") or "auto"
    run(f, Options(spec=spec, cluster=cluster, max_cost=max_cost, sets=list(sets), check=check, dry_run=dry_run,
                   wait=wait, follow=follow, timeout=timeout, output=f.output))
