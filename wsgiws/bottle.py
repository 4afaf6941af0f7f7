"""Bottle integration: a plugin that turns routes marked ``websocket`` into WebSocket routes.

::

    import bottle
    from wsgiws.bottle import WebSocketPlugin

    app = bottle.Bottle()
    app.install(WebSocketPlugin())

    @app.route("/chat/<room>", websocket=True)
    def chat(ws, room):  # bottle.request works here
        for message in ws:
            ws.send(f"{room}: {message}")

The plugin (Bottle's plugin API 2) wraps the callback of each route whose
configuration has ``websocket`` set, and leaves every other route as it is.
The wrapper runs :func:`wsgiws._upgrade.serve` inside Bottle's request
handling, so ``bottle.request`` (and the app's hooks) work in the handler, and
returns the HTTP answer as a :class:`bottle.HTTPResponse`.

Requires Bottle 0.12 or later; importing this module imports Bottle.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, Callable

# Bottle ships no type information (no py.typed): it is Any to mypy.
import bottle  # type: ignore[import-untyped]

from ._handshake import is_handshake
from ._options import Options, check_option_names
from ._upgrade import serve, upgrade_required

__all__ = ["WebSocketPlugin"]

#: The route configuration key that marks a WebSocket route.
KEY = "websocket"


class WebSocketPlugin:
    """A Bottle plugin serving WebSockets on the routes configured with ``websocket``.

    ``options`` are :class:`~wsgiws.WebSocketMiddleware`'s keyword options
    (``subprotocols``, ``compression``, ``max_message_size``, ``ping_interval``,
    ``ping_timeout``, ``close_timeout``, ``send_timeout``, ``origins``, ``accept``): the defaults
    of every WebSocket route of the app. An invalid value raises here.

    A route is a WebSocket route when it is declared with ``websocket=True``,
    or with ``websocket={...}``, a dict of options of its own::

        @app.route("/upload", websocket={"max_message_size": 64 * 2**20})
        def upload(ws):
            ...

    (Bottle files a dict in the route's configuration as ``websocket.<name>``
    keys, which is where the plugin reads it; so the ``websocket`` namespace of
    a route's configuration is the plugin's.) The handler is called with the
    :class:`~wsgiws.WebSocket` and the route's wildcards, as Bottle's filters
    converted them (``<n:int>`` gives an ``int``). A GET to the route that is
    not a WebSocket handshake gets ``426 Upgrade Required``; a defective
    handshake gets the 4xx that :class:`~wsgiws.WebSocketMiddleware` would
    answer. Declare WebSocket routes with GET (Bottle's default method).
    """

    #: The plugin's name for Bottle (``app.uninstall("wsgiws")``, ``skip=["wsgiws"]``).
    name = "wsgiws"
    #: Bottle's plugin API version: ``apply(callback, route)``.
    api = 2

    def __init__(self, **options: Any) -> None:
        check_option_names(options)
        #: The options of every WebSocket route, unless the route overrides them.
        self.options = Options(**options)

    def setup(self, app: Any) -> None:
        """Refuse a second instance on the same app: which one's options would apply?"""
        for other in app.plugins:
            if isinstance(other, WebSocketPlugin) and other is not self:
                raise bottle.PluginError("a WebSocketPlugin is already installed on this app")

    def apply(self, callback: Callable[..., Any], route: Any) -> Callable[..., Any]:
        """Wrap ``callback`` if the route is a WebSocket route; otherwise return it as is."""
        options = self.route_options(route)
        if options is None:
            return callback

        @functools.wraps(callback)
        def upgrade(*args: Any, **params: Any) -> Any:
            environ = bottle.request.environ
            if not is_handshake(environ):
                answer = upgrade_required(environ)
            else:
                target = (
                    functools.partial(callback, *args, **params) if args or params else callback
                )
                answer = serve(environ, target, options)
            # Returned, not raised: an HTTPError would go through Bottle's
            # error page, which would replace the plain-text reason with HTML.
            # After a 101 the WebSocket is over and the socket shut down: the
            # server's attempt to write this response fails quietly
            # (wsgiws._servers._base).
            return bottle.HTTPResponse(
                body=answer.body, status=answer.status, headers=list(answer.headers)
            )

        return upgrade

    def route_options(self, route: Any) -> Options | None:
        """The options of ``route``, or None when it is not a WebSocket route."""
        config: Mapping[str, Any] = route.config
        flag = config.get(KEY)
        prefix = KEY + "."
        given = {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
        if not given and not flag:
            return None
        check_option_names(given, f"route {route.rule!r}: ")
        return dataclasses.replace(self.options, **given)
