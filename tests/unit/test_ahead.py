"""Connections opened ahead of the first request (mlctl/ahead.py, Kube.connect_ahead, the policy client's):
the first request uses the connection opened ahead, a server that cannot be reached is reported by the
request itself, and one that never finishes its handshake is not waited for."""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlctl.ahead import Ahead
from mlctl.errors import Unavailable
from mlctl.kube.api import Kube


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    peers: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.peers.append(self.client_address)
        data = b'{"items": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def tls_server(tmp_path):
    from mlctl.sandbox import pki

    ca, _ = pki.ensure_ca(tmp_path)
    crt, key = pki.issue(tmp_path, "api", "api", hosts=("127.0.0.1",))
    Api.peers = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", str(ca)
    httpd.shutdown()


def test_the_first_request_goes_over_the_connection_opened_ahead(tls_server):
    url, ca = tls_server
    kube = Kube(url, "test", ca_file=ca, token=lambda: "t0k", timeout=5)
    kube.connect_ahead()
    ahead = kube._ahead
    ahead._thread.join(5)
    opened = ahead._conn
    assert opened is not None and opened.sock is not None  # connected before any request
    assert kube.list("Pod", "ns") == [] and kube.list("Pod", "ns") == []
    assert kube._local.conn is opened
    assert len({port for _, port in Api.peers}) == 1 and len(Api.peers) == 2
    kube.close()


def test_an_unreachable_server_is_reported_by_the_request(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    kube = Kube(f"https://127.0.0.1:{port}", "test", token=lambda: "t0k", timeout=5)
    kube.connect_ahead()
    with pytest.raises(Unavailable) as e:
        kube.list("Pod", "ns")
    assert e.value.exit_code == 7 and "cannot reach the API server" in e.value.message


def test_a_handshake_that_never_ends_is_not_waited_for():
    """A server that accepts the TCP connection and then says nothing: take() gives up after its wait and the
    connection, should it ever finish, is closed rather than handed to anyone."""
    import http.client

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        ctx = ssl.create_default_context()
        ahead = Ahead(lambda: http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=2))
        assert ahead.take(wait=0.1) is None
        assert ahead._thread.is_alive()  # still in the handshake when take() gave up
        ahead._thread.join(5)
        assert ahead._conn is None
    finally:
        listener.close()
