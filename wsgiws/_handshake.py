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
import dataclasses
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import webob
from wsproto.extensions import Extension

from ._deflate import Deflate, negotiate
from ._exceptions import HandshakeError

__all__ = [
    "Handshake",
    "OriginRule",
    "SubprotocolSelector",
    "accept",
    "accept_key",
    "is_handshake",
    "origin_allowed",
    "tokens",
]

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


#: Chooses a subprotocol from the client's offer (in the client's order); returns
#: one of them, or None to choose none.
SubprotocolSelector = Callable[[Sequence[str]], Optional[str]]
#: An allowed Origin: an exact origin (``"https://example.com"``), a pattern
#: with ``*`` standing for one or more host labels (``"https://*.example.com"``),
#: a compiled regular expression (matched in full), or None for "no Origin
#: header at all" (clients that are not browsers).
OriginRule = Union[str, "re.Pattern[str]", None]


@dataclass(frozen=True)
class Handshake:
    """A handshake we accept: what was negotiated, and the 101 response to write.

    :func:`accept` makes it; the middleware may :meth:`replace` the
    subprotocol or add headers (the accept hook) before the response goes out.
    """

    #: The client's key, from which ``Sec-WebSocket-Accept`` is computed.
    key: str
    #: The subprotocols the client offered, in its order and spelling.
    offered: tuple[str, ...] = ()
    #: The subprotocol chosen from the offer, or None.
    subprotocol: str | None = None
    #: The negotiated extension (permessage-deflate) for wsproto, and its
    #: ``Sec-WebSocket-Extensions`` response value; None when there is none.
    extension: Extension | None = None
    extension_header: str | None = None
    #: Headers added to the 101 response (by the accept hook).
    extra_headers: tuple[tuple[str, str], ...] = ()

    status = "101 Switching Protocols"

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The 101 response's headers, in order."""
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(self.key)),
        ]
        if self.subprotocol is not None:
            headers.append(("Sec-WebSocket-Protocol", self.subprotocol))
        if self.extension_header is not None:
            headers.append(("Sec-WebSocket-Extensions", self.extension_header))
        return (*headers, *self.extra_headers)

    def replace(
        self,
        *,
        subprotocol: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> Handshake:
        """This handshake with another subprotocol and more headers.

        Raises :class:`ValueError` when ``subprotocol`` was not offered by the
        client (§4.2.2 item 5.4: the server may only echo one of the client's),
        or when a header would break the handshake.
        """
        if subprotocol is not None and subprotocol not in self.offered:
            raise ValueError(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {list(self.offered)})"
            )
        extra = tuple((str(name), str(value)) for name, value in extra_headers)
        for name, value in extra:
            if name.lower() in _OWN_HEADERS:
                raise ValueError(f"the {name} header of a 101 response is set by wsgiws")
            if not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n\0"):
                raise ValueError(f"invalid response header {name!r}: {value!r}")
        return dataclasses.replace(
            self,
            subprotocol=self.subprotocol if subprotocol is None else subprotocol,
            extra_headers=self.extra_headers + extra,
        )

    def response_bytes(self) -> bytes:
        """The whole 101 response as it goes on the wire.

        Always ``HTTP/1.1``: the handshake requires it, and clients such as the
        ``websockets`` package reject a 101 carried by another version.
        """
        lines = [f"HTTP/1.1 {self.status}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_OWN_HEADERS = frozenset(
    {
        "upgrade",
        "connection",
        "sec-websocket-accept",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "content-length",
        "transfer-encoding",
    }
)
#: RFC 9110 §5.1: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def accept(
    request: webob.Request,
    subprotocols: Sequence[str] | SubprotocolSelector = (),
    *,
    origins: Sequence[OriginRule] | None = None,
    compression: Deflate | None = None,
    max_message_size: int | None = None,
    check_http_version: bool = True,
) -> Handshake:
    """Validate a handshake request; return what to answer or raise :class:`HandshakeError`.

    The checks follow RFC 6455 §4.2.1 in order, so the first defect is the one
    named. A missing or unknown ``Sec-WebSocket-Version`` gets ``426 Upgrade
    Required`` with ``Sec-WebSocket-Version: 13`` (§4.4); every other defect
    gets ``400 Bad Request``. Then, for a valid handshake, an ``Origin`` that
    ``origins`` does not allow gets ``403 Forbidden`` (§4.2.2 item 4,
    §10.2); ``origins=None`` allows any.

    ``subprotocols`` is the server's list in order of preference (the first one
    the client also offers is chosen), or a callable that chooses from the
    client's offer (§4.2.2 item 5.4: at most one is echoed). ``compression``
    enables permessage-deflate when the client offers acceptable parameters
    (RFC 7692); decompressed messages are bounded by ``max_message_size``.

    ``check_http_version=False`` skips the HTTP/1.1 check, for servers whose
    ``SERVER_PROTOCOL`` does not report the request's version.

    Raises :class:`ValueError` when a ``subprotocols`` callable returns a name
    the client did not offer: that is a bug in the callable, not in the request.
    """
    if request.method != "GET":
        raise HandshakeError(f"a WebSocket handshake must use GET, not {request.method}")
    protocol = request.environ.get("SERVER_PROTOCOL", "")
    if check_http_version and protocol.upper() != "HTTP/1.1":
        raise HandshakeError(f"a WebSocket handshake needs HTTP/1.1, not {protocol or 'unknown'}")
    if not request.environ.get("HTTP_HOST"):
        raise HandshakeError("missing Host header")
    # A body would sit where the first frames go, and be read as frames.
    length = request.environ.get("CONTENT_LENGTH", "").strip()
    if not (length == "" or (length.isdigit() and int(length) == 0)) or request.environ.get(
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

    origin = request.headers.get("Origin")
    if origins is not None and not origin_allowed(origin, origins):
        shown = "no Origin header" if origin is None else f"Origin {origin!r}"
        raise HandshakeError(
            f"{shown} is not allowed to open a WebSocket here", status="403 Forbidden"
        )

    # Subprotocol names are compared as the client spelled them: browsers
    # reject a 101 whose Sec-WebSocket-Protocol is not exactly one they sent.
    offered = tuple(
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    )
    if callable(subprotocols):
        chosen = subprotocols(offered) if offered else None
        if chosen is not None and chosen not in offered:
            raise ValueError(
                f"the subprotocols callable chose {chosen!r}, which the client did not offer "
                f"(offered: {list(offered)})"
            )
    else:
        chosen = next((p for p in subprotocols if p in offered), None)

    extension = extension_header = None
    if compression is not None:
        negotiated = negotiate(
            compression,
            request.headers.get("Sec-WebSocket-Extensions"),
            max_message_size=max_message_size,
        )
        if negotiated is not None:
            extension_header, extension = negotiated
    return Handshake(
        key=key,
        offered=offered,
        subprotocol=chosen,
        extension=extension,
        extension_header=extension_header,
    )


def origin_allowed(origin: str | None, rules: Sequence[OriginRule]) -> bool:
    """Whether an ``Origin`` header value (None: absent) matches one of ``rules``.

    Origins are compared case-insensitively (RFC 6454 §6.2 serialises scheme
    and host in lower case; a hand-written allow-list may not be).
    """
    if origin is None:
        return None in rules
    value = origin.strip().lower()
    for rule in rules:
        if rule is None:
            continue
        if isinstance(rule, re.Pattern):
            if rule.fullmatch(origin.strip()):
                return True
        elif "*" in rule:
            if _wildcard(rule).fullmatch(value):
                return True
        elif rule.strip().lower() == value:
            return True
    return False


@functools.lru_cache(maxsize=256)
def _wildcard(rule: str) -> re.Pattern[str]:
    """``https://*.example.com`` as a regex: ``*`` is one or more DNS labels."""
    parts = [re.escape(part) for part in rule.strip().lower().split("*")]
    return re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*".join(parts))
