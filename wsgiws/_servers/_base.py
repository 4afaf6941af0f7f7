"""The interface every server adapter implements, and the helpers they share.

An adapter knows one WSGI server. It answers three questions:

* :meth:`ServerAdapter.detect`: is this environ from my server? (Only
  documented environ keys are consulted.)
* :meth:`ServerAdapter.take`: the client socket, and the bytes the server has
  already read past the request headers: a client may send its first frame in
  the same TCP segment as the handshake, and those bytes then sit in the
  server's read buffer, not in the socket.
* :meth:`ServerAdapter.release`: once the WebSocket is over, tell the server
  that the response is handled, so that it writes nothing more and closes the
  TCP connection.

and may warn (:meth:`ServerAdapter.caveat`) about a configuration that works
but serves WebSockets badly, and may watch for the server's stop
(:meth:`ServerAdapter.watch`) where the server tells its application nothing:
gunicorn's workers stop by a flag, not a call, so the gunicorn adapter watches
that flag and closes the WebSockets with 1001 when it falls. Elsewhere whoever
stops the server calls :func:`wsgiws.shutdown`, and the default does nothing.

By the time ``release`` runs the connection has shut the socket down both ways.
The WSGI app then reports the true outcome through ``start_response`` (``101
Switching Protocols``) and an empty body, so middleware (or a framework)
wrapped around ours sees an ordinary response; the server's attempt to write
that status line fails on the shut-down socket with EPIPE, which Werkzeug,
gunicorn and gevent all treat as a client that went away: quietly, no bytes on
the wire. The default ``release`` therefore does nothing.
"""

from __future__ import annotations

import io
import logging
import socket
import ssl
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol

from .._concurrency import Kit, kit_for

__all__ = ["ServerAdapter", "StartResponse", "Transport", "input_replaced", "read_buffered"]

log = logging.getLogger("wsgiws")


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = ..., /
    ) -> Any: ...


@dataclass
class Transport:
    """What an adapter hands over: the socket, early bytes, and its concurrency kit."""

    sock: socket.socket
    buffered: bytes
    kit: Kit

    @classmethod
    def of(cls, sock: socket.socket, buffered: bytes = b"") -> Transport:
        # Whatever timeout the server set for HTTP requests, the WebSocket
        # waits on its own terms: block, and time out with explicit waits.
        sock.settimeout(None)
        return cls(sock, buffered, kit_for(sock))


class ServerAdapter:
    """Base class of the adapters; one subclass per server, one module each."""

    #: The name used in logs and error messages.
    name: ClassVar[str]
    #: Whether the server's ``SERVER_PROTOCOL`` is the request's HTTP version.
    reports_http_version: ClassVar[bool] = True
    #: Whether the 501 answer on other servers names this one as supported.
    advertised: ClassVar[bool] = True

    @classmethod
    def detect(cls, environ: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def take(self, environ: MutableMapping[str, Any]) -> Transport:
        raise NotImplementedError

    def caveat(self, environ: Mapping[str, Any]) -> str | None:
        """A warning about how this server is configured for WebSockets, or None."""
        return None

    def release(self, environ: MutableMapping[str, Any]) -> None:
        """Tell the server the response is handled; the socket is already shut down."""

    def watch(
        self,
        environ: Mapping[str, Any],
        kit: Kit,
        on_stop: Callable[[float | None], None],
        busy: Callable[[], bool],
    ) -> None:
        """Arrange for ``on_stop(timeout)`` to be called when this server process begins to stop.

        Called at every takeover; cheap after the first. ``on_stop`` may block
        (it waits for the clients' answers): it is called from a thread or
        greenlet of ``kit``, with the seconds the server gives (None: no
        limit known). ``busy()`` is True while WebSockets are open: a watcher
        may end when it turns False; the next takeover calls ``watch`` again.
        """


def input_replaced(reader: object) -> bytes:
    """Say that early frames cannot be reached through ``reader``; nothing was read."""
    log.warning(
        "wsgi.input is a %s, not the server's own reader: frames the client sent with its "
        "handshake could be lost. Put WebSocketMiddleware outside any middleware that "
        "replaces wsgi.input.",
        type(reader).__name__,
    )
    return b""


def read_buffered(reader: io.BufferedIOBase, sock: socket.socket) -> bytes:
    """The bytes a buffered reader over ``sock`` holds, without waiting for more.

    ``read1`` returns what is buffered when anything is, and otherwise makes
    exactly one read of the socket, which a non-blocking socket answers at
    once. Either way nothing that was read is left behind in the reader. On
    a TLS socket the read may find only part of a record ("want read"): the
    bytes stay in the SSL object, where the connection looks first.
    """
    read1 = getattr(reader, "read1", None)
    if read1 is None:
        return input_replaced(reader)
    sock.setblocking(False)
    try:
        return read1(1 << 20) or b""
    except (BlockingIOError, InterruptedError, socket.timeout, ssl.SSLWantReadError):
        return b""
    finally:
        sock.settimeout(None)
