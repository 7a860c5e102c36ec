"""mlctl sandbox s3-secrets: each sandbox user's S3 credentials as Secret mlctl-s3 in their namespaces.

What a production platform's credential provisioning does (docs/storage.md): `mlctl admin sync` makes the
namespaces but does not know the S3 server's secrets, so the sandbox writes them after it. It never prints
them.
"""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f) -> None:
    from mlctl.errors import NotFound
    from mlctl.output import Column, print_list
    from mlctl.sandbox import core, s3

    root = core.state_dir()
    if not (root / "platform.yaml").exists():
        raise NotFound("the sandbox is not set up", hint="run 'mlctl sandbox up'")
    written = s3.write_user_secrets(root)
    if not written:
        f.io.note("no user namespace exists yet: run 'mlctl admin sync' first")
    rows = [{"cluster": c, "namespace": ns, "secret": s3.SECRET_NAME} for c, ns in written]
    if f.output in ("table", "wide"):
        for r in rows:
            f.io.note(f"secret/{r['secret']} written in {r['namespace']} on {r['cluster']}")
        return
    print_list(f.io, rows, [Column("cluster", lambda r: r["cluster"]), Column("namespace", lambda r: r["namespace"])],
               f.output, name=lambda r: f"secret/{r['secret']}")


@mlctl_command("s3-secrets")
@click.pass_obj
def command(f):
    """Write each sandbox user's S3 credentials Secret (mlctl-s3) into their namespaces (after admin sync)."""
    run(f)
