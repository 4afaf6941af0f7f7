"""One upgrade, from the request to the end of the handler, as an HTTP answer.

:func:`serve` is what every front end shares: the middleware's router, and the
Flask, Bottle and Pyramid integrations, which call it from inside their own
view so that the framework's request context is live in the handler. It
validates the handshake, consults the accept hook, takes the socket from the
server, runs the handler, and returns an :class:`Answer`: the status, headers
and body to give back to whoever called the WSGI app (or built the framework's
response).

For a rejection that answer is the real response. After an upgrade it is
``101 Switching Protocols`` with an empty body, and the socket has already been
shut down: the server's attempt to write it fails quietly (see
:mod:`wsgiws._servers._base`), and the adapter has told a server that needs
telling (eventlet) that the response was written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Callable

import webob

from . import _shutdown
from ._connection import WebSocket
from ._exceptions import ConnectionClosed, HandshakeError, Reject, UnsupportedServer
from ._handshake import Handshake, accept
from ._options import Accept, AcceptHook, Options
from ._servers import ADAPTERS, StartResponse, find_adapter

__all__ = ["Answer", "plain", "serve", "upgrade_required"]

log = logging.getLogger("wsgiws")

_SUPPORTED = ", ".join(adapter.name for adapter in ADAPTERS if adapter.advertised)
_warned: set[str] = set()


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to an upgrade request: a WSGI status line, headers, body."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    @property
    def status_code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    @property
    def upgraded(self) -> bool:
        """True when the WebSocket ran: the answer is a formality, the socket is closed."""
        return self.status_code == 101

    def respond(self, start_response: StartResponse) -> list[bytes]:
        """Give the answer to a WSGI server."""
        start_response(self.status, list(self.headers))
        return [self.body] if self.body else []


def serve(
    environ: MutableMapping[str, Any],
    handler: Callable[[WebSocket], Any],
    options: Options,
    request: webob.Request | None = None,
) -> Answer:
    """Upgrade the request in ``environ`` and run ``handler`` with the connection.

    ``environ`` must be a WebSocket handshake (:func:`~wsgiws._handshake.is_handshake`
    decides which requests come here). Returns once the handler has returned and
    the connection is closed, or at once with the rejection (400, 426, 403, the
    accept hook's, 500 for a broken hook, 501 on a server we cannot take a
    socket from). Nothing raises out of here except what stops the server's
    thread or greenlet (``BaseException``), after closing with 1001.
    """
    if request is None:
        request = webob.Request(environ)
    adapter = find_adapter(environ)
    try:
        handshake = accept(
            request,
            options.subprotocols,
            origins=options.origins,
            compression=options.compression,
            max_message_size=options.max_message_size,
            check_http_version=adapter is None or adapter.reports_http_version,
        )
    except HandshakeError as exc:
        log.info("rejected WebSocket handshake for %s: %s", request.path_info, exc.detail)
        return plain(exc.status, exc.detail, exc.headers)
    except Exception:
        return _server_error(
            request, "the subprotocols callable raised or chose a name the client did not offer"
        )

    if adapter is None:
        server = environ.get("SERVER_SOFTWARE") or "an unknown server"
        log.error(
            "cannot serve a WebSocket on %s: it gives no access to the client socket. "
            "Run the app on one of: %s.",
            server,
            _SUPPORTED,
        )
        return plain(
            "501 Not Implemented",
            f"WebSockets are not supported on {server}; supported servers: {_SUPPORTED}",
        )
    if options.accept is not None:
        try:
            handshake = _run_hook(options.accept, request, handshake)
        except Reject as exc:
            log.info(
                "WebSocket handshake for %s rejected by the accept hook: %s: %s",
                request.path_info,
                exc.status,
                exc.detail,
            )
            return plain(exc.status, exc.detail, exc.headers)
        except Exception:
            return _server_error(
                request, "the accept hook raised (raise wsgiws.Reject to refuse a handshake)"
            )

    caveat = adapter.caveat(environ)
    if caveat is not None and caveat not in _warned:
        _warned.add(caveat)  # once per process: it is about configuration
        log.warning("%s", caveat)
    try:
        transport = adapter.take(environ)
    except UnsupportedServer as exc:
        log.error("cannot serve a WebSocket on %s: %s", adapter.name, exc)
        return plain("501 Not Implemented", str(exc))

    ws = WebSocket(
        transport.sock,
        transport.kit,
        request=request,
        subprotocol=handshake.subprotocol,
        max_message_size=options.max_message_size,
        close_timeout=options.close_timeout,
        send_timeout=options.send_timeout,
        ping_interval=options.ping_interval,
        ping_timeout=options.ping_timeout,
        extensions=() if handshake.extension is None else (handshake.extension,),
    )
    environ["wsgiws.connection"] = ws
    answer = Answer("101 Switching Protocols", list(handshake.headers))
    try:
        ws._start(handshake.response_bytes(), transport.buffered)
    except ConnectionClosed as exc:
        log.debug("WebSocket %s: client gone before the 101: %s", request.path_info, exc)
        ws._finish()
        adapter.release(environ)
        return answer
    _shutdown.track(ws, adapter, environ)
    code = 1000
    try:
        handler(ws)
    except ConnectionClosed as exc:
        # The peer went away or closed while the handler was using the
        # connection: the normal end of many handlers, not an error.
        log.debug("WebSocket %s ended: %s", request.path_info, exc)
    except Exception:
        code = 1011  # RFC 6455 §7.4.1: an unexpected condition on the server
        log.exception(
            "WebSocket handler for %s raised; closing the connection with 1011",
            request.path_info,
        )
    except BaseException:
        # The server is stopping this thread or greenlet (shutdown, a
        # worker timeout, GreenletExit): the server is going away (1001).
        code = 1001
        raise
    finally:
        ws._finish(code)
        _shutdown.untrack(ws)
        adapter.release(environ)
    return answer


def _run_hook(hook: AcceptHook, request: webob.Request, handshake: Handshake) -> Handshake:
    """Call the accept hook; apply what it returned to the handshake."""
    decision = hook(request)
    if decision is None:
        return handshake
    if not isinstance(decision, Accept):
        raise TypeError(
            f"an accept hook returns None or wsgiws.Accept, not {type(decision).__name__}"
        )
    headers = decision.headers
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return handshake.replace(subprotocol=decision.subprotocol, extra_headers=pairs)


def _server_error(request: webob.Request, why: str) -> Answer:
    """Answer 500 for a bug in the application's own hook; log it with the traceback."""
    log.exception("WebSocket handshake for %s failed: %s; answering 500", request.path_info, why)
    return plain("500 Internal Server Error", "WebSocket handshake failed")


def upgrade_required(environ: Mapping[str, Any]) -> Answer:
    """``426 Upgrade Required`` for a request to a WebSocket route that is no handshake.

    What the framework integrations answer a plain ``GET`` of a WebSocket
    route. RFC 9110 §15.5.22 asks for an ``Upgrade`` header naming the
    protocol, and §7.8 for the ``Connection: Upgrade`` that goes with it. Both
    are hop-by-hop headers, which PEP 3333 lets a server refuse (waitress and
    wsgiref answer 500 instead): they are sent only on the servers wsgiws
    supports, which pass them on.
    """
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    return plain(
        "426 Upgrade Required",
        f"{environ.get('PATH_INFO') or '/'} is a WebSocket endpoint: "
        "connect with a WebSocket client",
        headers if find_adapter(environ) is not None else (),
    )


def plain(status: str, text: str, headers: Iterable[tuple[str, str]] = ()) -> Answer:
    """A one-line plain-text answer."""
    # The text may quote the request (a method, a header value): control
    # characters are escaped so that the body stays one line.
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    body = (text + "\n").encode("utf-8")
    return Answer(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *headers,
        ],
        body,
    )
