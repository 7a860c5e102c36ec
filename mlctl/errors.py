"""mlctl's exceptions; each carries the DESIGN.md exit code that main.py turns it into.

Messages are one line and say what happened; hints say what to do next. Neither may hold a token or secret
(main.py redacts anything that looks like one, as a last line of defence).
"""

from __future__ import annotations

OK = 0
UNEXPECTED = 1
USAGE = 2
AUTH = 3
NOT_FOUND = 4
FORBIDDEN = 5
QUOTA = 6
UNAVAILABLE = 7
INTERRUPTED = 130


class MlctlError(Exception):
    """An error the user can act on: a one-line message, an optional hint, an exit code."""

    exit_code = UNEXPECTED

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(MlctlError):
    """Invalid input: a bad flag value, a malformed spec, an unknown name in a config."""

    exit_code = USAGE


class AuthError(MlctlError):
    """Not logged in, or the login failed or expired."""

    exit_code = AUTH


class NotFound(MlctlError):
    exit_code = NOT_FOUND


class Forbidden(MlctlError):
    """RBAC or policy (OPA) said no."""

    exit_code = FORBIDDEN


class QuotaExceeded(MlctlError):
    """The request exceeds a quota or can never fit the cluster's capacity."""

    exit_code = QUOTA


class Unavailable(MlctlError):
    """A server could not be reached or timed out."""

    exit_code = UNAVAILABLE
