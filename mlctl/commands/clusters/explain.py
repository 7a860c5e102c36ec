"""mlctl clusters explain NAME [SPEC]: the cluster policy's decision for you on NAME, the rule behind it, and,
with a job spec, the decision for that job's request (GPUs, pools, preemptible)."""

from __future__ import annotations

import click

from mlctl.cli import _complete_cluster, mlctl_command


def _rule_text(rule: dict) -> list[str]:
    if not rule:
        return ["the policy does not name this cluster: nobody may use it"]
    lines = [f"open to groups: {', '.join(rule.get('groups') or []) or 'none'}"]
    if rule.get("users"):
        lines.append(f"open to users: {', '.join(rule['users'])}")
    gpus = rule.get("maxGpusPerJob")
    lines.append(f"GPUs per job: at most {gpus}" if gpus is not None else "GPUs per job: no limit beyond quota")
    pools = rule.get("pools")
    lines.append(f"pools: {', '.join(pools)}" if pools else "pools: any")
    lines.append("preemptible capacity only" if rule.get("preemptibleOnly") else "any capacity")
    return lines


def run(f, name: str, spec_path: str | None, sets: list[str]) -> None:
    from mlctl import audit
    from mlctl.commands.train.common import current_user
    from mlctl.commands.train.preflight import groups, hourly_cost, policy_request
    from mlctl.output import print_object

    cluster = f.platform.cluster(name)
    user = current_user(f)
    mine = groups(f)
    report: dict = {"cluster": cluster["name"], "user": user, "groups": mine,
                    "rule": f.opa().limits(cluster["name"])}
    decision = f.opa().decide(user, mine, cluster["name"])
    audit.decision(f, decision, user=user, groups=mine, job=None, request=None, command="clusters explain")
    report["decision"] = {"allow": decision.allow, "rule": decision.rule, "reasons": list(decision.reasons),
                          "id": decision.id}
    if spec_path:
        from mlctl.commands.train.common import read_spec_text
        from mlctl.jobs.spec import load_spec

        text, filename = read_spec_text(spec_path)
        spec = load_spec(text, filename, sets, cluster=cluster["name"])
        request = policy_request(spec, cluster)
        job = f.opa().decide(user, mine, cluster["name"], request)
        audit.decision(f, job, user=user, groups=mine, job=spec.name, request=request, command="clusters explain")
        report["job"] = {"name": spec.name, "request": request, "costPerHour": round(hourly_cost(spec, cluster), 2),
                         "allow": job.allow, "rule": job.rule, "reasons": list(job.reasons), "id": job.id}

    def render(io, r):
        d = r["decision"]
        io.out(f"cluster {r['cluster']} for {r['user']} (groups: {', '.join(r['groups']) or 'none'}): "
               f"{'allowed' if d['allow'] else 'denied'}")
        for reason in d["reasons"]:
            io.out(f"  because {reason}")
        io.out("rule:")
        for line in _rule_text(r["rule"]):
            io.out(f"  {line}")
        if "job" in r:
            j = r["job"]
            req = j["request"]
            io.out(f"job {j['name']}: {req['gpus']} GPUs in pool {', '.join(req['pools'])}"
                   f"{', preemptible' if req['preemptible'] else ''}, about {j['costPerHour']:.2f}/hour: "
                   f"{'allowed' if j['allow'] else 'denied'}")
            for reason in j["reasons"]:
                io.out(f"  because {reason}")
        ids = [x for x in (d.get("id"), (r.get("job") or {}).get("id")) if x]
        if ids:
            io.out(f"policy decision: {', '.join(ids)}")

    print_object(f.io, report, f.output, name=f"cluster/{cluster['name']}", render=render)


@mlctl_command("explain")
@click.argument("name", shell_complete=_complete_cluster)
@click.argument("spec", required=False)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a spec field (repeatable).")
@click.pass_obj
def command(f, name, spec, sets):
    """Explain the cluster policy's decision for you on a cluster, and for a job spec's request."""
    run(f, name, spec, list(sets))
