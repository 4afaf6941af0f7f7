"""Pyramid integration: WebSocket views on Pyramid routes, with Pyramid's security.

::

    def includeme(config):  # or in main(), after config.include("wsgiws.pyramid")
        config.include("wsgiws.pyramid")
        config.add_route("chat", "/chat/{room}")
        config.add_websocket_view(chat, route_name="chat", permission="chat")

    def chat(ws):  # ws.request is the Pyramid request
        room = ws.request.matchdict["room"]
        for message in ws:
            ws.send(f"{ws.request.authenticated_userid} in {room}: {message}")

``config.include("wsgiws.pyramid")`` adds two directives and a view predicate:

``config.add_websocket_view(handler, route_name=None, permission=None, **kw)``
    Adds a view that upgrades the request and runs ``handler(ws)``. It is an
    ordinary Pyramid view: ``permission`` and every predicate and option of
    ``config.add_view`` apply (a denied handshake gets Pyramid's 403, and the
    app's forbidden view), and it carries the ``websocket=True`` predicate,
    so that it only takes handshakes: an HTTP view on the same route takes
    the rest. ``kw`` may also hold protocol options for this view
    (``max_message_size=...``: the keyword options of
    :class:`~wsgiws.WebSocketMiddleware`).
``config.set_websocket_options(**options)``
    The protocol options of every WebSocket view of the app, unless the view
    overrides them; by default :class:`~wsgiws.WebSocketMiddleware`'s.
``websocket=True`` / ``websocket=False`` (view predicate)
    Whether the request is a WebSocket handshake (any header only a WebSocket
    client sends), for views of your own.

A plain request (a browser loading the URL) to a route that has WebSocket
views and no other view for it gets ``426 Upgrade Required``.

Requires Pyramid 2.0 or later; importing this module imports Pyramid.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

# Pyramid ships no type information (no py.typed): it is Any to mypy.
from pyramid.exceptions import PredicateMismatch  # type: ignore[import-untyped]
from pyramid.response import Response  # type: ignore[import-untyped]

from ._handshake import is_handshake
from ._options import OPTION_NAMES, Options, check_option_names
from ._upgrade import Answer, serve, upgrade_required

__all__ = ["WebSocketPredicate", "add_websocket_view", "includeme", "set_websocket_options"]

#: Where the app's default options live in the registry (a dict).
OPTIONS_KEY = "wsgiws.options"
#: The routes that got the 426 exception view, per registry.
_UPGRADE_ROUTES_KEY = "wsgiws.upgrade_routes"
_DEFAULTS = Options()


def includeme(config: Any) -> None:
    """Add ``add_websocket_view``, ``set_websocket_options`` and the ``websocket`` predicate."""
    config.add_view_predicate("websocket", WebSocketPredicate)
    config.add_directive("add_websocket_view", add_websocket_view)
    config.add_directive("set_websocket_options", set_websocket_options)


class WebSocketPredicate:
    """The ``websocket`` view predicate: ``True`` matches handshakes, ``False`` the rest.

    A handshake is what :func:`wsgiws._handshake.is_handshake` says: a request
    with any header only a WebSocket client sends, valid or not (the view then
    answers the 400 that names the defect).
    """

    def __init__(self, value: object, config: Any) -> None:
        self.value = bool(value)

    def text(self) -> str:
        return f"websocket = {self.value}"

    phash = text

    def __call__(self, context: Any, request: Any) -> bool:
        return is_handshake(request.environ) is self.value


def set_websocket_options(config: Any, **options: Any) -> None:
    """Set the protocol options of every WebSocket view (``config.set_websocket_options``).

    The keyword options of :class:`~wsgiws.WebSocketMiddleware`; a view's own
    options override these. An invalid value raises here. Called twice in
    one configuration scope it is a conflict, as Pyramid's own settings are.
    """
    check_option_names(options)
    validated = Options(**options)

    def register() -> None:
        config.registry[OPTIONS_KEY] = validated

    config.action(("wsgiws", "options"), register)


def add_websocket_view(
    config: Any,
    view: Callable[[Any], Any] | str,
    route_name: str | None = None,
    permission: str | None = None,
    **kw: Any,
) -> None:
    """Add a WebSocket view (``config.add_websocket_view``): see the module's docstring.

    ``view`` is the handler, called with the :class:`~wsgiws.WebSocket` (whose
    ``request`` is the Pyramid request: ``matchdict``, ``session``,
    ``identity``...), or its dotted name.
    """
    handler = config.maybe_dotted(view)
    if not callable(handler):
        raise TypeError(f"the WebSocket handler {view!r} is not callable")
    if "websocket" in kw:
        raise TypeError("a WebSocket view sets the websocket predicate itself")
    overrides = {name: kw.pop(name) for name in list(kw) if name in OPTION_NAMES}
    Options(**overrides)  # fail now, not at the first handshake, on a bad value

    def websocket_view(request: Any) -> Any:
        defaults = request.registry.get(OPTIONS_KEY, _DEFAULTS)
        options = dataclasses.replace(defaults, **overrides) if overrides else defaults
        answer = serve(request.environ, handler, options, request=request)
        # After a 101 the WebSocket is over and the socket shut down: the
        # server's attempt to write this response fails quietly
        # (wsgiws._servers._base). Tweens and NewResponse subscribers see it.
        return _response(answer)

    websocket_view.__name__ = getattr(handler, "__name__", "websocket_view")
    websocket_view.__qualname__ = getattr(handler, "__qualname__", websocket_view.__name__)
    websocket_view.__module__ = getattr(handler, "__module__", __name__)
    websocket_view.__doc__ = getattr(handler, "__doc__", None)
    config.add_view(
        websocket_view, route_name=route_name, permission=permission, websocket=True, **kw
    )

    if route_name is not None:
        # A plain request to the route finds no view when the route has no
        # HTTP view: Pyramid raises PredicateMismatch (a 404). This exception
        # view, bound to the route, answers 426 instead; with websocket=False
        # it leaves handshakes that some other predicate refused to the 404.
        routes = config.registry.setdefault(_UPGRADE_ROUTES_KEY, set())
        if route_name not in routes:
            routes.add(route_name)
            config.add_exception_view(
                __upgrade_required_view,
                context=PredicateMismatch,
                route_name=route_name,
                websocket=False,
            )


def __upgrade_required_view(context: Any, request: Any) -> Any:
    return _response(upgrade_required(request.environ))


def _response(answer: Answer) -> Any:
    return Response(body=answer.body, status=answer.status, headerlist=list(answer.headers))
