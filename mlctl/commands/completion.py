"""mlctl completion SHELL: the completion script, generated from the command tree."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command

SHELLS = ("bash", "zsh", "fish")


def script(shell: str) -> str:
    from click.shell_completion import get_completion_class

    from mlctl.cli import cli

    cls = get_completion_class(shell)
    return cls(cli, {}, "mlctl", "_MLCTL_COMPLETE").source().rstrip("\n") + "\n"


@mlctl_command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_obj
def command(f, shell):
    """Print the shell completion script for bash, zsh or fish.

    \b
    bash:  source <(mlctl completion bash)
    zsh:   mlctl completion zsh > "${fpath[1]}/_mlctl"
    fish:  mlctl completion fish > ~/.config/fish/completions/mlctl.fish
    """
    f.io.stdout.write(script(shell))
