"""A Pyramid app with WebSockets beside its views: ``config.make_wsgi_app()`` wrapped
(``tests.live.frameworks.pyramid_app:app``)."""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.events import NewResponse
from pyramid.request import Request
from pyramid.response import Response

from wsgiws import WebSocketMiddleware

from .._instrument import instrument
from ._common import handlers


def health(request: Request) -> Response:
    return Response("ok\n", content_type="text/plain")


def item(request: Request) -> dict[str, Any]:
    item_id = int(request.matchdict["item_id"])
    return {"framework": "pyramid", "item": item_id, "type": type(item_id).__name__}


def submit(request: Request) -> dict[str, Any]:
    request.response.status_code = 201
    return {"framework": "pyramid", "received": request.json_body}


def form(request: Request) -> dict[str, Any]:
    post = request.POST
    return {"framework": "pyramid", "name": post["name"], "size": len(post["blob"])}


def echo_page(request: Request) -> Response:
    """What a browser gets at the WebSocket path without an upgrade: a page."""
    return Response("<!doctype html><title>echo</title><p>pyramid echo page</p>\n")


def tag(event: NewResponse) -> None:
    event.response.headers["X-Framework"] = "pyramid"


def make_app() -> Any:
    with Configurator() as config:
        config.add_route("health", "/health")
        config.add_view(health, route_name="health", request_method="GET")
        config.add_route("item", r"/items/{item_id:\d+}")
        config.add_view(item, route_name="item", renderer="json", request_method="GET")
        config.add_route("submit", "/submit")
        config.add_view(submit, route_name="submit", renderer="json", request_method="POST")
        config.add_route("form", "/form")
        config.add_view(form, route_name="form", renderer="json", request_method="POST")
        config.add_route("echo_page", "/ws/echo")
        config.add_view(echo_page, route_name="echo_page", request_method="GET")
        config.add_subscriber(tag, NewResponse)
        return config.make_wsgi_app()


app = instrument(WebSocketMiddleware(make_app(), handlers("pyramid")))
