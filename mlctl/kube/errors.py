"""Translating Kubernetes API failures into mlctl errors (with DESIGN.md exit codes)."""

from __future__ import annotations

import contextlib

from mlctl.errors import AuthError, Forbidden, MlctlError, NotFound, QuotaExceeded, Unavailable, UsageError


def from_status(status: int, reason: str, message: str, what: str, cluster: str | None = None) -> MlctlError:
    """The mlctl error for an HTTP error status of the Kubernetes API."""
    err = _error(status, reason, message, what, cluster)
    err.status, err.reason, err.body = status, reason, message  # body: the API server's own message
    return err


def _error(status: int, reason: str, message: str, what: str, cluster: str | None) -> MlctlError:
    where = f" on cluster {cluster}" if cluster else ""
    message = message or reason or str(status)
    if status == 401:
        return AuthError(f"{what}{where}: not authenticated", hint="run 'mlctl login'")
    if status == 403 and "exceeded quota" in message:
        return QuotaExceeded(f"{what}{where}: {message}", hint="see 'mlctl quota show' or ask for more")
    if status == 403:
        return Forbidden(f"{what}{where}: {message}")
    if status == 404:
        return NotFound(f"{what}{where}: {message}")
    if status in (400, 409, 422):
        return UsageError(f"{what}{where}: {message}")
    if status in (0, 429) or status >= 500:
        return Unavailable(f"{what}{where}: the API server answered {status} {reason}", hint="retry later")
    return MlctlError(f"{what}{where}: {message}")


def translate(e: Exception, what: str, cluster: str | None = None) -> MlctlError:
    """The mlctl error for an exception raised while doing `what` on a cluster."""
    if isinstance(e, MlctlError):
        return e
    where = f" on cluster {cluster}" if cluster else ""
    if isinstance(e, (ConnectionError, TimeoutError, OSError)):
        return Unavailable(f"{what}{where}: cannot reach the API server", hint="check the network, or retry later")
    return MlctlError(f"{what}{where}: {e}")


@contextlib.contextmanager
def kube_errors(what: str, cluster: str | None = None):
    """Network failures outside a request (a kubeconfig's files, a TLS set-up) as mlctl errors."""
    try:
        yield
    except MlctlError:
        raise
    except OSError as e:
        raise translate(e, what, cluster) from e
