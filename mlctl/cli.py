"""The root command: global options and the table of subcommands, loaded only when invoked.

`mlctl --help` reads summaries from the table below, so it imports no subcommand module.
"""

from __future__ import annotations

import importlib

import click

from mlctl import __version__
from mlctl.formats import OUTPUT_FORMATS

# name -> ("module:attribute", one-line summary). Keep summaries in sync with each command's docstring
# (a test checks it).
COMMANDS: dict[str, tuple[str, str]] = {
    "admin": ("mlctl.commands.admin:group", "Platform administration: tenancy sync from Keycloak, install, quota requests."),
    "artifacts": ("mlctl.commands.artifacts:group",
                  "Job outputs in S3: list, download, upload, share and delete; per-epoch metrics."),
    "burst": ("mlctl.commands.burst:command",
              "Send a training job to another cluster, or to the best one now (--cluster auto)."),
    "clusters": ("mlctl.commands.clusters:group",
                 "The platform's clusters: access, free GPUs, cost; choose the default; explain the policy."),
    "login": ("mlctl.commands.auth.login:command",
              "Log in to the platform (Kerberos, device flow, password or client credentials)."),
    "logout": ("mlctl.commands.auth.logout:command", "Log out: revoke the session at Keycloak and remove cached tokens."),
    "token": ("mlctl.commands.auth.token:command",
              "Print a token for --cluster as a kubectl ExecCredential (used by mlctl-<cluster> contexts)."),
    "whoami": ("mlctl.commands.auth.whoami:command", "Show who you are logged in as, your groups and when tokens expire."),
    "completion": ("mlctl.commands.completion:command", "Print the shell completion script for bash, zsh or fish."),
    "notebook": ("mlctl.commands.notebook:group",
                 "Notebook servers (JupyterLab) on vGPU/GPU/CPU pools, with your login inside."),
    "quota": ("mlctl.commands.quota:group", "Your quota: usage, where it comes from, and requests for more."),
    "sandbox": ("mlctl.commands.sandbox:group", "Run the whole platform locally, from real upstream servers."),
    "serve": ("mlctl.commands.serve:group", "Serve trained models with KServe: create, predict, load-test, autoscale."),
    "train": ("mlctl.commands.train.group:group", "Submit distributed training jobs from a short spec and follow them."),
    "version": ("mlctl.commands.version:command", "Print mlctl's version."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use from a {name: (import path, summary)} table."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            path, _ = self.lazy[cmd_name]
            module_name, attr = path.split(":")
            command = getattr(importlib.import_module(module_name), attr)
            self.commands[cmd_name] = command
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy:  # the table's summary, loaded or not: the help reads the same either way
                rows.append((name, self.lazy[name][1]))
            else:
                cmd = self.commands.get(name) or super().get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(self, ctx, args):
        # Unknown subcommands get a hint listing the close ones, as kubectl and gh do.
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as e:
            if args and not args[0].startswith("-"):
                import difflib

                close = difflib.get_close_matches(args[0], self.list_commands(ctx), n=3)
                if close:
                    e.message = f"{e.message.rstrip('.')}; did you mean {' or '.join(close)}?"
            raise


def _remember(ctx: click.Context, param: click.Parameter, value):
    """Store a global option's value where the Factory's Config finds it (inner commands win)."""
    if value is None or value == () or (param.name in ("verbose",) and value == 0):
        return value
    if isinstance(value, bool) and not value:
        return value
    factory = ctx.find_root().obj
    if factory is not None:
        factory.flags[param.name] = value
        if param.name == "no_color":
            factory.io.disable_color()
    return value


def _complete_cluster(ctx, param, incomplete):
    from mlctl.config import Config

    try:
        names = Config().platform().cluster_names()
    except Exception:  # completion must never print an error into the shell
        return []
    return [n for n in names if n.startswith(incomplete)]


def _complete_platform(ctx, param, incomplete):
    from mlctl.config import Config

    try:
        names = Config().platform_names()
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


def global_options(f):
    """The options every mlctl command accepts, before or after the subcommand (like kubectl's)."""
    opts = [
        click.option("--platform", metavar="NAME|FILE", callback=_remember, expose_value=False,
                     shell_complete=_complete_platform, help="Platform profile, or a platform document file [env MLCTL_PLATFORM]."),
        click.option("--cluster", metavar="NAME", callback=_remember, expose_value=False,
                     shell_complete=_complete_cluster, help="Cluster to act on [env MLCTL_CLUSTER]."),
        click.option("-n", "--namespace", metavar="NS", callback=_remember, expose_value=False,
                     help="Namespace (default: your own) [env MLCTL_NAMESPACE]."),
        click.option("-o", "--output", type=click.Choice(OUTPUT_FORMATS), callback=_remember,
                     expose_value=False, help="Output format [env MLCTL_OUTPUT]."),
        click.option("--no-color", is_flag=True, default=None, callback=_remember, expose_value=False,
                     help="Disable colour (also NO_COLOR)."),
        click.option("-v", "--verbose", count=True, callback=_remember, expose_value=False,
                     help="More progress detail on stderr; repeat for more."),
        click.option("--debug", is_flag=True, default=None, callback=_remember, expose_value=False,
                     help="Show debug logs and tracebacks (secrets redacted)."),
        click.option("-y", "--yes", is_flag=True, default=None, callback=_remember, expose_value=False,
                     help="Answer yes to confirmations (needed without a terminal)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def lazy_group(name: str, table: dict[str, tuple[str, str]], help: str):
    """A noun's group (`mlctl clusters ...`) whose verbs load lazily from table."""
    return LazyGroup(name=name, lazy=table, help=help, context_settings=CONTEXT_SETTINGS,
                     params=_option_params())


def _option_params() -> list[click.Parameter]:
    @global_options
    def _carrier():
        pass

    return list(reversed(_carrier.__click_params__))


def mlctl_command(name: str, **kwargs):
    """click.command with mlctl's global options and context settings."""

    def decorate(f):
        return click.command(name, context_settings=CONTEXT_SETTINGS, **kwargs)(global_options(f))

    return decorate


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="mlctl", message="%(prog)s %(version)s")
@global_options
def cli():
    """mlctl: train, serve and explore machine-learning models on the platform's Kubernetes clusters.

    \b
    Start here:
      mlctl login --platform URL     log in once (Kerberos, device flow or password)
      mlctl train 3dgan.yaml         submit a distributed training job
      mlctl sandbox up               run the whole platform on this machine
    """
