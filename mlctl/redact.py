"""Removes tokens, passwords and keys from any text before it is shown or logged."""

from __future__ import annotations

import re

_PATTERNS = [
    # JSON Web Tokens (access, id, refresh tokens issued by Keycloak)
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "<redacted-jwt>"),
    (re.compile(r"\b(Bearer|Negotiate|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.I), r"\1 <redacted>"),
    (re.compile(
        r"""(?ix)
        (["']?(?:access_token|refresh_token|id_token|subject_token|token|password|passwd|client_secret|secret
              |aws_secret_access_key|secret_access_key|secretkey|device_code|code)["']?\s*[:=]\s*["']?)
        ([^\s"'&,}]+)"""), r"\1<redacted>"),
]


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter:
    """Applied to every handler mlctl installs, so --debug traces carry no secrets. (logging accepts any
    object with a filter method; not subclassing logging.Filter keeps logging out of start-up.)"""

    def filter(self, record) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), ()
        return True
