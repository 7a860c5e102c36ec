"""The SSO session: log in, keep the access token fresh, and hand out per-cluster tokens.

Flows come from sso.py (heavy imports); the cache comes from cache.py (light). cluster_token() reads the
cache first and only imports Keycloak's client when a token must be refreshed or exchanged.
"""

from __future__ import annotations

import time
from pathlib import Path

from mlctl import logs
from mlctl.auth.cache import EARLY_REFRESH_SECONDS, TokenCache, jwt_claims
from mlctl.errors import AuthError
from mlctl.paths import cached_ca_file


def cache_for(f) -> TokenCache:
    return TokenCache(f.config.platform_name() or f.platform.name, env=f.env)


def keycloak_ca_file(f) -> Path | None:
    """The Keycloak CA from the platform document, written once to the cache so requests can use it."""
    kc = f.platform.section("keycloak") or {}
    data = kc.get("certificateAuthorityData")
    if not data:
        return Path(kc["caFile"]) if kc.get("caFile") else None
    return cached_ca_file(f"{f.platform.name}-keycloak", data, f.env)


def sso_for(f):
    from mlctl.auth.sso import Sso
    from mlctl.errors import UsageError

    kc = f.platform.section("keycloak")
    if not kc:
        raise UsageError(f"platform {f.platform.name} has no keycloak section",
                         hint="the platform document must name the Keycloak issuer")
    return Sso(kc, keycloak_ca_file(f))


def session_from_tokens(tokens: dict, method: str, now: float | None = None) -> dict:
    logs.debug(__name__, "token response: %s", tokens)  # the redacting log filter removes the tokens themselves
    now = time.time() if now is None else now
    claims = jwt_claims(tokens["access_token"])
    return {
        "method": method,
        "user": claims.get("preferred_username") or claims.get("sub"),
        "groups": sorted(claims.get("groups") or []),
        "access_token": tokens["access_token"],
        "expires_at": now + int(tokens.get("expires_in") or 60),
        "refresh_token": tokens.get("refresh_token"),
        "refresh_expires_at": now + int(tokens.get("refresh_expires_in") or 0) if tokens.get("refresh_token") else 0,
    }


def fresh_access_token(f, cache: TokenCache, sso=None) -> tuple[str, dict]:
    """The session's access token, refreshed (or re-granted for cron clients) when close to expiry."""
    session = cache.session()
    if not session:
        raise AuthError("not logged in", hint="run 'mlctl login'")
    now = time.time()
    if session.get("expires_at", 0) - EARLY_REFRESH_SECONDS > now:
        return session["access_token"], session
    sso = sso or sso_for(f)
    if session.get("refresh_token") and session.get("refresh_expires_at", 0) > now + 5:
        tokens = sso.refresh(session["refresh_token"])
    elif session.get("method") == "client-credentials" and session.get("client_secret"):
        tokens = sso.client_credentials(session["client_id"], session["client_secret"])
    else:
        raise AuthError("your login has expired", hint="run 'mlctl login' again")
    fresh = session_from_tokens(tokens, session["method"])
    for key in ("client_id", "client_secret"):
        if key in session:
            fresh[key] = session[key]
    cache.save_session(fresh)
    return fresh["access_token"], fresh


def cluster_token(f, cluster: dict, cache: TokenCache | None = None) -> tuple[str, float]:
    """A token for cluster's audience: cached, else exchanged (refreshing the session first if needed)."""
    cache = cache or cache_for(f)
    name = cluster["name"]
    entry = cache.fresh_cluster_token(name)
    if entry:
        return entry["token"], entry["expires_at"]
    with cache.lock():
        entry = cache.fresh_cluster_token(name)  # another process may have refreshed while we waited
        if entry:
            return entry["token"], entry["expires_at"]
        sso = sso_for(f)
        access, session = fresh_access_token(f, cache, sso)
        service = (session["client_id"], session["client_secret"]) if session.get("client_secret") else None
        tokens = sso.exchange(access, cluster.get("audience") or name, cluster.get("tokenExchangeScope"),
                              client=service)
        expires_at = time.time() + int(tokens.get("expires_in") or 60)
        cache.save_cluster_token(name, tokens["access_token"], expires_at)
        return tokens["access_token"], expires_at


def exchange_all(f, clusters: list[dict], cache: TokenCache) -> tuple[list[dict], list[tuple[str, str]]]:
    """Exchange the session's token for every cluster's audience: (clusters granted, [(name, why not)])."""
    from mlctl.errors import AuthError, Forbidden

    allowed, refused = [], []
    for cluster in clusters:
        try:
            cluster_token(f, cluster, cache)
            allowed.append(cluster)
        except (Forbidden, AuthError) as e:
            refused.append((cluster["name"], e.message))
    return allowed, refused
