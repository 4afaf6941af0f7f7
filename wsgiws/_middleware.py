"""The WSGI middleware: route WebSocket handshakes to handlers, pass the rest through."""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

import webob

from ._connection import WebSocket
from ._deflate import Deflate
from ._exceptions import ConnectionClosed, HandshakeError, Reject, UnsupportedServer
from ._handshake import Handshake, OriginRule, SubprotocolSelector, accept, is_handshake
from ._servers import ADAPTERS, StartResponse, find_adapter

__all__ = ["Accept", "AcceptHook", "Endpoint", "Handler", "WebSocketMiddleware"]

log = logging.getLogger("wsgiws")

#: A WebSocket handler: called with the connection, in the server's thread or
#: greenlet for that request; the connection closes when it returns.
Handler = Callable[[WebSocket], Any]
WSGIApp = Callable[[MutableMapping[str, Any], StartResponse], Iterable[bytes]]

_SUPPORTED = ", ".join(adapter.name for adapter in ADAPTERS)
_warned: set[str] = set()


@dataclass(frozen=True)
class Accept:
    """What an accept hook may return to shape the 101 response.

    ``subprotocol`` replaces the one chosen by ``subprotocols`` (it must be one
    the client offered); None keeps that choice. ``headers`` are added to the
    101 response (say, ``Set-Cookie``).
    """

    subprotocol: str | None = None
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = ()


#: An accept hook: sees the upgrade request after it was validated and before
#: the upgrade. It returns None to accept, an :class:`Accept` to choose the
#: subprotocol or add headers, or raises :class:`~wsgiws.Reject` to answer with
#: an HTTP status and body instead (authentication, rate limits).
AcceptHook = Callable[[webob.Request], Optional[Accept]]


class _Inherit(enum.Enum):
    INHERIT = "inherit"


#: An :class:`Endpoint` option left as given to the middleware.
INHERIT = _Inherit.INHERIT

#: Our default: permessage-deflate on, with windows and a memory level that keep
#: a connection's zlib state small (see docs/topics/compression.rst).
DEFAULT_COMPRESSION = Deflate()


@dataclass(frozen=True)
class _Options:
    """The protocol options of one path, validated."""

    subprotocols: Sequence[str] | SubprotocolSelector = ()
    compression: Deflate | None = DEFAULT_COMPRESSION
    max_message_size: int | None = 1024 * 1024
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 5.0
    origins: Sequence[OriginRule] | None = None
    accept: AcceptHook | None = None

    def __post_init__(self) -> None:
        subprotocols = self.subprotocols
        if isinstance(subprotocols, str) or not (
            callable(subprotocols) or isinstance(subprotocols, Sequence)
        ):
            raise TypeError(
                "subprotocols must be a list of names or a callable that chooses "
                f"from the client's offer, not {subprotocols!r}"
            )
        if not callable(subprotocols):
            object.__setattr__(self, "subprotocols", tuple(subprotocols))
        compression: Any = self.compression
        if compression is True:
            object.__setattr__(self, "compression", DEFAULT_COMPRESSION)
        elif compression is False:
            object.__setattr__(self, "compression", None)
        elif compression is not None and not isinstance(compression, Deflate):
            raise TypeError(
                f"compression must be a wsgiws.Deflate, True, False or None, not {compression!r}"
            )
        if self.max_message_size is not None and self.max_message_size < 1:
            raise ValueError(
                f"max_message_size must be positive or None, not {self.max_message_size}"
            )
        for name in ("ping_interval", "ping_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(
                    f"{name} must be a positive number of seconds or None, not {value!r}"
                )
        if not self.close_timeout >= 0:
            raise ValueError(f"close_timeout must be >= 0, not {self.close_timeout!r}")
        origins = self.origins
        if origins is not None:
            if isinstance(origins, (str, re.Pattern)) or not isinstance(origins, Iterable):
                raise TypeError(
                    "origins must be a list of allowed origins (or None to allow any), "
                    f"not {origins!r}"
                )
            origins = tuple(origins)
            for rule in origins:
                if rule is not None and not isinstance(rule, (str, re.Pattern)):
                    raise TypeError(
                        f"an allowed origin must be a str, a re.Pattern or None, not {rule!r}"
                    )
            object.__setattr__(self, "origins", origins)
        if self.accept is not None and not callable(self.accept):
            raise TypeError(f"accept must be a callable, not {self.accept!r}")


class Endpoint:
    """A handler with protocol options of its own, for one path of the middleware.

    Every option is one of :class:`WebSocketMiddleware`'s; one left out is taken
    from the middleware::

        WebSocketMiddleware(app, {
            "/chat": chat,
            "/upload": Endpoint(upload, max_message_size=64 * 2**20, compression=None),
        })
    """

    def __init__(
        self,
        handler: Handler,
        *,
        subprotocols: Sequence[str] | SubprotocolSelector | _Inherit = INHERIT,
        compression: Deflate | bool | _Inherit | None = INHERIT,
        max_message_size: int | _Inherit | None = INHERIT,
        ping_interval: float | _Inherit | None = INHERIT,
        ping_timeout: float | _Inherit | None = INHERIT,
        close_timeout: float | _Inherit = INHERIT,
        origins: Sequence[OriginRule] | _Inherit | None = INHERIT,
        accept: AcceptHook | _Inherit | None = INHERIT,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"the handler {handler!r} is not callable")
        self.handler = handler
        given = {
            "subprotocols": subprotocols,
            "compression": compression,
            "max_message_size": max_message_size,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "origins": origins,
            "accept": accept,
        }
        #: The options set here, the others being inherited.
        self.options: dict[str, Any] = {k: v for k, v in given.items() if v is not INHERIT}
        # Fail now, not at the first request, on a bad value.
        _Options(**self.options)

    def __repr__(self) -> str:
        return f"Endpoint({self.handler!r}, {self.options!r})"


class WebSocketMiddleware:
    """Serve WebSockets beside any WSGI application.

    ``handlers`` is either one handler, served at ``path``, or a mapping of
    paths to handlers (or to :class:`Endpoint`\\ s, for options of their own).
    A request that is a WebSocket handshake for one of those paths is
    validated (a defective one gets 400 or 426 with a plain-text body naming
    the defect, a forbidden Origin 403), upgraded, and handed to the handler as
    a :class:`WebSocket`; every other request goes to ``app`` untouched.

    Paths are matched against ``PATH_INFO``, so the middleware works the same
    when the whole application is mounted under a prefix (``SCRIPT_NAME``).

    Options (each may be set per path with :class:`Endpoint`):

    ``subprotocols``
        Subprotocols the handlers speak, in order of preference; or a callable
        that gets the client's offer (a list, in the client's order, never
        empty) and returns one of them or None.
    ``compression``
        permessage-deflate (RFC 7692) settings, a :class:`Deflate`; used when
        the client offers it (every browser does). None or False turns it off.
        The default is ``Deflate()``: see :doc:`/topics/compression`.
    ``max_message_size``
        Largest message accepted, in bytes, after decompression; a larger one
        closes the connection with 1009. Default 1 MiB; None: no limit.
    ``ping_interval``, ``ping_timeout``
        Keepalive: a client silent for ``ping_interval`` seconds gets a ping;
        if it then stays silent for ``ping_timeout`` more, the connection
        fails with 1011 and ``receive`` raises :class:`ConnectionClosed`.
        Default 20 s each; None turns pings (or the timeout) off.
    ``close_timeout``
        Seconds to wait for the peer's answer in the closing handshake.
    ``origins``
        None (the default) accepts any ``Origin``; otherwise a list of the
        allowed ones: exact origins (``"https://example.com"``), patterns with
        ``*`` for host labels (``"https://*.example.com"``), compiled regular
        expressions, and None to allow requests without an ``Origin`` header
        (clients that are not browsers). Any other origin gets 403. See
        :doc:`/topics/security`.
    ``accept``
        A hook called with the :class:`webob.Request` of a valid handshake
        before the upgrade; see :data:`AcceptHook`.
    """

    def __init__(
        self,
        app: WSGIApp,
        handlers: Handler | Mapping[str, Handler | Endpoint],
        *,
        path: str = "/ws",
        subprotocols: Sequence[str] | SubprotocolSelector = (),
        compression: Deflate | bool | None = DEFAULT_COMPRESSION,
        max_message_size: int | None = 1024 * 1024,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 5.0,
        origins: Sequence[OriginRule] | None = None,
        accept: AcceptHook | None = None,
    ) -> None:
        self.app = app
        defaults = _Options(
            subprotocols=subprotocols,
            compression=compression,  # type: ignore[arg-type]  # normalised in __post_init__
            max_message_size=max_message_size,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            origins=origins,
            accept=accept,
        )
        if isinstance(handlers, Mapping):
            routes = dict(handlers)
        elif callable(handlers):
            routes = {path: handlers}
        else:
            raise TypeError("handlers must be a callable or a mapping of paths to callables")
        self._routes: dict[str, tuple[Handler, _Options]] = {}
        for route, target in routes.items():
            if not route.startswith("/"):
                raise ValueError(f"path {route!r} must start with '/'")
            if isinstance(target, Endpoint):
                options = dataclasses.replace(defaults, **target.options)
                self._routes[route] = (target.handler, options)
            elif callable(target):
                self._routes[route] = (target, defaults)
            else:
                raise TypeError(f"the handler for {route!r} is not callable")

    @property
    def handlers(self) -> dict[str, Handler]:
        """The handler of each path."""
        return {route: handler for route, (handler, _) in self._routes.items()}

    def __call__(
        self, environ: MutableMapping[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        route = self._routes.get(environ.get("PATH_INFO") or "/")
        if route is None or not is_handshake(environ):
            return self.app(environ, start_response)
        return self._upgrade(*route, environ, start_response)

    def _upgrade(
        self,
        handler: Handler,
        options: _Options,
        environ: MutableMapping[str, Any],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
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
            return _plain(start_response, exc.status, exc.detail, exc.headers)
        except Exception:
            return _server_error(
                start_response,
                request,
                "the subprotocols callable raised or chose a name the client did not offer",
            )

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
                return _plain(start_response, exc.status, exc.detail, exc.headers)
            except Exception:
                return _server_error(
                    start_response,
                    request,
                    "the accept hook raised (raise wsgiws.Reject to refuse a handshake)",
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
            subprotocol=handshake.subprotocol,
            max_message_size=options.max_message_size,
            close_timeout=options.close_timeout,
            ping_interval=options.ping_interval,
            ping_timeout=options.ping_timeout,
            extensions=() if handshake.extension is None else (handshake.extension,),
        )
        environ["wsgiws.connection"] = ws
        try:
            ws._start(handshake.response_bytes(), transport.buffered)
        except ConnectionClosed as exc:
            log.debug("WebSocket %s: client gone before the 101: %s", request.path_info, exc)
            ws._finish()
            return adapter.finish(environ, start_response, list(handshake.headers))
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
        return adapter.finish(environ, start_response, list(handshake.headers))


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


def _server_error(start_response: StartResponse, request: webob.Request, why: str) -> list[bytes]:
    """Answer 500 for a bug in the application's own hook; log it with the traceback."""
    log.exception("WebSocket handshake for %s failed: %s; answering 500", request.path_info, why)
    return _plain(start_response, "500 Internal Server Error", "WebSocket handshake failed")


def _plain(
    start_response: StartResponse,
    status: str,
    text: str,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    # The text may quote the request (a method, a header value): control
    # characters are escaped so that the body stays one line.
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
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
