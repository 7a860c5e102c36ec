"""mlctl sandbox down."""

from __future__ import annotations

from dataclasses import dataclass

import click

from mlctl.cli import mlctl_command


@dataclass
class Options:
    purge: bool


def run(f, opts: Options) -> None:
    from mlctl.sandbox import core, runner

    stopped = runner.down(core.state_dir(), purge=opts.purge)
    f.io.note(f"stopped {len(stopped)} processes" + (" and removed the sandbox's data" if opts.purge else ""))


@mlctl_command("down")
@click.option("--purge", is_flag=True, help="Also delete the sandbox's data (etcd, Keycloak, logs).")
@click.pass_obj
def command(f, purge):
    """Stop every process the sandbox started."""
    run(f, Options(purge=purge))
