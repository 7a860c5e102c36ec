"""The sandbox's gateway (the platform's ingress): one HTTPS address in front of the Services of cluster
`local`, for the pods that really run (docs/workloads.md).

    python -m mlctl.sandbox.gateway --config <state>/gateway/config.json

Routes (by path prefix):
    /serve/<namespace>/<service>/<rest>      -> /<rest> on the Service's first port (KServe's path routing)
    /notebook/<namespace>/<name>/<rest>      -> the same path, prefix kept (as Kubeflow's notebooks expect),
                                                on Service <name>'s first port
    /healthz                                 -> 200, no authentication

Every other request needs a Keycloak access token for audience `local` (the cluster's), as
`Authorization: Bearer <jwt>` or the cookie `mlctl-token` (browsers), checked against the realm's JWKS
(RS256, issuer, audience, expiry). It gets through when its user owns the namespace (annotation
`mlctl.io/owner-username`, label `mlctl.io/owner`, or a subject of RoleBinding `mlctl-owner`) or is in a
group the Service's annotation `mlctl.io/shared-with` names (comma-separated). No or a bad token: 401;
someone else: 403; no ready endpoint: 503.

Endpoints are the Service's selected pods that are Ready and have a pod IP, read through mlctl.kube.api
(cached for 2 s): the API server refuses loopback addresses in EndpointSlices, so the sandbox's real pods
(each on its own 127.x address) never appear there.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import http.server
import itertools
import json
import logging
import ssl
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from mlctl.sandbox import pki
from mlctl.sandbox.component import Component, Context
from mlctl.sandbox.procs import answers, port_open, wait_until

PROCESS = "gateway"
CLUSTER = "local"
COOKIE = "mlctl-token"
SHARED_WITH = "mlctl.io/shared-with"
OWNER_ANNOTATION = "mlctl.io/owner-username"
OWNER_LABEL = "mlctl.io/owner"
OWNER_BINDING = "mlctl-owner"
USER_PREFIX = "oidc:"
CACHE_SECONDS = 2.0
JWKS_SECONDS = 300.0
UPSTREAM_TIMEOUT = 120.0
CHUNK = 64 * 1024
# hop-by-hop headers (RFC 9110 7.6.1) are not forwarded, nor the caller's credentials
_DROP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
         "transfer-encoding", "upgrade", "authorization", "cookie", "host", "content-length"}

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

    def _jwks(self, force: bool = False):
        from jwcrypto import jwk

        with self.lock:
            age = time.monotonic() - self.fetched
            if self.keys is None or age > JWKS_SECONDS or (force and age > 10):
                with urllib.request.urlopen(f"{self.issuer}/.well-known/openid-configuration", timeout=5,
                                            context=self.ctx) as resp:
                    uri = json.load(resp)["jwks_uri"]
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


# ---- the server ------------------------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mlctl-gateway"
    verifier: Verifier
    routes: Routes

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.info("%s %s", self.address_string(), format % args)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and value:
                return value
        return None

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
        try:
            namespace, name, upstream, _ = split(self.path)
            token = self._token()
            if not token:
                raise Refused(401, "no token: send Authorization: Bearer <token for audience local>")
            claims = self.verifier.claims(token)
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
        self._proxy(host, port, upstream, claims["preferred_username"])

    def _proxy(self, host: str, port: int, path: str, user: str) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROP}
        headers.update({"Host": f"{host}:{port}", "X-Forwarded-Proto": "https", "X-Forwarded-For":
                        self.client_address[0], "X-Forwarded-Host": self.headers.get("Host", ""),
                        "kubeflow-userid": user})
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
    handler = type("BoundHandler", (Handler,), {"verifier": Verifier(cfg["issuer"], cfg["audience"],
                                                                      cfg["keycloakCA"]),
                                                "routes": Routes(kube)})
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
        cfg = {"port": port, "cert": str(crt), "key": str(key), "kubeconfig": str(ctx.kubeconfig),
               "context": f"sandbox-{CLUSTER}", "issuer": kc["issuer"], "audience": CLUSTER,
               "keycloakCA": str(kc["ca_file"])}
        path = home / "config.json"
        text = json.dumps(cfg, indent=2, sort_keys=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        argv = [sys.executable, "-m", "mlctl.sandbox.gateway", f"--config={path}"]
        from mlctl.kube import api

        code = [Path(__file__), Path(api.__file__)]  # an upgraded mlctl restarts it
        action = state.ensure(PROCESS, argv, files=[path, crt, ctx.kubeconfig, *code], cwd=home, port=port)
        ca = ctx.pki / "ca.crt"
        wait_until(lambda: healthy(port, ca), 30, f"the gateway on port {port}", state, PROCESS)
        proc = state.data["processes"][PROCESS]
        return {"url": f"https://127.0.0.1:{port}", "pid": proc["pid"], "log": proc["log"], "action": action}

    def platform(self, ctx: Context) -> dict:
        ca = (ctx.pki / "ca.crt").read_bytes()
        return {"gateway": {"url": ctx.info[PROCESS]["url"],
                            "certificateAuthorityData": base64.b64encode(ca).decode()}}

    def processes(self, ctx: Context) -> list[str]:
        return [PROCESS]


if __name__ == "__main__":
    sys.exit(main())
