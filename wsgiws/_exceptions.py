"""The exceptions wsgiws raises, all under one root.

::

    WebSocketError                  root: ``except WebSocketError`` catches all of ours
     ├── HandshakeError             the upgrade request is not a valid RFC 6455 handshake
     │    └── Reject                raised by an accept hook: refuse with an HTTP status
     ├── ConnectionClosed           the connection is over; carries ``code`` and ``reason``
     └── UnsupportedServer          the WSGI server gives no way to take over the socket

Foreign exceptions (``wsproto``'s protocol errors, ``OSError`` from the socket)
never reach user code: the connection maps them to ours at one choke point and
chains the original (``raise ... from exc``), so the cause stays in tracebacks.
"""

from __future__ import annotations

import http
from collections.abc import Iterable, Mapping

__all__ = [
    "ConnectionClosed",
    "HandshakeError",
    "Reject",
    "UnsupportedServer",
    "WebSocketError",
]


class WebSocketError(Exception):
    """Root of every exception raised by wsgiws."""


class HandshakeError(WebSocketError):
    """The request is a WebSocket handshake that cannot be accepted.

    ``status`` is the HTTP status line the client gets (``"400 Bad Request"``
    or ``"426 Upgrade Required"``), ``detail`` the one-line reason sent as the
    plain-text body, and ``headers`` any extra response headers the status needs
    (RFC 6455 §4.4: a 426 names the versions we speak).
    """

    def __init__(
        self,
        detail: str,
        status: str = "400 Bad Request",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.headers = headers


class Reject(HandshakeError):
    """Raised by an accept hook to refuse a handshake with an HTTP response.

    ``status`` is a code (``401``) or a whole status line (``"401 Unauthorized"``);
    ``body`` the plain-text body (the status's phrase when empty); ``headers``
    extra response headers (``WWW-Authenticate``, ``Retry-After``)::

        def authenticate(request):
            if request.cookies.get("session") not in SESSIONS:
                raise Reject(401, "log in first")
    """

    def __init__(
        self,
        status: int | str = 403,
        body: str = "",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> None:
        if isinstance(status, int):
            try:
                phrase = http.HTTPStatus(status).phrase
            except ValueError:
                phrase = "Rejected"
            status = f"{status} {phrase}"
        code = status.split(" ", 1)[0]
        if not (code.isdigit() and len(code) == 3 and not code.startswith(("1", "2", "3"))):
            raise ValueError(f"a rejection needs a 4xx or 5xx status, not {status!r}")
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        super().__init__(
            body or status.split(" ", 1)[-1],
            status=status,
            headers=tuple((str(k), str(v)) for k, v in pairs),
        )


class ConnectionClosed(WebSocketError):
    """The WebSocket connection has ended.

    ``code`` is the close code that ended it (RFC 6455 §7.4): the peer's when the
    peer closed, ours when we did, ``1006`` when the TCP connection was lost
    without a closing handshake. ``reason`` is the close reason, possibly empty.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class UnsupportedServer(WebSocketError):
    """The WSGI server running the app offers no way to take over the client socket."""
