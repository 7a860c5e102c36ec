"""Naming of tenants: each user's namespace and the labels that say whose it is (pure functions)."""

from __future__ import annotations

import functools
import re

NAMESPACE_PREFIX = "u-"
OWNER_LABEL = "mlctl.io/owner"


@functools.lru_cache(maxsize=65536)  # admin sync asks for each user's namespace several times per object
def user_namespace(user: str) -> str:
    """u-<user>, lower-cased and reduced to a DNS-1123 label (kubectl, RBAC and quotas need one)."""
    name = re.sub(r"[^a-z0-9-]+", "-", user.lower()).strip("-") or "user"
    return (NAMESPACE_PREFIX + name)[:63].rstrip("-")
