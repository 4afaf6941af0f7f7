"""The chat of examples/chat.py as a Pyramid app: WebSocket views with wsgiws.pyramid.

From the root of the repository (``.venv/bin/pip install pyramid``), then open
http://127.0.0.1:5000/?room=lobby in two windows::

    .venv/bin/python examples/chat_pyramid.py

It runs ``wsgiws.run``, which picks a server that serves WebSockets among those
installed and says which (``--host``, ``--port``). The WebSocket view is a
Pyramid view on a route: permissions, predicates and ``ws.request`` (the Pyramid
request, with its ``matchdict``) all work as usual.
"""

# The rooms (joining, validating, broadcasting) are examples/chat.py's: this
# example shows only what the framework changes. Run as a script, this
# file's directory is on sys.path, so `chat` is that module.

from __future__ import annotations

import argparse

from chat import PAGE
from chat import chat as relay
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

import wsgiws
from wsgiws import WebSocket


def chat(ws: WebSocket) -> None:
    """The WebSocket handler: ``ws.request`` is the Pyramid request, with the route's matchdict."""
    relay(ws, ws.request.matchdict["room"])


def index(request: Request) -> Response:
    return Response(PAGE, content_type="text/html", charset="utf-8")


def make_app():
    """The Pyramid WSGI app: the page at /, the chat's WebSocket view at /ws/{room}."""
    with Configurator() as config:
        config.include("wsgiws.pyramid")
        config.add_route("index", "/")
        config.add_view(index, route_name="index")
        config.add_route("chat", "/ws/{room}")
        # A valid chat message is well under 16 KiB: see chat.py.
        config.add_websocket_view(chat, route_name="chat", max_message_size=16 * 1024)
        return config.make_wsgi_app()


app = make_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    args = parser.parse_args()
    wsgiws.run(app, args.host, args.port)


if __name__ == "__main__":
    main()
