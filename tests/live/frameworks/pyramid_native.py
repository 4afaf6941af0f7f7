"""A Pyramid app with WebSocket views of wsgiws.pyramid (``pyramid_native:app``).

The routes of ``flask_native.py``; the prefix is an include's ``route_prefix``,
the session Pyramid's signed-cookie session factory, and ``/private`` needs the
``chat`` permission, which the security policy grants to the user ``alice``
(from a ``user`` cookie).
"""

from __future__ import annotations

import json
from typing import Any

from pyramid.config import Configurator
from pyramid.events import NewResponse
from pyramid.response import Response
from pyramid.security import Allowed, Denied
from pyramid.session import SignedCookieSessionFactory

from wsgiws import WebSocket

from .._instrument import instrument
from ._common import COOKIE


class CookiePolicy:
    """Identity from the ``user`` cookie; only alice has the ``chat`` permission."""

    def identity(self, request: Any) -> str | None:
        return request.cookies.get("user")  # type: ignore[no-any-return]

    def authenticated_userid(self, request: Any) -> str | None:
        return self.identity(request)

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        if permission == "chat" and self.identity(request) == "alice":
            return Allowed("alice may chat")
        return Denied(f"{self.identity(request)!r} may not {permission}")

    def remember(self, request: Any, userid: str, **kw: Any) -> list[Any]:
        return []

    def forget(self, request: Any, **kw: Any) -> list[Any]:
        return []


def text(body: str) -> Response:
    return Response(body, content_type="text/plain", charset="utf-8")


def health(request: Any) -> Response:
    return text("ok\n")


def page(request: Any) -> Response:
    return text("a pyramid page\n")


def login(request: Any) -> Response:
    request.session["user"] = request.GET["user"]
    return text("signed in\n")


def room(ws: WebSocket) -> None:
    request: Any = ws.request
    n = int(request.matchdict["n"])
    ws.send(
        json.dumps(
            {
                "framework": "pyramid",
                "n": n,
                "type": type(n).__name__,
                "q": request.GET.get("q"),
                "header": request.headers.get("X-Test"),
                "cookie": request.cookies.get(COOKIE),
                "user": request.session.get("user"),
                "extra": {
                    "route": request.matched_route.name,
                    "userid": request.authenticated_userid,
                },
            }
        )
    )
    for message in ws:
        ws.send(message)


def numbered(ws: WebSocket) -> None:
    request: Any = ws.request
    ws.send(json.dumps({"n": int(request.matchdict["n"]) + 1, "where": request.matched_route.name}))


def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


def tag(event: Any) -> None:
    event.response.headers["X-Framework"] = "pyramid"


def sub_routes(config: Any) -> None:
    config.add_route("numbered", r"/{n:\d+}")
    config.add_websocket_view(numbered, route_name="numbered")


def make_app() -> Any:
    with Configurator() as config:
        config.include("wsgiws.pyramid")
        config.set_session_factory(SignedCookieSessionFactory("pyramid-native secret"))
        config.set_security_policy(CookiePolicy())
        config.add_subscriber(tag, NewResponse)
        for name, view in (("health", health), ("page", page), ("login", login)):
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name, request_method="GET")
        config.add_route("room", r"/rooms/{n:\d+}")
        config.add_websocket_view(room, route_name="room")
        config.add_route("echo", "/echo")
        config.add_websocket_view(echo, route_name="echo")
        config.add_route("small", "/small")
        config.add_websocket_view(echo, route_name="small", max_message_size=8)
        config.add_route("private", "/private")
        config.add_websocket_view(echo, route_name="private", permission="chat")
        config.include(sub_routes, route_prefix="/sub")
        return config.make_wsgi_app()


app = instrument(make_app())
