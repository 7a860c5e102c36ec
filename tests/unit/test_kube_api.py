"""mlctl's Kubernetes client (mlctl/kube/api.py) against a small in-process HTTPS server that answers as an API
server does: errors with exit codes, a kept-alive connection the server dropped, paging, and a watch that is
cut off, then told its resourceVersion is too old (410), and resumes. The integration tests run the same client
against the sandbox's real API servers."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlctl.errors import Forbidden, NotFound, QuotaExceeded, Unavailable
from mlctl.kube.api import Kube


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: dict = {}
    seen: list = []

    def log_message(self, *args):
        pass

    def _json(self, status: int, body: dict, close: bool = False):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.path, self.headers.get("Authorization")))
        handler = self.script.get(self.path.split("?")[0])
        if handler is None:
            self._json(404, {"kind": "Status", "message": f"{self.path} not found"})
        else:
            handler(self)

    do_POST = do_GET  # noqa: N815


@pytest.fixture
def server(tmp_path):
    from mlctl.sandbox import pki

    ca, _ = pki.ensure_ca(tmp_path)
    crt, key = pki.issue(tmp_path, "api", "api", hosts=("127.0.0.1",))
    Api.script, Api.seen = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    kube = Kube(f"https://127.0.0.1:{httpd.server_address[1]}", "test", ca_file=str(ca), token=lambda: "t0k",
                timeout=5)
    yield kube, httpd
    kube.close()
    httpd.shutdown()


def test_errors_carry_exit_codes_and_the_servers_message(server):
    kube, _ = server
    Api.script["/api/v1/namespaces/u-bob/pods"] = lambda h: h._json(403, {
        "message": 'pods is forbidden: User "oidc:alice" cannot list resource "pods"'})
    Api.script["/api/v1/namespaces/u-alice/pods"] = lambda h: h._json(403, {
        "message": "pods \"x\" is forbidden: exceeded quota: mlctl-quota"})
    with pytest.raises(Forbidden) as e:
        kube.list("Pod", "u-bob")
    assert e.value.status == 403 and e.value.exit_code == 5 and "cannot list" in e.value.body
    with pytest.raises(QuotaExceeded):
        kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "u-alice"}})
    with pytest.raises(NotFound):
        kube.get("Pod", "nope", "u-bob")
    assert kube.find("Pod", "nope", "u-bob") is None
    assert all(auth == "Bearer t0k" for _, auth in Api.seen)


def test_a_dropped_keep_alive_connection_is_retried_once(server):
    kube, _ = server
    calls = []

    def pods(h):
        calls.append(1)
        h._json(200, {"items": [{"metadata": {"name": f"p{len(calls)}"}}]}, close=len(calls) == 1)

    Api.script["/api/v1/namespaces/ns/pods"] = pods
    assert kube.list("Pod", "ns")[0]["metadata"]["name"] == "p1"
    # the server closed that connection; the next request goes out on a new one without an error
    assert kube.list("Pod", "ns")[0]["kind"] == "Pod"
    assert kube.requests == {"LIST Pod": 2}


def test_429_is_sent_again_after_retry_after(server):
    kube, _ = server
    calls = []

    def busy(h):
        calls.append(1)
        if len(calls) < 3:
            h.send_response(429)
            h.send_header("Retry-After", "0")
            h.send_header("Content-Length", "0")
            h.end_headers()
        else:
            h._json(200, {"items": []})

    Api.script["/apis/mlctl.io/v1alpha1/quotarequests"] = busy
    assert kube.list("QuotaRequest") == [] and len(calls) == 3


def test_list_pages_with_continue(server):
    kube, _ = server

    def page(h):
        token = "c1" if "continue=" not in h.path else None
        first = token is not None
        h._json(200, {"metadata": {"continue": token} if token else {},
                      "items": [{"metadata": {"name": "a" if first else "b"}}]})

    Api.script["/apis/kubeflow.org/v1/namespaces/ns/tfjobs"] = page
    names = [j["metadata"]["name"] for j in kube.list("TFJob", "ns", limit=1)]
    assert names == ["a", "b"]


def test_watch_resumes_after_a_cut_and_relists_after_410(server):
    kube, _ = server
    opens = []

    def tfjobs(h):
        if "watch=1" not in h.path:  # the re-list after a 410
            h._json(200, {"metadata": {"resourceVersion": "20"},
                          "items": [{"metadata": {"name": "j", "resourceVersion": "20"}, "state": "relisted"}]})
            return
        opens.append(h.path)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def chunk(obj):
            line = (json.dumps(obj) + "\n").encode()
            h.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            h.wfile.flush()

        if len(opens) == 1:
            chunk({"type": "MODIFIED", "object": {"metadata": {"name": "j", "resourceVersion": "11"}, "state": 1}})
            h.close_connection = True  # cut off mid-stream, as an API server that restarts does
            return
        if len(opens) == 2:
            chunk({"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}})
        else:
            chunk({"type": "MODIFIED", "object": {"metadata": {"name": "j", "resourceVersion": "21"}, "state": 3}})
        h.wfile.write(b"0\r\n\r\n")

    Api.script["/apis/kubeflow.org/v1/namespaces/ns/tfjobs"] = tfjobs
    events = []
    for kind, obj in kube.watch("TFJob", "ns", name="j", resource_version="10"):
        events.append((kind, obj.get("state")))
        if obj.get("state") == 3:
            break
    assert events == [("MODIFIED", 1), ("SYNC", "relisted"), ("MODIFIED", 3)]
    assert "resourceVersion=10" in opens[0] and "resourceVersion=11" in opens[1]
    assert "resourceVersion=20" in opens[2]


def test_nothing_listening_is_unavailable(tmp_path):
    kube = Kube("https://127.0.0.1:9", "test", token=lambda: "t", timeout=2)
    with pytest.raises(Unavailable) as e:
        kube.list("Pod", "ns")
    assert e.value.exit_code == 7 and "cannot reach" in e.value.message
