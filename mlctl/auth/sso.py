"""Talking to Keycloak: the login flows, refresh, RFC 8693 token exchange and logout.

Every Keycloak or network error is translated here into an mlctl error with the DESIGN.md exit code.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import secrets
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

from mlctl.errors import AuthError, Forbidden, MlctlError, NotFound, Unavailable, UsageError

log = logging.getLogger(__name__)

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SPNEGO_OID = "1.3.6.1.5.5.2"  # what HTTP Negotiate carries; Keycloak expects SPNEGO, not raw Kerberos
# Not served by anything: Keycloak redirects the SPNEGO login here and mlctl reads the code from the
# Location header without following it.
REDIRECT_URI = "http://127.0.0.1/mlctl/callback"


# Connect and read timeouts of every request to Keycloak: a hung server is an exit 7 within 15 s.
TIMEOUT = (5, 10)
# The admin client reads the directory in pages of a thousand users, several at once: a page of a big realm
# on a busy Keycloak can take longer than an interactive call should.
ADMIN_TIMEOUT = (5, 60)


def parse_issuer(keycloak: dict) -> tuple[str, str, str]:
    """(issuer, server URL, realm) of a platform document's keycloak section."""
    issuer = str(keycloak.get("issuer") or "").rstrip("/")
    if "/realms/" not in issuer:
        raise UsageError(f"platform keycloak.issuer {issuer!r} is not a Keycloak realm URL",
                         hint="expected https://HOST/realms/REALM in the platform document")
    server, realm = issuer.split("/realms/", 1)
    return issuer, server, realm


def admin_client(keycloak: dict, client_id: str, secret: str, ca_file: str | None, pool: int = 8):
    """A python-keycloak KeycloakAdmin for the platform's realm, authenticated by client credentials."""
    from keycloak import KeycloakAdmin, KeycloakOpenIDConnection

    _, server, realm = parse_issuer(keycloak)
    conn = KeycloakOpenIDConnection(server_url=server + "/", realm_name=realm, client_id=client_id,
                                    client_secret_key=secret, grant_type="client_credentials",
                                    verify=ca_file or True, timeout=ADMIN_TIMEOUT, pool_maxsize=pool)
    return KeycloakAdmin(connection=conn)


class Sso:
    def __init__(self, keycloak: dict, ca_file: Path | None):
        self.issuer, self.server_url, self.realm = parse_issuer(keycloak)
        self.client_id = keycloak.get("clientId") or "mlctl"
        # Keycloak's standard token exchange needs a confidential client; its secret ships with the platform
        # document (like an installed application's) and is not a user credential.
        self.client_secret = keycloak.get("clientSecret")
        self.verify: bool | str = str(ca_file) if ca_file else True
        self._oidc = None

    @property
    def oidc(self):
        if self._oidc is None:
            from keycloak import KeycloakOpenID

            self._oidc = KeycloakOpenID(server_url=self.server_url + "/", realm_name=self.realm,
                                        client_id=self.client_id, client_secret_key=self.client_secret,
                                        verify=self.verify, timeout=TIMEOUT)
        return self._oidc

    @contextlib.contextmanager
    def errors(self, action: str):
        """Translate Keycloak and network failures into mlctl errors."""
        import requests
        from keycloak import exceptions as kc

        log.debug("keycloak %s: %s (realm %s, client %s)", self.server_url, action, self.realm, self.client_id)
        try:
            yield
        except MlctlError:
            raise
        except requests.exceptions.SSLError as e:
            raise Unavailable(f"TLS to Keycloak failed ({action}): certificate not trusted",
                              hint="the platform document's keycloak CA may be wrong") from e
        except (requests.ConnectionError, requests.Timeout, kc.KeycloakConnectionError) as e:
            raise Unavailable(f"cannot reach Keycloak at {self.server_url} ({action})",
                              hint="check the network or retry later; 'mlctl sandbox status' for the sandbox") from e
        except kc.KeycloakError as e:
            code = getattr(e, "response_code", None)
            detail = _error_detail(e)
            if code == 404 or "realm does not exist" in detail.lower():
                raise NotFound(f"Keycloak realm {self.realm!r} does not exist at {self.server_url}",
                               hint="check keycloak.issuer in the platform document") from e
            if code in (400, 401) and ("invalid_grant" in detail or "credentials" in detail.lower()
                                       or "invalid user" in detail.lower() or code == 401):
                raise AuthError(f"{action} failed: {detail or 'invalid credentials'}",
                                hint="check your user name and password, or log in again with 'mlctl login'") from e
            if code == 403:
                raise Forbidden(f"{action} was refused: {detail or 'forbidden'}") from e
            raise AuthError(f"{action} failed: {detail or e}", hint="log in again with 'mlctl login'") from e

    # flows -------------------------------------------------------------------------------------------
    def password(self, username: str, password: str) -> dict:
        with self.errors("password login"):
            return self.oidc.token(username=username, password=password, scope="openid")

    def client_credentials(self, client_id: str, secret: str) -> dict:
        with self.errors("client-credentials login"):
            return self._client(client_id, secret).token(grant_type="client_credentials", scope="openid")

    def device_start(self) -> dict:
        with self.errors("device authorization"):
            return self.oidc.device(scope="openid")

    def device_poll(self, device: dict, sleep=time.sleep, now=time.monotonic) -> dict:
        """Poll the token endpoint politely (RFC 8628: interval, slow_down) until approved or expired."""
        from keycloak import exceptions as kc

        interval = max(1, int(device.get("interval") or 5))
        deadline = now() + int(device.get("expires_in") or 600)
        while now() < deadline:
            sleep(interval)
            with self.errors("device login"):
                try:
                    return self.oidc.token(grant_type="urn:ietf:params:oauth:grant-type:device_code",
                                           device_code=device["device_code"])
                except kc.KeycloakError as e:
                    detail = _error_detail(e)
                    if "authorization_pending" in detail:
                        continue
                    if "slow_down" in detail:
                        interval += 5
                        continue
                    if "expired_token" in detail:
                        break
                    if "access_denied" in detail:
                        raise AuthError("the device login was denied in the browser") from e
                    raise
        raise AuthError("the device code expired before the login was approved",
                        hint="run 'mlctl login --device' again and approve it in time")

    def kerberos(self, service_host: str | None = None) -> dict:
        """SPNEGO: the authorization-code flow where the browser step is a Negotiate header from gssapi."""
        import gssapi
        import requests

        host = service_host or urlparse(self.server_url).hostname
        try:
            creds = gssapi.Credentials(usage="initiate")
            creds.lifetime  # noqa: B018 - raises when the ticket has expired
        except gssapi.exceptions.GSSError as e:
            raise AuthError("no valid Kerberos ticket",
                            hint="run 'kinit', or log in with 'mlctl login --device' or '--password'") from e
        name = gssapi.Name(f"HTTP@{host}", gssapi.NameType.hostbased_service)
        try:
            ctx = gssapi.SecurityContext(name=name, creds=creds, usage="initiate",
                                         mech=gssapi.OID.from_int_seq(SPNEGO_OID))
            negotiate = base64.b64encode(ctx.step()).decode()
        except gssapi.exceptions.GSSError as e:
            raise AuthError(f"Kerberos could not get a ticket for HTTP/{host}: {_gss_detail(e)}",
                            hint="check that your ticket's realm matches the platform's (klist)") from e
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        query = urlencode({"client_id": self.client_id, "response_type": "code", "scope": "openid",
                           "redirect_uri": REDIRECT_URI, "state": state, "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        url = f"{self.issuer}/protocol/openid-connect/auth?{query}"
        with self.errors("Kerberos login"):
            with requests.Session() as session:
                resp = session.get(url, headers={"Authorization": f"Negotiate {negotiate}"},
                                   allow_redirects=False, timeout=TIMEOUT, verify=self.verify)
                for _ in range(5):  # Keycloak may bounce through its own pages before the final redirect
                    location = resp.headers.get("Location", "")
                    if resp.status_code in (302, 303) and location.startswith(REDIRECT_URI):
                        break
                    if resp.status_code in (302, 303) and location:
                        resp = session.get(location, headers={"Authorization": f"Negotiate {negotiate}"},
                                           allow_redirects=False, timeout=TIMEOUT, verify=self.verify)
                        continue
                    raise AuthError("Keycloak did not accept the Kerberos ticket",
                                    hint="log in with 'mlctl login --device' or '--password' instead")
                params = parse_qs(urlparse(resp.headers["Location"]).query)
                if params.get("state", [""])[0] != state or "code" not in params:
                    raise AuthError("Kerberos login returned no authorization code")
            return self.oidc.token(grant_type="authorization_code", code=params["code"][0],
                                   redirect_uri=REDIRECT_URI, code_verifier=verifier)

    def refresh(self, refresh_token: str) -> dict:
        with self.errors("token refresh"):
            return self.oidc.refresh_token(refresh_token)

    def _client(self, client_id: str, secret: str):
        from keycloak import KeycloakOpenID

        return KeycloakOpenID(server_url=self.server_url + "/", realm_name=self.realm, client_id=client_id,
                              client_secret_key=secret, verify=self.verify, timeout=TIMEOUT)

    def exchange(self, access_token: str, audience: str, scope: str | None = None,
                 client: tuple[str, str] | None = None) -> dict:
        """RFC 8693: trade the session's access token for one whose audience is the cluster.

        scope names the client scope that grants the audience (the platform document's tokenExchangeScope).
        client (id, secret) makes the request as that client: a service client's token may only be exchanged
        by the client it was issued to.
        """
        oidc = self._client(*client) if client else self.oidc
        with self.errors(f"token exchange for audience {audience}"):
            return oidc.exchange_token(access_token, audience=audience,
                                       subject_token_type=ACCESS_TOKEN_TYPE,
                                       requested_token_type=ACCESS_TOKEN_TYPE,
                                       scope=" ".join(filter(None, ["openid", scope])))

    def logout(self, refresh_token: str) -> None:
        with self.errors("logout"):
            self.oidc.logout(refresh_token)


def _error_detail(e: Exception) -> str:
    body = getattr(e, "response_body", None) or b""
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        import json

        data = json.loads(body)
        # keep the RFC error code (authorization_pending, slow_down, invalid_grant...) next to the description
        code, text = data.get("error"), data.get("error_description")
        return f"{text} ({code})" if code and text else str(code or text or data)
    except (ValueError, AttributeError):
        return str(body or getattr(e, "error_message", "") or "")[:200]


def _gss_detail(e: Exception) -> str:
    return str(e).splitlines()[0][:160]
