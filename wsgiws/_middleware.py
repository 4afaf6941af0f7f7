"""The WSGI middleware: route WebSocket handshakes to handlers, pass the rest through."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

from ._deflate import Deflate
from ._handshake import OriginRule, SubprotocolSelector, is_handshake
from ._options import DEFAULT_COMPRESSION, AcceptHook, Endpoint, Handler, Options
from ._routing import Router
from ._servers import StartResponse
from ._upgrade import serve

__all__ = ["WebSocketMiddleware"]

#: A WSGI application. PEP 3333 makes the environ a built-in ``dict``, and so
#: does typeshed (``wsgiref.types``): an app annotated that way is accepted.
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WebSocketMiddleware:
    """Serve WebSockets beside any WSGI application.

    ``handlers`` is either one handler, served at ``path``, or a mapping of
    paths to handlers (or to :class:`Endpoint`\\ s, for options of their own).
    A request that is a WebSocket handshake for one of those paths is
    validated (a defective one gets 400 or 426 with a plain-text body naming
    the defect, a forbidden Origin 403), upgraded, and handed to the handler as
    a :class:`WebSocket`; every other request, an upgrade to a path no route
    matches among them, goes to ``app`` untouched.

    A path may hold parameters, handed to the handler as keyword arguments:
    ``{name}`` matches one path segment, ``{name:int}`` a decimal integer
    (passed as an ``int``), ``{name:path}`` the rest of the path::

        def chat(ws, room):
            ...

        WebSocketMiddleware(app, {"/chat/{room}": chat})

    Exact paths are tried first, then patterns in the order given. Paths are
    matched against ``PATH_INFO``, so the middleware works the same when the
    whole application is mounted under a prefix (``SCRIPT_NAME``).

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
        Seconds to wait for the peer's answer in the closing handshake; also
        the most :meth:`WebSocket.close` takes, from any thread. Default 5.
    ``send_timeout``
        A send that can hand no byte to the client for this many seconds (it
        stopped reading) aborts the connection: ``send`` raises
        :class:`ConnectionClosed` with 1006, and so does every other call on
        it. Default 20 s; None: no limit.
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
        send_timeout: float | None = 20.0,
        origins: Sequence[OriginRule] | None = None,
        accept: AcceptHook | None = None,
    ) -> None:
        self.app = app
        defaults = Options(
            subprotocols=subprotocols,
            compression=compression,  # type: ignore[arg-type]  # normalised in __post_init__
            max_message_size=max_message_size,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            send_timeout=send_timeout,
            origins=origins,
            accept=accept,
        )
        if isinstance(handlers, Mapping):
            routes = dict(handlers)
        elif callable(handlers):
            routes = {path: handlers}
        else:
            raise TypeError("handlers must be a callable or a mapping of paths to callables")
        targets: list[tuple[str, tuple[Handler, Options]]] = []
        for route, target in routes.items():
            if isinstance(target, Endpoint):
                options = dataclasses.replace(defaults, **target.options)
                targets.append((route, (target.handler, options)))
            elif callable(target):
                targets.append((route, (target, defaults)))
            else:
                raise TypeError(f"the handler for {route!r} is not callable")
        self._router = Router(targets)

    @property
    def handlers(self) -> dict[str, Handler]:
        """The handler of each path (or path pattern)."""
        return {route.pattern: route.target[0] for route in self._router.routes}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        found = self._router.match(_path(environ))
        if found is None or not is_handshake(environ):
            return self.app(environ, start_response)
        (handler, options), params = found
        if params:
            environ["wsgiws.path_params"] = params
            handler = functools.partial(handler, **params)
        return serve(environ, handler, options).respond(start_response)


def _path(environ: Mapping[str, Any]) -> str:
    """``PATH_INFO`` as the text the client meant.

    PEP 3333 hands it over as bytes decoded as latin-1; URLs carry UTF-8
    (RFC 3986 §2.5), so ``/chat/caf%C3%A9`` is matched, and its parameter
    given, as ``café``. A path that is not UTF-8 is matched as it came.
    """
    path = environ.get("PATH_INFO") or "/"
    try:
        return str(path.encode("latin-1").decode("utf-8"))
    except UnicodeError:
        return str(path)
