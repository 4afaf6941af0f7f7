"""Drive a framework app in process: plain requests, and whole upgrades over a socket pair.

A handshake is built with Werkzeug's :class:`~werkzeug.test.EnvironBuilder`
(any path, query string, headers and cookies) and given the shape of the
Werkzeug dev server's environ: ``werkzeug.socket`` is the server end of a
socket pair and ``wsgi.input`` a buffered reader over it, so the app upgrades
for real while the test plays the client on the other end with
:class:`tests.core._peer.Peer`.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from werkzeug.test import Client, EnvironBuilder, TestResponse

from tests.conftest import timeout
from tests.core._peer import Peer

#: RFC 6455 §1.3's example key, and the accept value it gives.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

HANDSHAKE_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": KEY,
    "Sec-WebSocket-Version": "13",
}


def handshake_environ(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The environ of a handshake for ``path`` (which may hold a query string)."""
    builder = EnvironBuilder(path=path, headers={**HANDSHAKE_HEADERS, **(headers or {})})
    try:
        environ: dict[str, Any] = builder.get_environ()
    finally:
        builder.close()
    environ["SERVER_PROTOCOL"] = "HTTP/1.1"
    environ["wsgi.multithread"] = True
    return environ


def request(app: Any, path: str, headers: dict[str, str] | None = None, **kw: Any) -> TestResponse:
    """A plain request through Werkzeug's test client (no socket: it cannot upgrade)."""
    return Client(app).open(path, headers=headers, **kw)


class Upgrade:
    """Runs ``app`` with a handshake environ on the server end of a socket pair, in a thread."""

    def __init__(
        self,
        app: Any,
        path: str,
        headers: dict[str, str] | None = None,
        early: bytes = b"",
    ) -> None:
        self.server, client = socket.socketpair()
        self.peer = Peer(client)
        self.reader = self.server.makefile("rb")
        if early:
            # As a server's buffered reader does: the bytes after the request
            # headers are already in the reader, not in the socket.
            client.sendall(early)
            assert self.reader.peek(len(early))[: len(early)] == early
        self.environ = handshake_environ(path, headers)
        self.environ["werkzeug.socket"] = self.server
        self.environ["wsgi.input"] = self.reader
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(app,), daemon=True)
        self.thread.start()

    def _start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None):  # type: ignore[no-untyped-def]
        self.status, self.headers = status, headers
        return lambda data: None

    def _run(self, app: Any) -> None:
        try:
            result = app(self.environ, self._start_response)
            try:
                self.body = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except BaseException as exc:  # re-raised by join()
            self.error = exc

    def read_head(self) -> tuple[int, dict[str, str], bytes]:
        """The response head the app wrote on the socket: status, headers, and what follows."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.peer.sock.recv(1)
            if not chunk:
                raise AssertionError(f"EOF before a response head; got {data!r}")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), fields, rest

    def read_101(self) -> dict[str, str]:
        status, fields, rest = self.read_head()
        assert status == 101, (status, fields)
        assert fields["sec-websocket-accept"] == ACCEPT, fields
        assert rest == b""
        return fields

    def join(self) -> Upgrade:
        """Wait for the app to return; the socket pair is closed then."""
        self.thread.join(timeout(10))
        assert not self.thread.is_alive(), "the app did not return"
        self.peer.sock.close()
        self.reader.close()
        self.server.close()
        if self.error is not None:
            raise self.error
        return self

    def finish(self) -> Upgrade:
        """Close from the client side with 1000 and wait for the app to return."""
        self.peer.close(1000)
        self.peer.expect_close()
        assert self.peer.read_to_eof() == b""
        return self.join()

    def rejected(self) -> tuple[str, dict[str, str], bytes]:
        """For a handshake the app refused: its status line, headers and body (no socket use)."""
        self.join()
        assert self.status is not None
        return self.status, {k.lower(): v for k, v in self.headers}, self.body
