"""A small Kubernetes REST client on the standard library, for the hot paths of `mlctl train`.

Importing the kubernetes package costs about half a second (it loads every API model), more than
`kubectl create` needs in total; submitting, getting and listing jobs go through this client instead.
Watches, events and other calls keep using the kubernetes package (kube/jobs.py loads it on demand).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from urllib.parse import urlencode, urlsplit

from mlctl.kube.errors import from_status

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class KubeRest:
    def __init__(self, server: str, ca_file: str | None, token: Callable[[], str], cluster: str,
                 timeout: float = 60):
        parts = urlsplit(server)
        self.host, self.port = parts.hostname, parts.port or 443
        self.base = parts.path.rstrip("/")
        self.ca_file, self.token, self.cluster, self.timeout = ca_file, token, cluster, timeout
        self._conn = None

    def _connection(self):
        import http.client
        import ssl

        if self._conn is None:
            ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
            self._conn = http.client.HTTPSConnection(self.host, self.port, context=ctx, timeout=self.timeout)
        return self._conn

    def _send(self, method: str, path: str, query: dict | None, body, accept: str, content_type: str, what: str):
        from mlctl.errors import Unavailable

        url = self.base + path + ("?" + urlencode({k: v for k, v in (query or {}).items() if v is not None})
                                  if query else "")
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": accept, "User-Agent": "mlctl"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        for attempt in (1, 2):  # one retry on a kept-alive connection the server has closed meanwhile
            try:
                conn = self._connection()
                conn.request(method, url, body=data, headers=headers)
                return conn.getresponse()
            except (ConnectionError, TimeoutError, OSError) as e:
                self.close()
                if attempt == 2 or not isinstance(e, (ConnectionResetError, BrokenPipeError)):
                    raise Unavailable(f"{what} on cluster {self.cluster}: cannot reach the API server",
                                      hint="check the network, or retry later") from e
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, *, query: dict | None = None, body=None,
                accept: str = "application/json", content_type: str = "application/json", what: str) -> dict:
        resp = self._send(method, path, query, body, accept, content_type, what)
        raw = resp.read()
        if resp.status >= 400:
            raise from_status(resp.status, resp.reason, _message(raw), what, self.cluster)
        return json.loads(raw) if raw else {}

    def lines(self, path: str, *, query: dict | None = None, what: str) -> Iterator[str]:
        """Stream a text response line by line (pod logs) on a connection of its own (it may run in another
        thread while this client serves the caller)."""
        own = KubeRest.__new__(KubeRest)
        own.__dict__.update(self.__dict__)
        own._conn = None
        yield from own._stream(path, query, what)

    def _stream(self, path: str, query: dict | None, what: str) -> Iterator[str]:
        resp = self._send("GET", path, query, None, "*/*", "", what)
        if resp.status >= 400:
            raise from_status(resp.status, resp.reason, _message(resp.read()), what, self.cluster)
        try:
            while True:
                line = resp.readline()
                if not line:
                    return
                yield line.decode(errors="replace")
        finally:
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _message(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("message") or "")
    except (ValueError, AttributeError):
        return raw.decode(errors="replace")[:200]
