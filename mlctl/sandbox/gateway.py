"""The sandbox's gateway (the platform's ingress): one HTTPS address in front of the Services of cluster
`local`, for the pods that really run (docs/workloads.md).

    python -m mlctl.sandbox.gateway --config <state>/gateway/config.json

Routes (by path prefix):
    /serve/<namespace>/<service>/<rest>      -> /<rest> on the Service's first port (KServe's path routing)
    /notebook/<namespace>/<name>/<rest>      -> the same path, prefix kept (as Kubeflow's notebooks expect),
                                                on Service <name>'s first port
    /healthz                                 -> 200, no authentication

    /oauth2/callback                         -> the end of the browser login (below)

Every other request needs a Keycloak access token for audience `local` (the cluster's), as
`Authorization: Bearer <jwt>` or the cookie `mlctl-token` (browsers), checked against the realm's JWKS
(RS256, issuer, audience, expiry). It gets through when its user owns the namespace (annotation
`mlctl.io/owner-username`, label `mlctl.io/owner`, or a subject of RoleBinding `mlctl-owner`) or is in a
group the Service's annotation `mlctl.io/shared-with` names (comma-separated). No or a bad token: 401;
someone else: 403; no ready endpoint: 503.

Browser login: a GET that accepts text/html and carries no valid token is sent through Keycloak's login
(OIDC authorization code flow with state and PKCE S256, client `gateway`); the callback exchanges the code,
checks the access token like a bearer token, and sets it as the cookie `mlctl-token` (HttpOnly, Secure,
SameSite=Lax) before going back to the page first asked for. API clients keep getting 401.

WebSocket upgrades (JupyterLab's kernels and terminals) are authorized like any request and then tunnelled
to the pod byte for byte.

Endpoints are the Service's selected pods that are Ready and have a pod IP, read through mlctl.kube.api
(cached for 2 s): the API server refuses loopback addresses in EndpointSlices, so the sandbox's real pods
(each on its own 127.x address) never appear there.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import http.server
import itertools
import json
import logging
import os
import re
import secrets
import select
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from mlctl.sandbox import pki
from mlctl.sandbox.component import Component, Context
from mlctl.sandbox.procs import answers, port_open, wait_until

PROCESS = "gateway"
CLUSTER = "local"
COOKIE = "mlctl-token"
LOGIN_COOKIE = "mlctl-login"  # the browser's side of a login in progress: its state
CALLBACK = "/oauth2/callback"
CLIENT_ID = "gateway"  # the realm's client for the browser login
SECRET_ENV = "MLCTL_GATEWAY_CLIENT_SECRET"
LOGIN_SECONDS = 600  # a login must come back within this
MAX_LOGINS = 1000  # logins in progress kept at once (the oldest are forgotten)
SHARED_WITH = "mlctl.io/shared-with"
OWNER_ANNOTATION = "mlctl.io/owner-username"
OWNER_LABEL = "mlctl.io/owner"
OWNER_BINDING = "mlctl-owner"
USER_PREFIX = "oidc:"
CACHE_SECONDS = 2.0
JWKS_SECONDS = 300.0
UPSTREAM_TIMEOUT = 120.0
CHUNK = 64 * 1024
# hop-by-hop headers (RFC 9110 7.6.1) are not forwarded, nor the caller's credentials (the gateway's own
# cookies are taken out of Cookie; the workload's own cookies, such as JupyterLab's _xsrf, go through)
_DROP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
         "transfer-encoding", "upgrade", "authorization", "cookie", "host", "content-length"}
_OWN_COOKIES = {COOKIE, LOGIN_COOKIE}

log = logging.getLogger("gateway")


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ---- tokens ----------------------------------------------------------------------------------------------

class Verifier:
    """Keycloak access tokens for one audience, verified with the realm's JWKS (refetched for an unknown key,
    at most every 10 s)."""

    def __init__(self, issuer: str, audience: str, ca_file: str):
        self.issuer, self.audience = issuer.rstrip("/"), audience
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.keys = None
        self.fetched = 0.0
        self.lock = threading.Lock()
        self._discovery: dict | None = None

    def discovery(self) -> dict:
        """The issuer's OpenID configuration (fetched once)."""
        with self.lock:
            if self._discovery is None:
                with urllib.request.urlopen(f"{self.issuer}/.well-known/openid-configuration", timeout=5,
                                            context=self.ctx) as resp:
                    self._discovery = json.load(resp)
            return self._discovery

    def _jwks(self, force: bool = False):
        from jwcrypto import jwk

        uri = self.discovery()["jwks_uri"]
        with self.lock:
            age = time.monotonic() - self.fetched
            if self.keys is None or age > JWKS_SECONDS or (force and age > 10):
                with urllib.request.urlopen(uri, timeout=5, context=self.ctx) as resp:
                    self.keys = jwk.JWKSet.from_json(resp.read().decode())
                self.fetched = time.monotonic()
            return self.keys

    def claims(self, token: str) -> dict:
        from jwcrypto import jws, jwt

        for attempt in (0, 1):
            try:
                parsed = jwt.JWT(jwt=token, key=self._jwks(force=attempt == 1), algs=["RS256"],
                                 check_claims={"exp": None, "iss": self.issuer})
                break
            except jwt.JWTMissingKey:
                if attempt:
                    raise Refused(401, "token signed by an unknown key") from None
            except (jwt.JWException, jws.InvalidJWSSignature, jws.InvalidJWSObject, ValueError) as e:
                raise Refused(401, f"invalid token: {type(e).__name__}") from None
        claims = json.loads(parsed.claims)
        aud = claims.get("aud")
        if self.audience not in (aud if isinstance(aud, list) else [aud]):
            raise Refused(401, f"the token is not for audience {self.audience}")
        if not claims.get("preferred_username"):
            raise Refused(401, "the token names no user")
        return claims


# ---- routing ---------------------------------------------------------------------------------------------

class Routes:
    """Services, namespaces and ready pods of the cluster, through mlctl.kube.api with a short cache."""

    def __init__(self, kube):
        self.kube = kube
        self.cache: dict = {}
        self.lock = threading.Lock()
        self.turn = itertools.count()

    def _cached(self, key, read):
        with self.lock:
            hit = self.cache.get(key)
            if hit and time.monotonic() - hit[0] < CACHE_SECONDS:
                return hit[1]
        value = read()
        with self.lock:
            self.cache[key] = (time.monotonic(), value)
        return value

    def service(self, namespace: str, name: str) -> dict | None:
        """The Service a path names. An InferenceService's name stands for the Service KServe's raw mode
        makes for it (`<name>-predictor`, or `<name>-transformer` when it has a transformer), and its
        `mlctl.io/shared-with` counts as well as the Service's; else the Service of that name."""
        isvc = self._cached(("isvc", namespace, name), lambda: self.kube.find("InferenceService", name, namespace))
        if isvc is None:
            return self._cached(("svc", namespace, name), lambda: self.kube.find("Service", name, namespace))
        component = "transformer" if (isvc.get("spec") or {}).get("transformer") else "predictor"
        target = f"{name}-{component}"
        # not created yet: no selector, so the owner gets a 503 rather than a 403
        svc = self._cached(("svc", namespace, target), lambda: self.kube.find("Service", target, namespace)) or {}
        annotations = dict((svc.get("metadata") or {}).get("annotations") or {})
        shared = [annotations.get(SHARED_WITH, ""), ((isvc.get("metadata") or {}).get("annotations") or {}).get(
            SHARED_WITH, "")]
        annotations[SHARED_WITH] = ",".join(p for p in shared if p)
        return {**svc, "metadata": {**(svc.get("metadata") or {"name": target}), "annotations": annotations}}

    def allowed(self, namespace: str, service: dict, claims: dict) -> bool:
        from mlctl.admin.objects import owner_label_value

        user = claims["preferred_username"]
        ns = self._cached(("ns", namespace), lambda: self.kube.find("Namespace", namespace)) or {}
        meta = ns.get("metadata") or {}
        if (meta.get("annotations") or {}).get(OWNER_ANNOTATION) == user:
            return True
        if (meta.get("labels") or {}).get(OWNER_LABEL) == owner_label_value(user):
            return True
        binding = self._cached(("rb", namespace), lambda: self.kube.find("RoleBinding", OWNER_BINDING, namespace))
        subjects = (binding or {}).get("subjects") or []
        if any(s.get("kind") == "User" and s.get("name") == USER_PREFIX + user for s in subjects):
            return True
        shared = ((service.get("metadata") or {}).get("annotations") or {}).get(SHARED_WITH, "")
        groups = {g.strip() for g in shared.split(",") if g.strip()}
        return bool(groups & {g.lstrip("/") for g in claims.get("groups") or []})

    def endpoint(self, namespace: str, service: dict) -> tuple[str, int]:
        spec = service.get("spec") or {}
        ports = spec.get("ports") or []
        selector = spec.get("selector") or {}
        if not ports or not selector:
            raise Refused(503, "the service has no port or no selector")
        target = ports[0].get("targetPort", ports[0]["port"])
        text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = self._cached(("pods", namespace, text), lambda: self.kube.list("Pod", namespace, selector=text))
        ready = []
        for pod in pods:
            status = pod.get("status") or {}
            ok = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            if ok and status.get("podIP") and not pod["metadata"].get("deletionTimestamp"):
                port = target
                if isinstance(target, str) and not target.isdigit():
                    named = [p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports") or []
                             if p.get("name") == target]
                    if not named:
                        continue
                    port = named[0]
                ready.append((status["podIP"], int(port)))
        if not ready:
            raise Refused(503, "no ready endpoint")
        return ready[next(self.turn) % len(ready)]


def split(path: str) -> tuple[str, str, str, str]:
    """(namespace, service, upstream path, kind) of a gateway path; Refused(404) for any other path."""
    parts = urlsplit(path)
    segments = parts.path.split("/")
    if len(segments) >= 4 and segments[1] in ("serve", "notebook") and segments[2] and segments[3]:
        kind, namespace, name = segments[1], segments[2], segments[3]
        rest = "/" + "/".join(segments[4:])
        upstream = parts.path if kind == "notebook" else rest
        if parts.query:
            upstream += "?" + parts.query
        return namespace, name, upstream, kind
    raise Refused(404, "no route: paths are /serve/<namespace>/<service>/... and /notebook/<namespace>/<name>/...")


# ---- the browser login -----------------------------------------------------------------------------------

def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def wants_html(method: str, accept: str) -> bool:
    """A browser navigating (GET/HEAD of a page), as opposed to an API client: those get 401."""
    return method in ("GET", "HEAD") and "text/html" in (accept or "").lower()


def safe_next(path: str) -> str:
    """Where to go after the login: a path on the gateway itself, never another site."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path or CALLBACK in path.split("?")[0]:
        return "/"
    return path


def cookie(name: str, value: str, *, path: str = "/", max_age: int | None = None) -> str:
    """A Set-Cookie value the gateway's cookies all share: HttpOnly, Secure, SameSite=Lax (the login comes
    back from Keycloak as a top-level navigation, which SameSite=Strict would strip)."""
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly", "Secure", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def cookies(header: str) -> dict[str, str]:
    out = {}
    for part in (header or "").split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name and name not in out:
            out[name] = value
    return out


def upstream_cookie(header: str) -> str:
    """The Cookie header for the workload: everything but the gateway's own cookies."""
    kept = [p.strip() for p in (header or "").split(";")
            if p.strip() and p.strip().partition("=")[0] not in _OWN_COOKIES]
    return "; ".join(kept)


_SECRET_PARAMS = re.compile(r"([?&](?:code|state|session_state)=)[^&\s]*")


def redact(text: str) -> str:
    """A request line fit for the log: the login's code and state are credentials for a moment."""
    return _SECRET_PARAMS.sub(r"\1<redacted>", text)


class Logins:
    """Logins in progress: state -> (PKCE verifier, page to go back to, deadline). One use each."""

    def __init__(self):
        self.pending: dict[str, tuple[str, str, float]] = {}
        self.lock = threading.Lock()

    def begin(self, next_path: str) -> tuple[str, str]:
        """A new login: (state, code challenge)."""
        state = secrets.token_urlsafe(24)
        verifier, challenge = pkce_pair()
        now = time.monotonic()
        with self.lock:
            for key in [k for k, v in self.pending.items() if v[2] < now]:
                del self.pending[key]
            while len(self.pending) >= MAX_LOGINS:
                del self.pending[next(iter(self.pending))]
            self.pending[state] = (verifier, safe_next(next_path), now + LOGIN_SECONDS)
        return state, challenge

    def finish(self, state: str, browser_state: str | None) -> tuple[str, str]:
        """(verifier, page) of the login that state names, once, if this browser began it."""
        if not state or not browser_state or not secrets.compare_digest(state, browser_state):
            raise Refused(400, "this login was not begun in this browser; open the page again")
        with self.lock:
            entry = self.pending.pop(state, None)
        if entry is None or entry[2] < time.monotonic():
            raise Refused(400, "the login expired or was already used; open the page again")
        return entry[0], entry[1]


class Login:
    """The gateway's side of the OIDC authorization code flow with Keycloak (client `gateway`)."""

    def __init__(self, verifier: Verifier, public_url: str, client_id: str, client_secret: str):
        self.verifier, self.client_id, self.client_secret = verifier, client_id, client_secret
        self.redirect_uri = public_url.rstrip("/") + CALLBACK
        self.logins = Logins()

    def start(self, next_path: str) -> tuple[str, str]:
        """(URL of Keycloak's login page, the state to keep in the browser)."""
        state, challenge = self.logins.begin(next_path)
        query = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                           "scope": "openid", "state": state, "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        return f"{self.verifier.discovery()['authorization_endpoint']}?{query}", state

    def finish(self, query: str, browser_state: str | None) -> tuple[str, dict, int, str]:
        """(access token, its claims, seconds it is valid, page to go back to) for Keycloak's answer."""
        params = {k: v[0] for k, v in parse_qs(query).items()}
        if "error" in params:
            raise Refused(401, f"the login was refused: {params['error']}")
        verifier, next_path = self.logins.finish(params.get("state", ""), browser_state)
        if not params.get("code"):
            raise Refused(400, "the login came back without a code")
        body = urlencode({"grant_type": "authorization_code", "code": params["code"],
                          "redirect_uri": self.redirect_uri, "code_verifier": verifier}).encode()
        basic = base64.b64encode(f"{quote(self.client_id)}:{quote(self.client_secret)}".encode()).decode()
        request = urllib.request.Request(self.verifier.discovery()["token_endpoint"], data=body, method="POST",
                                         headers={"Authorization": f"Basic {basic}",
                                                  "Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.verifier.ctx) as resp:
                answer = json.load(resp)
        except urllib.error.HTTPError as e:
            # Keycloak's error code only: the body could echo what was sent
            try:
                code = json.loads(e.read() or b"{}").get("error", "")
            except ValueError:
                code = ""
            raise Refused(401, f"Keycloak refused the login's code (HTTP {e.code} {code})".strip()) from None
        token = answer.get("access_token") or ""
        claims = self.verifier.claims(token)
        lifetime = int(claims.get("exp", 0) - time.time())
        return token, claims, max(lifetime, 0), next_path


# ---- the server ------------------------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mlctl-gateway"
    verifier: Verifier
    routes: Routes
    login: Login | None = None

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.info("%s %s", self.address_string(), redact(format % args))

    def _token(self) -> tuple[str | None, bool]:
        """The caller's token, and whether it came from the gateway's cookie (a browser)."""
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        value = cookies(self.headers.get("Cookie") or "").get(COOKIE)
        return (value, True) if value else (None, False)

    def _redirect(self, location: str, set_cookies: list[str] = ()) -> None:
        self._drain()
        self.send_response(302)
        self.send_header("Location", location)
        for value in set_cookies:
            self.send_header("Set-Cookie", value)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _to_login(self) -> None:
        """A browser without a valid token: off to Keycloak's login page, a fresh state kept in a cookie."""
        url, state = self.login.start(self.path)
        self._redirect(url, [cookie(LOGIN_COOKIE, state, path=CALLBACK, max_age=LOGIN_SECONDS)])

    def _callback(self) -> None:
        try:
            if self.login is None:
                raise Refused(404, "the browser login is not configured")
            browser_state = cookies(self.headers.get("Cookie") or "").get(LOGIN_COOKIE)
            token, claims, lifetime, next_path = self.login.finish(urlsplit(self.path).query, browser_state)
        except Refused as e:
            self._fail(e.status, str(e))
            return
        except Exception as e:  # noqa: BLE001 - Keycloak unreachable: say so, stay up
            log.warning("cannot finish a login: %s", type(e).__name__)
            self._fail(503, "the gateway cannot reach the identity provider")
            return
        log.info("browser login of %s", claims["preferred_username"])
        self._redirect(next_path, [cookie(COOKIE, token, max_age=lifetime),
                                   cookie(LOGIN_COOKIE, "", path=CALLBACK, max_age=0)])

    def _fail(self, status: int, message: str) -> None:
        body = (json.dumps({"error": message}) + "\n").encode()
        self._drain()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="mlctl"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drain(self) -> None:
        """Read a refused request's body, so the connection can carry the next one."""
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            chunk = self.rfile.read(min(CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)

    def _body(self):
        """The request body as chunks (Content-Length or chunked), None without one."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            def chunks():
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return
                    yield self.rfile.read(size)
                    self.rfile.readline()
            return chunks()
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None

        def fixed():
            left = length
            while left > 0:
                chunk = self.rfile.read(min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
        return fixed()

    def _handle(self) -> None:
        if self.path == "/healthz":
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if urlsplit(self.path).path == CALLBACK:
            self._callback()
            return
        browser = self.login is not None and wants_html(self.command, self.headers.get("Accept", ""))
        try:
            namespace, name, upstream, _ = split(self.path)
            token, from_cookie = self._token()
            if not token:
                if browser:
                    self._to_login()
                    return
                raise Refused(401, "no token: send Authorization: Bearer <token for audience local>")
            try:
                claims = self.verifier.claims(token)
            except Refused:
                if browser and from_cookie:  # an expired cookie: log in again
                    self._to_login()
                    return
                raise
            service = self.routes.service(namespace, name)
            # the same answer for a service that does not exist and one the caller may not see
            if service is None or not self.routes.allowed(namespace, service, claims):
                raise Refused(403, f"{claims['preferred_username']} may not use {namespace}/{name}")
            host, port = self.routes.endpoint(namespace, service)
        except Refused as e:
            self._fail(e.status, str(e))
            return
        except Exception as e:  # noqa: BLE001 - the API server or Keycloak is down: say so, stay up
            log.warning("cannot route %s: %s", self.path, e)
            self._fail(503, "the gateway cannot reach the cluster or the identity provider")
            return
        if "websocket" in (self.headers.get("Upgrade") or "").lower():
            self._tunnel(host, port, upstream, claims["preferred_username"])
            return
        self._proxy(host, port, upstream, claims["preferred_username"])

    def _upstream_headers(self, host: str, port: int, user: str) -> dict:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROP}
        headers.update({"Host": f"{host}:{port}", "X-Forwarded-Proto": "https", "X-Forwarded-For":
                        self.client_address[0], "X-Forwarded-Host": self.headers.get("Host", ""),
                        "kubeflow-userid": user})
        kept = upstream_cookie(self.headers.get("Cookie") or "")
        if kept:
            headers["Cookie"] = kept
        return headers

    def _tunnel(self, host: str, port: int, path: str, user: str) -> None:
        """A WebSocket: the upgrade request goes to the pod, its answer back, then bytes both ways until one
        side closes (one thread, select over both sockets)."""
        self.close_connection = True
        headers = self._upstream_headers(host, port, user)
        headers.update({"Connection": "Upgrade", "Upgrade": self.headers.get("Upgrade", "websocket")})
        try:
            up = socket.create_connection((host, port), timeout=10)
        except OSError as e:
            log.warning("upstream %s:%d failed: %s", host, port, e)
            self._fail(502, "the service's pod did not answer")
            return
        try:
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            up.sendall(f"{self.command} {path} HTTP/1.1\r\n{head}\r\n".encode("latin-1"))
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = up.recv(CHUNK)
                if not chunk:
                    self._fail(502, "the service's pod closed the connection")
                    return
                answer += chunk
            self.wfile.write(answer)
            self.wfile.flush()
            status = answer.split(b" ", 2)[1:2]
            log.info('%s "%s %s" websocket %s', self.address_string(), self.command, redact(path),
                     (status or [b"?"])[0].decode("latin-1"))
            if status != [b"101"]:
                return
            client = self.connection
            client.settimeout(None)
            up.settimeout(None)
            # bytes the request parser already read past the headers belong to the tunnel
            client.setblocking(False)
            try:
                buffered = self.rfile.read1(CHUNK) or b""
            except (OSError, ValueError):
                buffered = b""
            client.setblocking(True)
            if buffered:
                up.sendall(buffered)
            _pipe(client, up)
        except OSError as e:
            log.info("websocket to %s:%d ended: %s", host, port, e)
        finally:
            up.close()

    def _proxy(self, host: str, port: int, path: str, user: str) -> None:
        headers = self._upstream_headers(host, port, user)
        body = self._body()
        length = self.headers.get("Content-Length")
        conn = http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT)
        try:
            try:
                if body is not None and length:
                    headers["Content-Length"] = length
                    conn.request(self.command, path, body=body, headers=headers)
                else:
                    conn.request(self.command, path, body=body, headers=headers, encode_chunked=body is not None)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                log.warning("upstream %s:%d failed: %s", host, port, e)
                self._fail(502, "the service's pod did not answer")
                return
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in _DROP | {"server", "date"}:
                    self.send_header(k, v)
            size = resp.getheader("Content-Length")
            chunked = size is None and self.command != "HEAD" and resp.status not in (204, 304)
            if size is not None:
                self.send_header("Content-Length", size)
            elif chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command == "HEAD":
                return
            while True:
                chunk = resp.read1(CHUNK) if hasattr(resp, "read1") else resp.read(CHUNK)
                if not chunk:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        finally:
            conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


def _pipe(client, upstream) -> None:
    """Copy bytes both ways between the caller's TLS socket and the pod's until either closes."""
    sockets = [client, upstream]
    while True:
        readable, _, broken = select.select(sockets, [], sockets, 300)
        if broken:
            return
        if not readable:
            continue  # idle (a kernel waiting): keep the tunnel
        for sock in readable:
            other = upstream if sock is client else client
            try:
                data = sock.recv(CHUNK)
                while data and sock is client and client.pending():
                    data += client.recv(client.pending())
            except ssl.SSLWantReadError:
                continue
            if not data:
                return
            other.sendall(data)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, context: ssl.SSLContext):
        super().__init__(address, handler)
        self.context = context

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def finish_request(self, request, client_address):
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def serve(cfg: dict) -> None:
    from mlctl.kube.api import from_kubeconfig

    kube = from_kubeconfig(cfg["kubeconfig"], cfg["context"], cluster=CLUSTER)
    verifier = Verifier(cfg["issuer"], cfg["audience"], cfg["keycloakCA"])
    secret = os.environ.pop(SECRET_ENV, "")
    login = Login(verifier, cfg["url"], cfg.get("clientId", CLIENT_ID), secret) if secret and cfg.get("url") else None
    if login is None:
        log.warning("no client secret for %s: browsers get 401 like API clients", CLIENT_ID)
    handler = type("BoundHandler", (Handler,), {"verifier": verifier, "routes": Routes(kube), "login": login})
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cfg["cert"], cfg["key"])
    server = Server(("127.0.0.1", int(cfg["port"])), handler, ctx)
    log.info("serving https://127.0.0.1:%s for cluster %s", cfg["port"], CLUSTER)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlctl.sandbox.gateway")
    parser.add_argument("--config", required=True, type=Path)
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    serve(json.loads(opts.config.read_text()))
    return 0


# ---- the component ---------------------------------------------------------------------------------------

def _client_template() -> dict:
    from mlctl.sandbox import keycloak

    realm = json.loads(keycloak._realm_template().read_text())
    return next(c for c in realm["clients"] if c["clientId"] == CLIENT_ID)


def ensure_client(kc: dict, redirect_uri: str, home: Path) -> str:
    """The realm's `gateway` client, created if the realm predates it, with exactly this redirect URI (the
    gateway's port is the sandbox's own); returns its secret, which Keycloak generated. What was applied is
    recorded, so a later start makes no admin call; the secret is kept in a file only its owner may read and
    reaches the gateway through its environment, never its configuration or a log."""
    from mlctl.sandbox import keycloak

    template = _client_template()
    wanted = {**template, "redirectUris": [redirect_uri]}
    digest = hashlib.sha256(json.dumps([wanted, kc["issuer"]], sort_keys=True).encode()).hexdigest()
    marker, secret_file = home / "client.applied", home / "client-secret"
    if marker.exists() and marker.read_text() == digest and secret_file.exists():
        return secret_file.read_text().strip()
    admin = keycloak._Admin(kc["url"], kc["ca_file"])
    path = f"/{keycloak.REALM}/clients"
    found = admin.call("GET", path, params={"clientId": CLIENT_ID})
    if not found:
        admin.call("POST", path, json=wanted)
        found = admin.call("GET", path, params={"clientId": CLIENT_ID})
    else:
        live = found[0]
        merged = {**live, "redirectUris": [redirect_uri],
                  "attributes": {**(live.get("attributes") or {}), **(template.get("attributes") or {})}}
        if merged != live:
            admin.call("PUT", f"{path}/{live['id']}", json=merged)
    secret = admin.call("GET", f"{path}/{found[0]['id']}/client-secret")["value"]
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    marker.write_text(digest)
    return secret


def healthy(port: int, ca_file: Path) -> bool:
    return answers(port, "/healthz", ca_file=ca_file)


class Gateway(Component):
    """The platform's ingress for Services of cluster local, with Keycloak tokens (after Keycloak and the
    clusters)."""

    name = PROCESS

    def start(self, ctx: Context) -> dict:
        home = ctx.dir(PROCESS)
        state = ctx.state
        port = state.port(PROCESS)
        if not state.is_running(PROCESS) and port_open(port):  # taken while the sandbox was down
            del state.data["ports"][PROCESS]
            state.save()
            port = state.port(PROCESS)
        crt, key = pki.issue(ctx.pki, "gateway", "mlctl-gateway", hosts=("127.0.0.1", "localhost"))
        kc = ctx.info["keycloak"]
        url = f"https://127.0.0.1:{port}"
        secret = ensure_client(kc, url + CALLBACK, home)
        cfg = {"port": port, "cert": str(crt), "key": str(key), "kubeconfig": str(ctx.kubeconfig),
               "context": f"sandbox-{CLUSTER}", "issuer": kc["issuer"], "audience": CLUSTER,
               "keycloakCA": str(kc["ca_file"]), "url": url, "clientId": CLIENT_ID}
        path = home / "config.json"
        text = json.dumps(cfg, indent=2, sort_keys=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        from mlctl.sandbox.procs import interpreter

        argv = [interpreter(), "-m", "mlctl.sandbox.gateway", f"--config={path}"]
        from mlctl.kube import api

        code = [Path(__file__), Path(api.__file__)]  # an upgraded mlctl restarts it
        action = state.ensure(PROCESS, argv, files=[path, crt, ctx.kubeconfig, *code], cwd=home, port=port,
                              secret_env={SECRET_ENV: secret})
        ca = ctx.pki / "ca.crt"
        wait_until(lambda: healthy(port, ca), 30, f"the gateway on port {port}", state, PROCESS)
        proc = state.data["processes"][PROCESS]
        return {"url": url, "pid": proc["pid"], "log": proc["log"], "action": action}

    def platform(self, ctx: Context) -> dict:
        ca = (ctx.pki / "ca.crt").read_bytes()
        return {"gateway": {"url": ctx.info[PROCESS]["url"],
                            "certificateAuthorityData": base64.b64encode(ca).decode()}}

    def processes(self, ctx: Context) -> list[str]:
        return [PROCESS]


if __name__ == "__main__":
    sys.exit(main())
