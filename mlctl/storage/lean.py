"""Small objects without botocore's request pipeline: a PUT or GET signed by botocore's own SigV4 signer and
sent over one kept-alive HTTP connection per thread.

Why (docs/artifacts.md, "Transfers"): botocore spends about 3 ms of CPU on every request here (endpoint
rules, event hooks, parsing), so a client holding Python's interpreter lock tops out near 300 requests/s
whatever its thread count, and 1,000 small files cost more in the client than in the S3 server. This path
takes about a third of that CPU and leaves everything else to botocore: large objects (multipart, ranged
chunks), listings, deletes, presigning.

Its methods take botocore's arguments and raise botocore's exceptions (ClientError with the S3 error code
and HTTP status, EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, SSLError,
ConnectionClosedError), so retries and the translation to exit codes (client.translate) are the same.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
from urllib.parse import quote, urlsplit

_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class _Body:
    """A GET's body: read(n) and close(), as botocore's StreamingBody; the connection is kept for the next
    request only when the body was read to its end."""

    def __init__(self, lean: LeanS3, conn, resp):
        self._lean, self._conn, self._resp = lean, conn, resp

    def read(self, n: int = -1) -> bytes:
        try:
            return self._resp.read(n) if n >= 0 else self._resp.read()
        except (OSError, http.client.HTTPException) as e:  # a timeout too: _error tells them apart
            self._drop()
            raise self._lean._error("read", e) from None

    def close(self) -> None:
        if not self._resp.isclosed():
            self._drop()

    def _drop(self) -> None:
        self._lean._discard(self._conn)


class LeanS3:
    """put_object and get_object for small objects (thread-safe: one connection per thread)."""

    def __init__(self, s3: dict, access_key: str, secret_key: str, *, verify: str | bool | None,
                 connect_timeout: float, read_timeout: float):
        from botocore.auth import S3SigV4Auth
        from botocore.credentials import Credentials

        self.endpoint = str(s3["endpoint"]).rstrip("/")
        parts = urlsplit(self.endpoint)
        self._tls = parts.scheme == "https"
        self._host, self._port = parts.hostname or "", parts.port or (443 if self._tls else 80)
        self._base = parts.path.rstrip("/")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._signer = S3SigV4Auth(Credentials(access_key, secret_key), "s3", str(s3.get("region") or "us-east-1"))
        self._context = None
        if self._tls:
            if verify is False:
                self._context = ssl._create_unverified_context()  # noqa: S323 - the platform asked for no check
            else:
                self._context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._local = threading.local()

    def __repr__(self) -> str:  # no credentials in a traceback or a log
        return f"LeanS3({self.endpoint})"

    # ---- the two calls -------------------------------------------------------------------------------

    def put_object(self, *, Bucket: str, Key: str, Body) -> dict:  # noqa: N803 - botocore's argument names
        data = Body if isinstance(Body, bytes) else Body.read()
        resp, conn = self._send("PUT", Bucket, Key, data, {}, "PutObject")
        resp.read()
        return {"ETag": resp.getheader("ETag")}

    def get_object(self, *, Bucket: str, Key: str, Range: str | None = None,  # noqa: N803
                   IfMatch: str | None = None) -> dict:  # noqa: N803
        headers = {}
        if Range:
            headers["Range"] = Range
        if IfMatch:
            headers["If-Match"] = IfMatch
        resp, conn = self._send("GET", Bucket, Key, b"", headers, "GetObject")
        return {"Body": _Body(self, conn, resp), "ETag": resp.getheader("ETag"),
                "ContentLength": int(resp.getheader("Content-Length") or 0)}

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._discard(conn)

    # ---- the connection ------------------------------------------------------------------------------

    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._tls:
                conn = http.client.HTTPSConnection(self._host, self._port, context=self._context,
                                                   timeout=self._connect_timeout)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self._connect_timeout)
            try:
                conn.connect()
            except OSError as e:  # refused, timed out, or TLS (ssl.SSLError is an OSError)
                raise self._error("connect", e) from None
            conn.sock.settimeout(self._read_timeout)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.conn = conn
        return conn

    def _discard(self, conn) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def _send(self, method: str, bucket: str, key: str, body: bytes, headers: dict, operation: str):
        from botocore.awsrequest import AWSRequest

        path = f"{self._base}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
        request = AWSRequest(method=method, url=self._origin + path, data=body, headers=headers)
        self._signer.add_auth(request)
        signed = dict(request.headers.items())
        for attempt in (1, 2):
            reused = getattr(self._local, "conn", None) is not None
            conn = self._connection()
            try:
                conn.request(method, path, body=body or None, headers=signed)
                resp = conn.getresponse()
            except _STALE as e:
                self._discard(conn)
                if reused and attempt == 1:  # the server closed a kept-alive connection: once more, anew
                    continue
                raise self._error("closed", e) from None
            except (OSError, http.client.HTTPException) as e:  # a timeout too: _error tells them apart
                self._discard(conn)
                raise self._error("read", e) from None
            if resp.status >= 300:
                raise self._client_error(resp, conn, operation)
            if resp.getheader("Connection", "").lower() == "close":
                self._local.conn = None  # http.client closes it once the body is read
            return resp, conn
        raise AssertionError("unreachable")

    # ---- errors as botocore raises them --------------------------------------------------------------

    def _client_error(self, resp, conn, operation: str):
        from botocore.exceptions import ClientError

        try:
            data = resp.read(64 * 1024)
        except (OSError, http.client.HTTPException):
            data = b""
        self._discard(conn)  # its body may not have been read whole
        code = _CODE.search(data)
        message = _MESSAGE.search(data)
        return ClientError({"Error": {"Code": code.group(1).decode() if code else str(resp.status),
                                      "Message": message.group(1).decode() if message else resp.reason},
                            "ResponseMetadata": {"HTTPStatusCode": resp.status}}, operation)

    def _error(self, stage: str, e: Exception):
        from botocore import exceptions as bx

        if isinstance(e, ssl.SSLError):
            return bx.SSLError(endpoint_url=self.endpoint, error=e)
        if isinstance(e, TimeoutError):
            if stage == "connect":
                return bx.ConnectTimeoutError(endpoint_url=self.endpoint)
            return bx.ReadTimeoutError(endpoint_url=self.endpoint)
        if stage == "connect":
            return bx.EndpointConnectionError(endpoint_url=self.endpoint)
        return bx.ConnectionClosedError(endpoint_url=self.endpoint)
