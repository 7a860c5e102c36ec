"""mlctl sandbox env."""

from __future__ import annotations

import shlex

import click

from mlctl.cli import mlctl_command


def run(f) -> None:
    from mlctl.sandbox import core, runner

    env = runner.env(core.state_dir())
    if f.output in ("json", "yaml"):
        from mlctl.output import print_object

        print_object(f.io, env, f.output)
        return
    for key, value in env.items():
        f.io.out(f"export {key}={shlex.quote(str(value))}")


@mlctl_command("env")
@click.pass_obj
def command(f):
    """Print shell exports for using the sandbox (eval it)."""
    run(f)
