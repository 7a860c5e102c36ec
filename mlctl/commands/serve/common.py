"""What the serve verbs share: the target namespace, reading a service and its predictor objects, and the
gateway client (one keep-alive HTTPS connection, a token for the cluster's audience)."""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import click

dry_run_option = click.option("--dry-run", type=click.Choice(["none", "client", "server"]), default="none",
                              show_default=True,
                              help="client: print the object; server: let the API server check it without saving.")


def target(f):
    from mlctl.commands.train.common import target as train_target

    return train_target(f)


def get_service(f, t, name: str) -> dict:
    """The InferenceService NAME in the target namespace; NotFound (exit 4) with a hint."""
    from mlctl.errors import NotFound

    try:
        return f.kube(t.cluster["name"]).get("InferenceService", name, t.namespace,
                                             what=f"reading inferenceservice/{name}")
    except NotFound:
        raise NotFound(f"inferenceservice {name!r} not found in namespace {t.namespace} on cluster "
                       f"{t.cluster['name']}", hint="list your services with 'mlctl serve list'") from None


def predictor_objects(kube, namespace: str, name: str) -> tuple[dict | None, dict | None]:
    """The predictor's Deployment and HPA (None when KServe has not made them, or they are not readable)."""
    from mlctl.errors import Forbidden
    from mlctl.serve.isvc import predictor_name

    out = []
    for kind in ("Deployment", "HorizontalPodAutoscaler"):
        try:
            out.append(kube.find(kind, predictor_name(name), namespace))
        except Forbidden:
            out.append(None)
    return out[0], out[1]


def predictor_pods(kube, namespace: str, name: str) -> list[dict]:
    pods = kube.list("Pod", namespace, selector=f"serving.kserve.io/inferenceservice={name}",
                     what=f"listing pods of inferenceservice {name}")
    return sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")


# ---- the gateway ---------------------------------------------------------------------------------------

@dataclass
class Answer:
    status: int
    body: bytes
    seconds: float
    headers: dict


class Gateway:
    """HTTPS to the platform's gateway with a bearer token for the cluster's audience. Not thread-safe: one
    per thread (serve load gives each worker its own)."""

    def __init__(self, url: str, ca_file: str | None, token, timeout: float = 30.0):
        parts = urlsplit(url)
        self.scheme, self.host = parts.scheme, parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self.url = url
        self.ca_file = ca_file
        self._token = token if callable(token) else (lambda: token)
        self._context = ssl.create_default_context(cafile=ca_file) if self.scheme == "https" else None
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.scheme == "https":
                self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                         context=self._context)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def clone(self) -> Gateway:
        """Another client with the same settings and token, on a connection of its own (one per thread)."""
        return Gateway(self.url, self.ca_file, self._token, self.timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post(self, path: str, body: bytes) -> Answer:
        """One POST; a kept-alive connection the server closed meanwhile is reopened once (nothing was sent)."""
        headers = {"Authorization": f"Bearer {self._token()}", "Content-Type": "application/json",
                   "Accept": "application/json"}
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._connection()
            start = time.perf_counter()
            try:
                conn.request("POST", self.base + path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest):
                self.close()
                if attempt == 2 or not reused:
                    raise
                continue
            except BaseException:
                self.close()
                raise
            seconds = time.perf_counter() - start
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            return Answer(resp.status, data, seconds, {k.lower(): v for k, v in resp.getheaders()})
        raise AssertionError("unreachable")


def gateway_for(f, cluster: dict, timeout: float = 30.0) -> Gateway:
    """The platform's gateway (`gateway:` in the platform document) with the user's token for cluster."""
    from mlctl.auth.session import cache_for, cluster_token
    from mlctl.errors import UsageError
    from mlctl.paths import cached_ca_file

    section = f.platform.section("gateway") or {}
    url = section.get("url")
    if not url:
        raise UsageError(f"platform {f.platform.name} names no gateway (gateway.url in its platform document)",
                         hint="ask the platform admins to publish the gateway's URL")
    ca = section.get("certificateAuthorityData")
    ca_file = str(cached_ca_file(f"{f.platform.name}-gateway", ca, f.env)) if ca else None
    cache = cache_for(f)
    token = _Token(lambda: cluster_token(f, cluster, cache)[0])
    token()  # not logged in, or no access to the cluster: fail before anything is sent
    return Gateway(str(url), ca_file, token, timeout=timeout)


class _Token:
    """The cluster token, read from the session cache at most every 30 s (a load test sends thousands of
    requests; the cache refreshes it well before it expires)."""

    def __init__(self, fetch):
        self.fetch, self.value, self.at = fetch, None, 0.0

    def __call__(self) -> str:
        now = time.monotonic()
        if self.value is None or now - self.at > 30:
            self.value, self.at = self.fetch(), now
        return self.value


def answer_error(answer: Answer, service: str, where: str):
    """The mlctl error for a gateway/model-server error status (DESIGN.md exit codes)."""
    from mlctl.errors import AuthError, Forbidden, MlctlError, NotFound, Unavailable, UsageError
    from mlctl.serve.protocol import server_message

    why = server_message(answer.body)
    text = f"{service}: {where} answered {answer.status}" + (f": {why}" if why else "")
    if answer.status == 401:
        return AuthError(text, hint="run 'mlctl login' again")
    if answer.status == 403:
        return Forbidden(text, hint="only the namespace's owner (or a group it is shared with) may call it")
    if answer.status == 404:
        return NotFound(text, hint="check the service's name and --protocol")
    if answer.status in (400, 413, 415, 422):
        return UsageError(text, hint="check the request data against the model's inputs")
    if answer.status in (502, 503, 504):
        return Unavailable(text, hint=f"see 'mlctl serve status {service.split('/')[-1]}'; retry when it is Ready")
    return MlctlError(text)


def connection_error(e: BaseException, url: str):
    from mlctl.errors import Unavailable

    if isinstance(e, ssl.SSLError):
        return Unavailable(f"the gateway {url}: TLS failed ({e.reason or e})",
                           hint="check the platform document's gateway CA")
    if isinstance(e, TimeoutError):
        return Unavailable(f"the gateway {url} did not answer in time", hint="retry later")
    return Unavailable(f"cannot reach the gateway {url}: {getattr(e, 'strerror', None) or e}",
                       hint="check the network, or retry later")
