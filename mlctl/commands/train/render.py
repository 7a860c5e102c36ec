"""mlctl train render SPEC: the Kubernetes objects a spec becomes on a cluster (needs no server)."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, spec_path: str, sets: list[str], user: str | None) -> None:
    from mlctl.commands.train.common import read_spec_text, user_or_placeholder
    from mlctl.jobs.render import render
    from mlctl.jobs.spec import load_spec
    from mlctl.output import to_json, to_yaml
    from mlctl.tenancy import user_namespace

    text, filename = read_spec_text(spec_path)
    cluster = f.platform.cluster(f.config.get("cluster"))
    spec = load_spec(text, filename, sets, cluster=cluster["name"])
    user = user or user_or_placeholder(f)
    namespace = f.config.get("namespace") or user_namespace(user)
    objects = render(spec, cluster, user=user, namespace=namespace, s3=f.platform.section("s3"))
    if f.output == "json":
        f.io.out(to_json(objects if len(objects) > 1 else objects[0]))
    elif f.output == "name":
        for obj in objects:
            f.io.out(f"{obj['kind'].lower()}/{obj['metadata']['name']}")
    else:
        for obj in objects:
            f.io.stdout.write("---\n" + to_yaml(obj))


@mlctl_command("render")
@click.argument("spec")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a spec field (repeatable).")
@click.option("--user", help="Render as this user (default: the logged-in user).")
@click.pass_obj
def command(f, spec, sets, user):
    """Print the Kubernetes objects a spec becomes on a cluster."""
    run(f, spec, list(sets), user)
