"""The one Kubernetes API client of mlctl, on the standard library (importing the kubernetes package costs
about half a second, more than `kubectl create` needs in all).

One `Kube` per cluster: keep-alive HTTPS, one connection per thread (safe under thread pools), a bearer
token from a callable (refreshed by the caller's cache) or a client certificate. Its API: get/find, list
(paged, or the server's Table rendering), create, server-side apply, json/merge patch (subresources too),
replace, delete and delete of a collection, watch (resumed after a dropped connection or a 410), events of
named objects, and streamed text (logs). Failures become mlctl errors once, in kube/errors.py; each carries
the HTTP status as `.status`. Every request is counted by verb and kind (`requests`), for `admin sync -v` and
the benches.

Two constructors: `kube/client.py` builds one for the logged-in user (cluster from the platform document,
token exchanged for its audience); `from_kubeconfig` one from a kubeconfig context (admins, cron, sandbox).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from urllib.parse import urlencode, urlsplit

from mlctl import logs, yamlio
from mlctl.kube.errors import from_status
from mlctl.kube.kinds import KINDS, Kind, kind

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
JSON = "application/json"
PATCH_TYPES = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
               "strategic": "application/strategic-merge-patch+json",
               "apply": "application/apply-patch+yaml"}
def _kind(k: str | Kind) -> Kind:
    return k if isinstance(k, Kind) else kind(k)


class Kube:
    """One cluster's API server, as whoever the token or client certificate identifies."""

    def __init__(self, server: str, cluster: str, *, ca_file: str | None = None, ca_data: bytes | None = None,
                 token: Callable[[], str] | None = None, cert: tuple[str, str] | None = None,
                 insecure: bool = False, timeout: float = 60.0):
        parts = urlsplit(server)
        if parts.scheme != "https":
            from mlctl.errors import UsageError

            raise UsageError(f"cluster {cluster}: API server {server!r} is not an https URL")
        self.server, self.cluster, self.timeout = server, cluster, timeout
        self.host, self.port, self.base = parts.hostname, parts.port or 443, parts.path.rstrip("/")
        self._token, self._cert, self._ca_file, self._ca_data, self._insecure = token, cert, ca_file, ca_data, insecure
        self._ctx = None
        self._ahead = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    # ---- transport ---------------------------------------------------------------------------------------

    def _context(self):
        import ssl

        with self._lock:
            if self._ctx is None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                if self._insecure:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                elif self._ca_file or self._ca_data:
                    ctx.load_verify_locations(cafile=self._ca_file,
                                              cadata=self._ca_data.decode() if self._ca_data else None)
                else:
                    ctx.load_default_certs()
                if self._cert:
                    ctx.load_cert_chain(*self._cert)
                self._ctx = ctx
            return self._ctx

    def _new_connection(self, timeout: float | None = None):
        import http.client

        return http.client.HTTPSConnection(self.host, self.port, context=self._context(),
                                           timeout=timeout or self.timeout)

    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                ahead, self._ahead = self._ahead, None
            conn = self._local.conn = (ahead and ahead.take()) or self._new_connection()
        return conn

    def connect_ahead(self) -> None:
        """Open the connection the first request will use now, in the background (mlctl/ahead.py)."""
        from mlctl.ahead import Ahead

        with self._lock:
            if self._ahead is None and getattr(self._local, "conn", None) is None:
                self._ahead = Ahead(self._new_connection)

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def close(self) -> None:
        self._drop()

    def _url(self, path: str, query: dict | list | None) -> str:
        if not query:
            return self.base + path
        pairs = query.items() if isinstance(query, dict) else query
        return self.base + path + "?" + urlencode([(k, v) for k, v in pairs if v is not None])

    def _headers(self, accept: str, content_type: str | None) -> dict:
        headers = {"Accept": accept, "User-Agent": "mlctl"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token()}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _send(self, conn, method: str, url: str, data: bytes | None, headers: dict, what: str):
        import http.client

        from mlctl.errors import Unavailable

        try:
            conn.request(method, url, body=data, headers=headers)
            return conn.getresponse()
        except http.client.HTTPException as e:
            raise Unavailable(f"{what} on cluster {self.cluster}: the API server's answer was cut short",
                              hint="retry later") from e
        except TimeoutError as e:
            raise Unavailable(f"{what} on cluster {self.cluster}: the API server did not answer in "
                              f"{conn.timeout:.0f} s", hint="retry later") from e
        except OSError as e:
            import ssl

            if isinstance(e, ssl.SSLCertVerificationError):
                raise Unavailable(f"{what} on cluster {self.cluster}: the API server's certificate is not "
                                  f"trusted ({e.verify_message})",
                                  hint="check the cluster's CA in the platform document") from e
            raise Unavailable(f"{what} on cluster {self.cluster}: cannot reach the API server",
                              hint="check the network, or retry later") from e

    def request(self, method: str, path: str, *, query: dict | list | None = None, body=None,
                accept: str = JSON, content_type: str = JSON, what: str, count: str | None = None,
                verb: str | None = None) -> dict:
        """One request; the decoded JSON answer ({} when empty). Errors raise (kube/errors.py). The request is
        counted under (verb or method, count or path)."""

        with self._lock:
            self.counts[(verb or method, count or path)] += 1
        url = self._url(path, query)
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        headers = self._headers(accept, content_type if data is not None else None)
        for attempt in range(1, self.RETRIES_429 + 1):
            resp, raw = self._once(method, url, data, headers, what)
            # 429: the server did not take the request (still initializing, or rate limiting): as client-go
            # does, wait what Retry-After says (at most a few seconds) and send it again
            if resp.status != 429 or attempt == self.RETRIES_429:
                break
            time.sleep(min(float(resp.getheader("Retry-After") or 1), 3.0))
        if resp.status >= 400:
            raise from_status(resp.status, resp.reason, _message(raw), what, self.cluster)
        if resp.getheader("Connection", "").lower() == "close":
            self._drop()
        return json.loads(raw) if raw else {}

    RETRIES_429 = 10

    def _once(self, method: str, url: str, data: bytes | None, headers: dict, what: str):
        """Send once (again on a new connection if the kept-alive one was dropped); (response, body)."""
        import http.client

        for attempt in (1, 2):  # one retry when a kept-alive connection was closed by the server meanwhile
            reused = getattr(self._local, "conn", None) is not None
            conn = self._connection()
            try:
                resp = self._send(conn, method, url, data, headers, what)
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError) as e:
                self._drop()
                from mlctl.errors import Unavailable

                raise Unavailable(f"{what} on cluster {self.cluster}: the API server's answer was cut short",
                                  hint="retry later") from e
            except Exception as e:
                self._drop()
                cause = e.__cause__ if e.__cause__ is not None else e
                # a kept-alive connection the server dropped (it restarted, or closed an idle connection):
                # nothing reached it, so the request goes once more on a new connection
                stale = reused and isinstance(cause, (OSError, http.client.HTTPException)) \
                    and not isinstance(cause, TimeoutError)
                if attempt == 2 or not stale:
                    raise
        return resp, raw

    # ---- objects -----------------------------------------------------------------------------------------

    def get(self, k: str | Kind, name: str, namespace: str | None = None, *, sub: str | None = None,
            what: str | None = None) -> dict:
        """The object; NotFound (exit 4) when it does not exist."""
        k = _kind(k)
        return self.request("GET", k.path(namespace, name, sub), count=k.kind,
                            what=what or f"reading {k.short}/{name}")

    def find(self, k: str | Kind, name: str, namespace: str | None = None) -> dict | None:
        """The object, or None when it does not exist."""
        from mlctl.errors import NotFound

        try:
            return self.get(k, name, namespace)
        except NotFound:
            return None

    def pages(self, k: str | Kind, namespace: str | None = None, *, selector: str | None = None,
              field_selector: str | None = None, limit: int | None = None, table: bool = False,
              what: str | None = None) -> Iterator[dict]:
        """Each page of a list (limit/continue); with table=True, the server's Table rendering."""
        k = _kind(k)
        token = None
        while True:
            page = self.request("GET", k.path(namespace), accept=TABLE if table else JSON, count=k.kind, verb="LIST",
                                query={"limit": limit, "continue": token, "labelSelector": selector,
                                       "fieldSelector": field_selector},
                                what=what or f"listing {k.plural}")
            yield page
            token = (page.get("metadata") or {}).get("continue")
            if not token or not limit:
                return

    def list(self, k: str | Kind, namespace: str | None = None, *, selector: str | None = None,
             field_selector: str | None = None, limit: int | None = None, what: str | None = None) -> list[dict]:
        """Every object of kind (each with apiVersion and kind set); paged when limit is given, else ONE
        request (the API server serves it from its watch cache)."""
        k = _kind(k)
        items: list[dict] = []
        for page in self.pages(k, namespace, selector=selector, field_selector=field_selector, limit=limit,
                               what=what):
            for item in page.get("items") or []:
                item.setdefault("apiVersion", k.api_version)
                item.setdefault("kind", k.kind)
                items.append(item)
        return items

    def exists_any(self, k: str | Kind, namespace: str) -> bool:
        """Whether namespace holds at least one object of kind (a kind not installed holds none)."""
        from mlctl.errors import NotFound

        try:
            return bool(next(self.pages(k, namespace, limit=1)).get("items"))
        except NotFound:
            return False

    def create(self, obj: dict, *, dry_run: bool = False, strict: bool = True, manager: str | None = None,
               what: str | None = None) -> dict:
        k, meta = kind(obj), obj["metadata"]
        query = {"fieldValidation": "Strict" if strict else None, "fieldManager": manager,
                 "dryRun": "All" if dry_run else None}
        return self.request("POST", k.path(meta.get("namespace")), query=query, body=obj, count=k.kind,
                            what=what or f"creating {k.short}/{meta.get('name') or meta.get('generateName')}")

    def apply(self, obj: dict, manager: str, *, force: bool = True, dry_run: bool = False,
              sub: str | None = None, what: str | None = None) -> dict:
        """Server-side apply (JSON is YAML)."""
        k, meta = kind(obj), obj["metadata"]
        query = {"fieldManager": manager, "force": "true" if force else "false", "dryRun": "All" if dry_run else None}
        return self.request("PATCH", k.path(meta.get("namespace"), meta["name"], sub), query=query, body=obj,
                            content_type=PATCH_TYPES["apply"], count=k.kind,
                            what=what or f"applying {k.short}/{meta['name']}")

    def patch(self, k: str | Kind, name: str, patch, namespace: str | None = None, *, type: str = "merge",
              sub: str | None = None, dry_run: bool = False, manager: str | None = None,
              what: str | None = None) -> dict:
        """A merge, JSON (RFC 6902) or strategic patch of the object or of a subresource (status, scale)."""
        k = _kind(k)
        return self.request("PATCH", k.path(namespace, name, sub), body=patch, content_type=PATCH_TYPES[type],
                            query={"dryRun": "All" if dry_run else None, "fieldManager": manager}, count=k.kind,
                            what=what or f"updating {k.short}/{name}")

    def patch_json(self, k: str | Kind, name: str, namespace: str | None, ops: list[dict]) -> dict:
        return self.patch(k, name, ops, namespace, type="json")

    def patch_status(self, k: str | Kind, name: str, namespace: str | None, patch: dict, *,
                     dry_run: bool = False) -> dict:
        return self.patch(k, name, patch, namespace, sub="status", dry_run=dry_run)

    def replace(self, obj: dict, what: str | None = None) -> dict:
        k, meta = kind(obj), obj["metadata"]
        return self.request("PUT", k.path(meta.get("namespace"), meta["name"]), body=obj, count=k.kind,
                            what=what or f"replacing {k.short}/{meta['name']}")

    def delete(self, k: str | Kind, name: str, namespace: str | None = None, *, dry_run: bool = False,
               propagation: str = "Background", grace_seconds: int | None = None, what: str | None = None) -> dict:
        k = _kind(k)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        return self.request("DELETE", k.path(namespace, name), query={"dryRun": "All" if dry_run else None},
                            body=body, count=k.kind, what=what or f"deleting {k.short}/{name}")

    def delete_collection(self, k: str | Kind, namespace: str | None = None, *, selector: str | None = None,
                          what: str | None = None) -> dict:
        """Delete every object of kind (matching selector) in ONE request."""
        k = _kind(k)
        return self.request("DELETE", k.path(namespace), query={"labelSelector": selector},
                            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
                            count=k.kind, what=what or f"deleting {k.plural}")

    def events(self, namespace: str, names: set[str] | None = None, *, field_selector: str | None = None) -> list[dict]:
        """Events in namespace about the named objects (all when names is None), oldest first."""
        events = self.list("Event", namespace, field_selector=field_selector, what="listing events")
        if names is not None:
            events = [e for e in events if (e.get("involvedObject") or {}).get("name") in names]
        return sorted(events, key=event_time)

    # ---- streams -----------------------------------------------------------------------------------------

    def lines(self, path: str, *, query: dict | None = None, what: str, timeout: float | None = None) -> Iterator[str]:
        """A text response line by line (pod logs), on a connection of its own."""
        conn = self._new_connection(timeout)
        try:
            resp = self._send(conn, "GET", self._url(path, query), None, self._headers("*/*", None), what)
            if resp.status >= 400:
                raise from_status(resp.status, resp.reason, _message(resp.read()), what, self.cluster)
            while True:
                line = resp.readline()
                if not line:
                    return
                yield line.decode(errors="replace")
        finally:
            conn.close()

    def watch(self, k: str | Kind, namespace: str | None = None, *, name: str | None = None,
              selector: str | None = None, resource_version: str | None = None, timeout: float | None = None,
              on_open: Callable[[], None] | None = None, max_failures: int = 60) -> Iterator[tuple[str, dict]]:
        """(type, object) for each change, until timeout (None: forever), surviving API server restarts.

        A dropped watch resumes from the last resourceVersion. When that is too old (410 Gone), the objects
        are listed again and each is yielded as ("SYNC", obj) before the watch goes on from the list's
        version. on_open is called each time the server has accepted the watch.
        """
        from mlctl.errors import MlctlError, Unavailable

        k = _kind(k)
        field_selector = f"metadata.name={name}" if name else None
        deadline = None if timeout is None else time.monotonic() + timeout
        version = resource_version
        failures = 0
        resumed = False  # True once a watch has been open: later opens resume it
        while deadline is None or time.monotonic() < deadline:
            if version is None:
                page = next(self.pages(k, namespace, selector=selector, field_selector=field_selector))
                version = (page.get("metadata") or {}).get("resourceVersion")
                for item in page.get("items") or []:
                    item.setdefault("kind", k.kind)
                    yield "SYNC", item
            left = 30 if deadline is None else max(1, min(30, int(deadline - time.monotonic()) + 1))
            query = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true",
                     "timeoutSeconds": left, "labelSelector": selector, "fieldSelector": field_selector}
            conn = self._new_connection(timeout=left + 15)
            try:
                resp = self._send(conn, "GET", self._url(k.path(namespace), query), None,
                                  self._headers(JSON, None), f"watching {k.plural}")
                if resp.status == 410:
                    version = None
                    continue
                if resp.status >= 400:
                    raise from_status(resp.status, resp.reason, _message(resp.read()), f"watching {k.plural}",
                                      self.cluster)
                if on_open:
                    on_open()
                failures, resumed = 0, True
                while True:
                    line = resp.readline()
                    if not line:
                        break
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            version = None
                            break
                        raise from_status(int(obj.get("code") or 500), obj.get("reason") or "",
                                          obj.get("message") or "", f"watching {k.plural}", self.cluster)
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event.get("type") == "BOOKMARK":
                        continue
                    obj.setdefault("kind", k.kind)
                    yield event["type"], obj
            except (MlctlError, OSError, ValueError) as e:
                # A 4xx refuses the watch, except while resuming: an API server that has just restarted answers
                # 401/403 until its authenticators and RBAC caches have synced.
                refused = isinstance(e, MlctlError) and not isinstance(e, Unavailable)
                if refused and not (resumed and getattr(e, "status", 0) in (401, 403)):
                    raise
                failures += 1
                if failures > max_failures:
                    raise Unavailable(f"lost the API server of cluster {self.cluster} while watching {k.plural}",
                                      hint="retry later") from e
                logs.info(__name__, "watch of %s on %s interrupted (%s); resuming", k.plural, self.cluster, e)
                time.sleep(min(5.0, 0.25 * failures))
            finally:
                conn.close()

    @property
    def requests(self) -> dict[str, int]:
        """{"LIST ResourceQuota": 1, "PATCH ResourceQuota": 10, ...}."""
        return {f"{m} {k}": n for (m, k), n in sorted(self.counts.items())}


def event_time(e: dict) -> str:
    return (e.get("lastTimestamp") or e.get("eventTime") or (e.get("metadata") or {}).get("creationTimestamp")
            or "")


def _message(raw: bytes) -> str:
    """The Status message of an error answer, on one line (a proxy in between may answer with HTML)."""
    try:
        text = str(json.loads(raw).get("message") or "")
    except (ValueError, AttributeError):
        text = raw.decode(errors="replace")[:200]
    return " ".join(text.split())


# ---- kubeconfig ------------------------------------------------------------------------------------------

def from_kubeconfig(path: str, context: str | None = None, *, cluster: str | None = None,
                    timeout: float = 60.0) -> Kube:
    """A Kube for one context of a kubeconfig (its current context when None). Client certificates and
    tokens are used directly; an exec plugin is run as kubectl runs it."""
    import base64
    import os
    from pathlib import Path

    import yaml

    from mlctl.errors import NotFound, UsageError

    try:
        doc = yamlio.load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"cannot read kubeconfig {path}: {str(e).splitlines()[0]}",
                         hint="pass a readable kubeconfig") from e
    if not isinstance(doc, dict):
        raise UsageError(f"kubeconfig {path} is not a kubeconfig")
    context = context or doc.get("current-context")
    ctx = _named(doc, "contexts", context, "context")
    if ctx is None:
        raise NotFound(f"kubeconfig {path} has no context {context!r}")
    entry = _named(doc, "clusters", ctx.get("cluster"), "cluster") or {}
    user = _named(doc, "users", ctx.get("user"), "user") or {}
    here = Path(path).resolve().parent

    def file(p: str) -> str:
        return str(p if os.path.isabs(p) else here / p)

    ca_data = base64.b64decode(entry["certificate-authority-data"]) if entry.get("certificate-authority-data") else None
    ca_file = file(entry["certificate-authority"]) if entry.get("certificate-authority") else None
    cert = None
    if user.get("client-certificate-data") or user.get("client-certificate"):
        cert = _cert_files(user, file)
    token = None
    if user.get("token"):
        static = user["token"]
        token = lambda: static  # noqa: E731
    elif user.get("tokenFile"):
        token_path = file(user["tokenFile"])
        token = lambda: Path(token_path).read_text().strip()  # noqa: E731
    elif user.get("exec"):
        token = _ExecToken(user["exec"])
    if not entry.get("server"):
        raise UsageError(f"kubeconfig {path}, context {context}: the cluster has no server")
    return Kube(entry["server"], cluster or context, ca_file=ca_file, ca_data=ca_data, token=token, cert=cert,
                insecure=bool(entry.get("insecure-skip-tls-verify")), timeout=timeout)


def contexts(path: str) -> list[str]:
    import yaml

    from mlctl.errors import UsageError

    try:
        with open(path) as fh:
            doc = yamlio.load(fh.read()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"cannot read kubeconfig {path}: {str(e).splitlines()[0]}",
                         hint="pass --kubeconfig (or MLCTL_ADMIN_KUBECONFIG) naming a readable kubeconfig") from e
    return [c.get("name") for c in doc.get("contexts") or [] if isinstance(c, dict)]


def _named(doc: dict, section: str, name: str | None, key: str) -> dict | None:
    for item in doc.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item.get(key) or {}
    return None


def _cert_files(user: dict, file) -> tuple[str, str]:
    """Paths of the client certificate and key; embedded data goes to a private temporary directory that is
    removed at exit (ssl loads certificates only from files)."""
    import atexit
    import base64
    import shutil
    import tempfile
    from pathlib import Path

    if user.get("client-certificate"):
        return file(user["client-certificate"]), file(user["client-key"])
    folder = Path(tempfile.mkdtemp(prefix="mlctl-kube-"))
    atexit.register(shutil.rmtree, folder, True)
    crt, key = folder / "client.crt", folder / "client.key"
    crt.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.touch(0o600)
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    return str(crt), str(key)


class _ExecToken:
    """A kubeconfig exec credential plugin (client.authentication.k8s.io), run on demand and cached until the
    expiry it states."""

    def __init__(self, spec: dict):
        self.spec, self.token, self.expires = spec, None, 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        import os
        import subprocess
        from datetime import datetime

        from mlctl.errors import AuthError

        with self._lock:
            if self.token and time.time() < self.expires - 10:
                return self.token
            env = {**os.environ, **{e["name"]: e["value"] for e in self.spec.get("env") or []}}
            argv = [self.spec["command"], *(self.spec.get("args") or [])]
            try:
                out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=True)
                status = json.loads(out.stdout)["status"]
            except (OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
                raise AuthError(f"the kubeconfig's credential plugin {self.spec['command']} failed",
                                hint="run it by hand to see why") from e
            self.token = status["token"]
            stamp = status.get("expirationTimestamp")
            self.expires = (datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp
                            else time.time() + 60)
            return self.token


__all__ = ["KINDS", "Kind", "Kube", "contexts", "event_time", "from_kubeconfig", "kind"]
