"""mlctl whoami: who the cached session says you are, and when each credential expires."""

from __future__ import annotations

import time

import click

from mlctl.cli import mlctl_command


def _left(expires_at: float | None) -> str:
    if not expires_at:
        return "-"
    left = int(expires_at - time.time())
    return "expired" if left <= 0 else f"{left // 60}m{left % 60:02d}s"


def run(f) -> None:
    from mlctl.auth import kerberos
    from mlctl.auth import session as sess
    from mlctl.errors import AuthError
    from mlctl.output import print_object

    cache = sess.cache_for(f)
    session = cache.session()
    if not session:
        raise AuthError("not logged in", hint="run 'mlctl login'")
    clusters = {name: {"expires_at": t.get("expires_at")} for name, t in cache.cluster_tokens().items()}
    info = {
        "user": session.get("user"),
        "groups": session.get("groups", []),
        "method": session.get("method"),
        "platform": f.config.platform_name() or f.platform.name,
        "session_expires_at": session.get("refresh_expires_at") or session.get("expires_at"),
        "clusters": clusters,
        "kerberos": kerberos.ticket(),
    }

    def render(io, data):
        io.out(f"User:      {data['user']}")
        io.out(f"Groups:    {', '.join(data['groups']) or '-'}")
        io.out(f"Platform:  {data['platform']} (login: {data['method']}, session {_left(data['session_expires_at'])})")
        for name, c in sorted(data["clusters"].items()):
            io.out(f"Cluster:   {name:<10} token {_left(c['expires_at'])}")
        k = data["kerberos"]
        io.out(f"Kerberos:  {k['principal']} ({_left(k['expires_at'])})" if k else "Kerberos:  no ticket")

    print_object(f.io, info, f.output, name=f"user/{info['user']}", render=render)


@mlctl_command("whoami")
@click.pass_obj
def command(f):
    """Show who you are logged in as, your groups and when tokens expire."""
    run(f)
