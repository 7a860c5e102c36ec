"""What the train verbs share: reading a spec, finding the user's namespace on a cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple


class Target(NamedTuple):
    cluster: dict
    namespace: str
    user: str


def read_spec_text(path: str) -> tuple[str, str]:
    from mlctl.errors import NotFound, UsageError

    if path == "-":
        return sys.stdin.read(), "<stdin>"
    p = Path(path)
    try:
        return p.read_text(), p.name
    except FileNotFoundError as e:
        raise NotFound(f"spec file {path} does not exist") from e
    except IsADirectoryError as e:
        raise UsageError(f"{path} is a directory, not a spec file") from e
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is not a text file") from e
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from e


def current_user(f) -> str:
    from mlctl.auth.session import cache_for
    from mlctl.errors import AuthError

    session = cache_for(f).session()
    if not session or not session.get("user"):
        raise AuthError("not logged in", hint="run 'mlctl login'")
    return session["user"]


def user_or_placeholder(f) -> str:
    """The logged-in user, else "user": rendering needs no login (e.g. --platform FILE)."""
    from mlctl.auth.session import cache_for

    session = cache_for(f).session() if f.config.platform_name() else None
    return (session or {}).get("user") or "user"


def target(f, cluster: str | None = None, user: str | None = None) -> Target:
    from mlctl.tenancy import user_namespace

    entry = f.platform.cluster(cluster or f.config.get("cluster"))
    user = user or current_user(f)
    return Target(entry, f.config.get("namespace") or user_namespace(user), user)


def jobs_for(f, t: Target):
    from mlctl.kube.jobs import Jobs

    return Jobs(f.kube(t.cluster["name"]), t.namespace, t.cluster["name"])
