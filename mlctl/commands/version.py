"""mlctl version."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


@mlctl_command("version")
@click.pass_obj
def command(f):
    """Print mlctl's version."""
    import platform

    from mlctl import __version__

    if f.output in ("json", "yaml"):
        from mlctl.output import print_object

        print_object(f.io, {"mlctl": __version__, "python": platform.python_version()}, f.output)
    else:
        f.io.out(f"mlctl {__version__}")
