"""The chat of examples/chat.py as a Bottle app: WebSocket routes with wsgiws.bottle.

From the root of the repository (``.venv/bin/pip install bottle``), then open
http://127.0.0.1:5000/?room=lobby in two windows::

    .venv/bin/python examples/chat_bottle.py

It runs ``wsgiws.run``, which picks a server that serves WebSockets among those
installed and says which (``--host``, ``--port``). Not ``bottle.run()``: its
default server, wsgiref, cannot hand over a socket. The WebSocket route is a
Bottle route marked ``websocket``, and ``bottle.request`` works in the handler.
"""

# The rooms (joining, validating, broadcasting) are examples/chat.py's: this
# example shows only what the framework changes. Run as a script, this
# file's directory is on sys.path, so `chat` is that module.

from __future__ import annotations

import argparse

import bottle
from chat import PAGE
from chat import chat as relay

import wsgiws
from wsgiws import WebSocket
from wsgiws.bottle import WebSocketPlugin

app = bottle.Bottle()
app.install(WebSocketPlugin())


@app.get("/")
def index() -> bytes:
    bottle.response.content_type = "text/html; charset=utf-8"
    return PAGE


# A valid chat message is well under 16 KiB: see chat.py.
@app.route("/ws/<room>", websocket={"max_message_size": 16 * 1024})
def chat(ws: WebSocket, room: str) -> None:
    """The WebSocket handler, run inside the Bottle request: ``bottle.request`` works."""
    print(f"{bottle.request.remote_addr} joined {room}", flush=True)
    relay(ws, room)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    args = parser.parse_args()
    wsgiws.run(app, args.host, args.port)


if __name__ == "__main__":
    main()
