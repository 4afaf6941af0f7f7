"""A Bottle app with WebSockets beside its routes: the ``Bottle`` instance wrapped
(``tests.live.frameworks.bottle_app:app``)."""

from __future__ import annotations

from typing import Any

import bottle

from wsgiws import WebSocketMiddleware

from .._instrument import instrument
from ._common import handlers

bottle_app = bottle.Bottle()


@bottle_app.get("/health")
def health() -> str:
    bottle.response.content_type = "text/plain; charset=utf-8"
    return "ok\n"


@bottle_app.get("/items/<item_id:int>")
def item(item_id: int) -> dict[str, Any]:
    return {"framework": "bottle", "item": item_id, "type": type(item_id).__name__}


@bottle_app.post("/submit")
def submit() -> dict[str, Any]:
    bottle.response.status = 201
    return {"framework": "bottle", "received": bottle.request.json}


@bottle_app.post("/form")
def form() -> dict[str, Any]:
    forms = bottle.request.forms
    return {"framework": "bottle", "name": forms.getunicode("name"), "size": len(forms["blob"])}


@bottle_app.get("/ws/echo")
def echo_page() -> str:
    """What a browser gets at the WebSocket path without an upgrade: a page."""
    return bottle.template(
        "<!doctype html><title>echo</title><p>{{name}} echo page</p>\n", name="bottle"
    )


@bottle_app.hook("after_request")
def tag() -> None:
    bottle.response.set_header("X-Framework", "bottle")


app = instrument(WebSocketMiddleware(bottle_app, handlers("bottle")))
