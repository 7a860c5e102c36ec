"""Translating Kubernetes API failures into mlctl errors (with DESIGN.md exit codes)."""

from __future__ import annotations

import contextlib
import json

from mlctl.errors import AuthError, Forbidden, MlctlError, NotFound, QuotaExceeded, Unavailable, UsageError


def _status_message(e) -> str:
    try:
        body = json.loads(e.body or "{}")
        return str(body.get("message") or e.reason)
    except (ValueError, TypeError):
        return str(getattr(e, "reason", "") or e)


def from_status(status: int, reason: str, message: str, what: str, cluster: str | None = None) -> MlctlError:
    """The mlctl error for an HTTP error status of the Kubernetes API."""
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
    import urllib3
    from kubernetes.client.exceptions import ApiException

    if isinstance(e, ApiException):
        return from_status(e.status, str(e.reason or ""), _status_message(e), what, cluster)
    where = f" on cluster {cluster}" if cluster else ""
    if isinstance(e, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError)):
        return Unavailable(f"{what}{where}: cannot reach the API server", hint="check the network, or retry later")
    return MlctlError(f"{what}{where}: {e}")


@contextlib.contextmanager
def kube_errors(what: str, cluster: str | None = None):
    try:
        yield
    except MlctlError:
        raise
    except Exception as e:  # noqa: BLE001 - everything from the client is translated here
        import urllib3
        from kubernetes.client.exceptions import ApiException

        if isinstance(e, (ApiException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError)):
            raise translate(e, what, cluster) from e
        raise
