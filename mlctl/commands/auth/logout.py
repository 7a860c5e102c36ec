"""mlctl logout: end the SSO session at Keycloak and forget every cached token."""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command


def run(f) -> None:
    from mlctl.auth import session as sess
    from mlctl.errors import MlctlError

    cache = sess.cache_for(f)
    session = cache.session()
    if not session:
        f.io.note("not logged in")
        return
    revoked = False
    if session.get("refresh_token"):
        try:
            sess.sso_for(f).logout(session["refresh_token"])
            revoked = True
        except MlctlError as e:
            f.io.warn(f"could not end the session at Keycloak ({e.message}); removing the local tokens anyway")
    cache.clear()
    f.io.note(f"logged out {session.get('user')}" + (" (session revoked)" if revoked else ""))


@mlctl_command("logout")
@click.pass_obj
def command(f):
    """Log out: revoke the session at Keycloak and remove cached tokens."""
    run(f)
