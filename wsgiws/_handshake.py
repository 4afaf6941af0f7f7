"""The opening handshake, sans I/O (RFC 6455 §4.2.1-4.2.2).

This module reads a request through :class:`webob.Request` and decides: either
the request is a valid WebSocket handshake and we answer ``101 Switching
Protocols`` (:func:`accept` returns the response), or it is not and we answer
an HTTP error (:func:`accept` raises :class:`HandshakeError` naming the defect).
It never touches a socket: the connection layer writes what this returns.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import webob

from ._exceptions import HandshakeError

__all__ = ["Accept", "accept", "accept_key", "is_handshake", "tokens"]

#: RFC 6455 §1.3: the GUID concatenated to the client's key.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: RFC 6455 §4.1: the only version this protocol defines.
VERSION = "13"


def tokens(value: str | None) -> list[str]:
    """Split an HTTP token list (``"keep-alive, Upgrade"``) into lower-case tokens.

    Written by hand: webob parses Accept-* lists but not ``Connection`` or
    ``Upgrade``, whose grammar (RFC 9110 §5.6.1, ``#token``) is just this.
    """
    if not value:
        return []
    return [t.strip().lower() for t in value.split(",") if t.strip()]


def is_handshake(environ: Mapping[str, Any]) -> bool:
    """Whether the request *tries* to open a WebSocket.

    True when any header only a WebSocket client sends is present: ``Upgrade``
    naming ``websocket``, ``Sec-WebSocket-Key`` or ``Sec-WebSocket-Version``.
    Such a request is ours to accept or reject; any other request (a browser
    loading the page at the same path, a health check) belongs to the app.
    """
    upgrade = [t.split("/")[0] for t in tokens(environ.get("HTTP_UPGRADE"))]
    return (
        "websocket" in upgrade
        or "HTTP_SEC_WEBSOCKET_KEY" in environ
        or "HTTP_SEC_WEBSOCKET_VERSION" in environ
    )


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a client's key (RFC 6455 §4.2.2 item 5.4)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class Accept:
    """A handshake we accept: the 101 response to write, and what was negotiated."""

    #: The subprotocol chosen from the client's offer, or None.
    subprotocol: str | None
    #: The 101 response's headers, in order.
    headers: tuple[tuple[str, str], ...]

    status = "101 Switching Protocols"

    def response_bytes(self) -> bytes:
        """The whole 101 response as it goes on the wire.

        Always ``HTTP/1.1``: the handshake requires it, and clients such as the
        ``websockets`` package reject a 101 carried by another version.
        """
        lines = [f"HTTP/1.1 {self.status}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def accept(
    request: webob.Request,
    subprotocols: Sequence[str] = (),
    *,
    check_http_version: bool = True,
) -> Accept:
    """Validate a handshake request; return the response or raise :class:`HandshakeError`.

    The checks follow RFC 6455 §4.2.1 in order, so the first defect is the one
    named. A missing or unknown ``Sec-WebSocket-Version`` gets ``426 Upgrade
    Required`` with ``Sec-WebSocket-Version: 13`` (§4.4); every other defect
    gets ``400 Bad Request``.

    ``subprotocols`` is the server's list in order of preference; the first one
    the client also offers is chosen (§4.2.2 item 5.4: at most one is echoed).

    ``check_http_version=False`` skips the HTTP/1.1 check, for servers whose
    ``SERVER_PROTOCOL`` does not report the request's version.
    """
    if request.method != "GET":
        raise HandshakeError(f"a WebSocket handshake must use GET, not {request.method}")
    protocol = request.environ.get("SERVER_PROTOCOL", "")
    if check_http_version and protocol.upper() != "HTTP/1.1":
        raise HandshakeError(f"a WebSocket handshake needs HTTP/1.1, not {protocol or 'unknown'}")
    if not request.environ.get("HTTP_HOST"):
        raise HandshakeError("missing Host header")
    # A body would sit where the first frames go, and be read as frames.
    if request.environ.get("CONTENT_LENGTH", "0") not in ("", "0") or request.environ.get(
        "HTTP_TRANSFER_ENCODING"
    ):
        raise HandshakeError("a WebSocket handshake must not have a body")
    upgrade = [t.split("/")[0] for t in tokens(request.headers.get("Upgrade"))]
    if "websocket" not in upgrade:
        raise HandshakeError("missing 'Upgrade: websocket' header")
    if "upgrade" not in tokens(request.headers.get("Connection")):
        raise HandshakeError("the Connection header must contain the 'upgrade' token")
    key = request.headers.get("Sec-WebSocket-Key")
    if key is None:
        raise HandshakeError("missing Sec-WebSocket-Key header")
    key = key.strip()
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise HandshakeError("Sec-WebSocket-Key is not valid base64") from None
    if len(raw) != 16:
        raise HandshakeError(f"Sec-WebSocket-Key must decode to 16 bytes, not {len(raw)}")
    version = request.headers.get("Sec-WebSocket-Version")
    if version is None or version.strip() != VERSION:
        detail = (
            "missing Sec-WebSocket-Version header"
            if version is None
            else f"unsupported Sec-WebSocket-Version {version.strip()!r}"
        )
        raise HandshakeError(
            f"{detail}; this server speaks version {VERSION}",
            status="426 Upgrade Required",
            headers=(("Sec-WebSocket-Version", VERSION),),
        )

    offered = tokens(request.headers.get("Sec-WebSocket-Protocol"))
    chosen = next((p for p in subprotocols if p.lower() in offered), None)

    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if chosen is not None:
        headers.append(("Sec-WebSocket-Protocol", chosen))
    return Accept(subprotocol=chosen, headers=tuple(headers))
