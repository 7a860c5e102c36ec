"""mlctl sandbox login [USER | --admin]: log in to the sandbox as one of its demo users, no password typed.

The sandbox's users and its admin client have fixed, sandbox-only credentials (docs/identity.md); this
command hands them to the ordinary login flows so a newcomer can try mlctl in one line. It never prints
them.
"""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f, user: str | None, admin: bool, write_kubeconfig: bool) -> None:
    from mlctl.commands.auth.login import Options
    from mlctl.commands.auth.login import run as login
    from mlctl.errors import NotFound, UsageError
    from mlctl.sandbox import core, kdc, keycloak, procs

    root = core.state_dir()
    platform_file = root / "platform.yaml"
    if not platform_file.exists():
        raise NotFound("the sandbox is not set up", hint="run 'mlctl sandbox up'")
    state = procs.State.load(root)
    f.flags["platform"] = str(platform_file)
    if admin:
        kc = keycloak.info(state)
        opts = Options(method="client-credentials", username=None, client_id=kc["admin_client_id"],
                       kubeconfig=None, write_kubeconfig=False, secret=kc["admin_client_secret"])
    else:
        users = kdc.info(state)["users"]
        if user not in users:
            raise UsageError(f"{user!r} is not a sandbox user", hint=f"sandbox users: {', '.join(sorted(users))}")
        opts = Options(method="password", username=user, client_id=None, kubeconfig=None,
                       write_kubeconfig=write_kubeconfig, secret=users[user])
    login(f, opts)


@mlctl_command("login")
@click.argument("user", required=False)
@click.option("--admin", is_flag=True, help="Log in as the platform's admin service client (for 'mlctl admin').")
@click.option("--no-kubeconfig", is_flag=True, help="Do not write kubeconfig contexts.")
@click.pass_obj
def command(f, user, admin, no_kubeconfig):
    """Log in to the sandbox as one of its users (alice, bob, carol, dave) or as its admin client."""
    from mlctl.errors import UsageError

    if bool(user) == admin:
        raise UsageError("name one sandbox user, or pass --admin", hint="e.g. mlctl sandbox login alice")
    run(f, user, admin, not no_kubeconfig)
