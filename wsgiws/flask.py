"""Flask integration: WebSocket routes that are Flask URL rules.

::

    from flask import Flask, session
    from wsgiws.flask import WebSockets

    app = Flask(__name__)
    websockets = WebSockets(app)

    @websockets.route("/chat/<room>")
    def chat(ws, room):  # flask.request, session, g and current_app work here
        for message in ws:
            ws.send(f"{session.get('user', 'guest')} in {room}: {message}")

A route is an ordinary Flask URL rule (GET): the rule syntax and converters,
blueprints, ``url_for`` and ``flask routes`` all apply. Its view runs
:func:`wsgiws._upgrade.serve` inside the request, so the request and
application contexts are live for as long as the handler runs, and turns the
HTTP answer into a Flask response: a rejection passes through Flask's error
handlers and ``after_request`` like any other error.

Requires Flask 2.0 or later; importing this module imports Flask.
"""

from __future__ import annotations

import dataclasses
import functools
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, default_exceptions

from ._handshake import is_handshake
from ._options import OPTION_NAMES, Options
from ._upgrade import serve, upgrade_required

__all__ = ["WebSockets"]

H = TypeVar("H", bound=Callable[..., Any])

#: The keyword arguments that are protocol options (those of WebSocketMiddleware).


class WebSockets:
    """The Flask extension: WebSocket routes with Flask's URL rules.

    ``options`` are :class:`~wsgiws.WebSocketMiddleware`'s keyword options
    (``subprotocols``, ``compression``, ``max_message_size``, ``ping_interval``,
    ``ping_timeout``, ``close_timeout``, ``send_timeout``, ``origins``, ``accept``), the defaults
    of every route of this extension; a route may override any of them. An
    invalid value raises here, not at the first request.

    Either pass the app, or call :meth:`init_app` later (once per app, for as
    many apps as share the extension). Routes declared before ``init_app`` are
    added to the app then.
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        #: The options of every route, unless the route overrides them.
        self.options = Options(**_only_options(options))
        self._routes: list[_Route] = []
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Add the routes declared so far (and later ones) to ``app``.

        The extension is then ``app.extensions["wsgiws"]``.
        """
        app.extensions["wsgiws"] = self
        self._apps.add(app)
        for route in self._routes:
            route.register(app)

    def route(
        self, rule: str, *, blueprint: Blueprint | None = None, **options: Any
    ) -> Callable[[H], H]:
        """Serve a WebSocket at the Flask URL rule ``rule``; a decorator.

        The handler is called with the :class:`~wsgiws.WebSocket` and the
        rule's variables as keyword arguments, converted by their converters
        (``/rooms/<int:n>`` gives an ``int`` ``n``). The endpoint is the
        handler's name unless ``endpoint=`` says otherwise; with ``blueprint``
        the rule is added to that blueprint (its URL prefix and name apply)
        rather than to the extension's apps.

        ``options`` are protocol options for this route (the extension's are
        the defaults) and the other keyword arguments of
        :meth:`flask.Flask.add_url_rule` (``endpoint``, ``defaults``,
        ``strict_slashes``, ``subdomain``, ``host``...), except ``methods``:
        the rule answers GET (and Flask's automatic HEAD and OPTIONS).

        A request to the rule that is not a WebSocket handshake (a browser
        loading the URL) gets ``426 Upgrade Required``; a defective handshake
        gets the 4xx that :class:`~wsgiws.WebSocketMiddleware` would answer.
        Rejections (4xx, 5xx) are raised as :class:`werkzeug.exceptions.HTTPException`
        carrying that response, so ``app.errorhandler`` may replace them.
        """
        for name in ("methods", "websocket"):
            if name in options:
                raise TypeError(f"a WebSocket route sets {name}= itself")
        protocol = _only_options(options)
        rule_options = {k: v for k, v in options.items() if k not in protocol}
        # Validate now: a bad value is a programming error, best seen at import.
        resolved = dataclasses.replace(self.options, **protocol)

        def decorator(handler: H) -> H:
            if not callable(handler):
                raise TypeError(f"the handler {handler!r} is not callable")
            view = _view(handler, resolved)
            if blueprint is not None:
                _add_rules(blueprint, rule, view, rule_options)
            else:
                route = _Route(rule, view, rule_options)
                self._routes.append(route)
                for app in self._apps:
                    route.register(app)
            return handler

        return decorator


@dataclass
class _Route:
    """A route declared on the extension, added to each app at ``init_app``."""

    rule: str
    view: Callable[..., Response]
    options: dict[str, Any] = field(default_factory=dict)

    def register(self, app: Flask) -> None:
        _add_rules(app, self.rule, self.view, self.options)


def _add_rules(
    target: Flask | Blueprint, rule: str, view: Callable[..., Response], options: dict[str, Any]
) -> None:
    """Add the two rules of a WebSocket route, both leading to ``view``.

    Werkzeug's router sends a request with ``Connection: upgrade`` and
    ``Upgrade: websocket`` only to rules made with ``websocket=True``, and any
    other request only to the others (a mismatch is a generic 400). The first
    rule takes the handshakes, and makes ``url_for`` build a ``ws://`` (or
    ``wss://``) URL; the second takes every other request to the URL: a
    browser loading it (426), a handshake too broken for Werkzeug to recognise
    (the precise 400 of the handshake's validation).
    """
    target.add_url_rule(rule, view_func=view, methods=["GET"], websocket=True, **options)
    target.add_url_rule(rule, view_func=view, methods=["GET"], **options)


def _only_options(given: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in given.items() if k in OPTION_NAMES}


def _view(handler: Callable[..., Any], options: Options) -> Callable[..., Response]:
    """The Flask view of a WebSocket route: the upgrade, as a Flask response."""

    @functools.wraps(handler)  # the handler's name is the default endpoint
    def view(**params: Any) -> Response:
        environ = request.environ
        if not is_handshake(environ):
            answer = upgrade_required(environ)
        else:
            target = functools.partial(handler, **params) if params else handler
            answer = serve(environ, target, options)
        response = current_app.response_class(
            answer.body, status=answer.status, headers=answer.headers
        )
        if answer.status_code >= 400:
            # Raised rather than returned so that errorhandler() sees it, as it
            # sees a 4xx of any other view; without a handler Flask answers
            # with this very response. Werkzeug has no class for some codes
            # (426): the base class with the code set is found by a handler of
            # HTTPException.
            exc = default_exceptions.get(answer.status_code, HTTPException)(response=response)
            exc.code = answer.status_code
            raise exc
        # 101: the WebSocket is over and the socket shut down. after_request
        # still sees this response; the server's attempt to write it fails
        # quietly (wsgiws._servers._base).
        return response

    return view
