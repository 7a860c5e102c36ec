"""mlctl notebook open NAME: print the notebook's URL; on a desktop terminal, also open it in a browser."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def desktop(env: dict) -> bool:
    """Whether a browser can be shown: a display on Linux/BSD, always on macOS and Windows."""
    import sys

    if sys.platform in ("darwin", "win32"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def run(f, name: str, browser: bool) -> None:
    from mlctl import notebooks as N
    from mlctl.commands.notebook.common import get_notebook, target
    from mlctl.errors import NotFound
    from mlctl.output import print_object

    t = target(f)
    nb = get_notebook(f, t, name)
    address = N.url(f.platform.section("gateway"), t.namespace, name)
    if not address:
        raise NotFound(f"platform {f.platform.name} has no gateway, so notebooks have no URL",
                       hint="the platform document needs gateway.url")
    state = N.state(nb)
    if state != "Ready":
        hint = f"'mlctl notebook start {name}'" if N.stopped(nb) else f"'mlctl notebook status {name}'"
        f.io.warn(f"notebook {name} is {state}, not Ready yet (see {hint})")
    if f.output in ("json", "yaml"):
        print_object(f.io, {"name": name, "url": address, "state": state}, f.output)
    else:
        f.io.out(address)
    # Only a person at a desktop gets a browser: never in a pipe, a test or over ssh without a display.
    if browser and f.io.stdout_tty and desktop(f.env):
        import webbrowser

        webbrowser.open(address)


@mlctl_command("open")
@click.argument("name")
@click.option("--browser/--no-browser", default=True, show_default=True,
              help="Open a browser when on a desktop terminal.")
@click.pass_obj
def command(f, name, browser):
    """Print a notebook's URL (and open it in a browser on a desktop)."""
    run(f, name, browser)
