"""The user's Kerberos ticket, as GSSAPI sees it (the one place outside sso.py that asks gssapi)."""

from __future__ import annotations

import time


def ticket() -> dict | None:
    """{"principal", "expires_at"} of the default credential cache's initiator ticket, or None."""
    try:
        import gssapi

        creds = gssapi.Credentials(usage="initiate")
        lifetime = creds.lifetime
        if not lifetime or lifetime <= 0:
            return None
        return {"principal": str(creds.name), "expires_at": time.time() + lifetime}
    except Exception:  # noqa: BLE001 - no ticket (or no Kerberos at all) is a normal answer
        return None


def has_ticket() -> bool:
    return ticket() is not None
