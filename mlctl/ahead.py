"""A connection opened ahead of its first request: the TCP connect and TLS handshake of an HTTP(S) connection
run in a daemon thread while the caller goes on reading the spec (`mlctl train SPEC`: preflight.py). The
handshake waits on the server with the interpreter lock released, so that wait overlaps the caller's work.

Nothing here reports a failure. take() hands over the connection if it is connected within `wait` seconds;
otherwise the caller connects as it would have without it, and its own attempt reports any error (so a
server that does not answer costs at most `wait` more). A connection finished after take() gave up is
closed.
"""

from __future__ import annotations

import threading


class Ahead:
    def __init__(self, make):
        """make(): an http.client connection, not yet connected (called on the thread)."""
        self._lock = threading.Lock()
        self._conn = None
        self._taken = False
        self._thread = threading.Thread(target=self._connect, args=(make,), name="connect-ahead", daemon=True)
        self._thread.start()

    def _connect(self, make) -> None:
        try:
            conn = make()
            conn.connect()
        except Exception:  # noqa: BLE001 - the caller's own connection attempt reports it
            return
        with self._lock:
            if self._taken:
                conn.close()
            else:
                self._conn = conn

    def take(self, wait: float = 0.1):
        """The connected connection, or None (not connected within wait seconds, or it failed)."""
        self._thread.join(wait)
        with self._lock:
            self._taken = True
            conn, self._conn = self._conn, None
        return conn
