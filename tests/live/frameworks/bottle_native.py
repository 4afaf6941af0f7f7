"""A Bottle app with WebSocket routes of wsgiws.bottle (``bottle_native:app``).

The routes of ``flask_native.py``; the prefix is a mounted Bottle app with the
plugin installed (Bottle applies no parent plugin to a mounted app), the
session a signed cookie.
"""

from __future__ import annotations

import json

import bottle

from wsgiws import WebSocket
from wsgiws.bottle import WebSocketPlugin

from .._instrument import instrument
from ._common import COOKIE

SECRET = "bottle-native secret"

bottle_app = bottle.Bottle()
bottle_app.install(WebSocketPlugin())


@bottle_app.hook("after_request")
def tag() -> None:
    bottle.response.set_header("X-Framework", "bottle")


@bottle_app.get("/health")
def health() -> str:
    bottle.response.content_type = "text/plain; charset=utf-8"
    return "ok\n"


@bottle_app.get("/page")
def page() -> str:
    bottle.response.content_type = "text/plain; charset=utf-8"
    return "a bottle page\n"


@bottle_app.get("/login")
def login() -> str:
    bottle.response.set_cookie("user", bottle.request.query.user, secret=SECRET)
    bottle.response.content_type = "text/plain; charset=utf-8"
    return "signed in\n"


@bottle_app.route("/rooms/<n:int>", websocket=True)
def room(ws: WebSocket, n: int) -> None:
    request = bottle.request
    ws.send(
        json.dumps(
            {
                "framework": "bottle",
                "n": n,
                "type": type(n).__name__,
                "q": request.query.getunicode("q"),
                "header": request.get_header("X-Test"),
                "cookie": request.get_cookie(COOKIE),
                "user": request.get_cookie("user", secret=SECRET),
                "extra": {"rule": request.route.rule},
            }
        )
    )
    for message in ws:
        ws.send(message)


@bottle_app.route("/echo", websocket=True)
def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@bottle_app.route("/small", websocket={"max_message_size": 8})
def small(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


sub = bottle.Bottle()
sub.install(WebSocketPlugin())


@sub.route("/<n:int>", websocket=True)
def numbered(ws: WebSocket, n: int) -> None:
    ws.send(json.dumps({"n": n + 1, "where": bottle.request.route.rule}))


bottle_app.mount("/sub/", sub)

app = instrument(bottle_app)
