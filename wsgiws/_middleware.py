"""The WSGI middleware: route WebSocket handshakes to handlers, pass the rest through."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any, Callable

import webob

from ._connection import WebSocket
from ._exceptions import ConnectionClosed, HandshakeError, UnsupportedServer
from ._handshake import accept, is_handshake
from ._servers import ADAPTERS, StartResponse, find_adapter

__all__ = ["Handler", "WebSocketMiddleware"]

log = logging.getLogger("wsgiws")

#: A WebSocket handler: called with the connection, in the server's thread or
#: greenlet for that request; the connection closes when it returns.
Handler = Callable[[WebSocket], Any]
WSGIApp = Callable[[MutableMapping[str, Any], StartResponse], Iterable[bytes]]

_SUPPORTED = ", ".join(adapter.name for adapter in ADAPTERS)
_warned: set[str] = set()


class WebSocketMiddleware:
    """Serve WebSockets beside any WSGI application.

    ``handlers`` is either one handler, served at ``path``, or a mapping of
    paths to handlers. A request that is a WebSocket handshake for one of those
    paths is validated (a defective one gets 400 or 426 with a plain-text body
    naming the defect), upgraded, and handed to the handler as a
    :class:`WebSocket`; every other request goes to ``app`` untouched.

    Paths are matched against ``PATH_INFO``, so the middleware works the same
    when the whole application is mounted under a prefix (``SCRIPT_NAME``).

    Options:

    ``subprotocols``
        Subprotocols the handlers speak, in order of preference.
    ``max_message_size``
        Largest message accepted, in bytes; a larger one closes the connection
        with 1009. ``None`` disables the limit.
    ``close_timeout``
        Seconds to wait for the peer's answer in the closing handshake.
    """

    def __init__(
        self,
        app: WSGIApp,
        handlers: Handler | Mapping[str, Handler],
        *,
        path: str = "/ws",
        subprotocols: Sequence[str] = (),
        max_message_size: int | None = 1024 * 1024,
        close_timeout: float = 5.0,
    ) -> None:
        self.app = app
        if isinstance(handlers, Mapping):
            self.handlers: dict[str, Handler] = dict(handlers)
        elif callable(handlers):
            self.handlers = {path: handlers}
        else:
            raise TypeError("handlers must be a callable or a mapping of paths to callables")
        for route, handler in self.handlers.items():
            if not route.startswith("/"):
                raise ValueError(f"path {route!r} must start with '/'")
            if not callable(handler):
                raise TypeError(f"the handler for {route!r} is not callable")
        self.subprotocols = tuple(subprotocols)
        self.max_message_size = max_message_size
        self.close_timeout = close_timeout

    def __call__(
        self, environ: MutableMapping[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        handler = self.handlers.get(environ.get("PATH_INFO") or "/")
        if handler is None or not is_handshake(environ):
            return self.app(environ, start_response)
        return self._upgrade(handler, environ, start_response)

    def _upgrade(
        self, handler: Handler, environ: MutableMapping[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        request = webob.Request(environ)
        adapter = find_adapter(environ)
        try:
            response = accept(
                request,
                self.subprotocols,
                check_http_version=adapter is None or adapter.reports_http_version,
            )
        except HandshakeError as exc:
            log.info("rejected WebSocket handshake for %s: %s", request.path_info, exc.detail)
            return _plain(start_response, exc.status, exc.detail, exc.headers)

        if adapter is None:
            server = environ.get("SERVER_SOFTWARE") or "an unknown server"
            log.error(
                "cannot serve a WebSocket on %s: it gives no access to the client socket. "
                "Run the app on one of: %s.",
                server,
                _SUPPORTED,
            )
            return _plain(
                start_response,
                "501 Not Implemented",
                f"WebSockets are not supported on {server}; supported servers: {_SUPPORTED}",
            )
        caveat = adapter.caveat(environ)
        if caveat is not None and caveat not in _warned:
            _warned.add(caveat)  # once per process: it is about configuration
            log.warning("%s", caveat)
        try:
            transport = adapter.take(environ)
        except UnsupportedServer as exc:
            log.error("cannot serve a WebSocket on %s: %s", adapter.name, exc)
            return _plain(start_response, "501 Not Implemented", str(exc))

        ws = WebSocket(
            transport.sock,
            transport.kit,
            request=request,
            subprotocol=response.subprotocol,
            max_message_size=self.max_message_size,
            close_timeout=self.close_timeout,
        )
        environ["wsgiws.connection"] = ws
        try:
            ws._start(response.response_bytes(), transport.buffered)
        except ConnectionClosed as exc:
            log.debug("WebSocket %s: client gone before the 101: %s", request.path_info, exc)
            ws._finish()
            return adapter.finish(environ, start_response, list(response.headers))
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
        return adapter.finish(environ, start_response, list(response.headers))


def _plain(
    start_response: StartResponse,
    status: str,
    text: str,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    body = (text + "\n").encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *headers,
        ],
    )
    return [body]
