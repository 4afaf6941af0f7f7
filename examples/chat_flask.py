"""The chat of examples/chat.py as a Flask app: WebSocket routes with wsgiws.flask.

From the root of the repository (``.venv/bin/pip install flask``), either of::

    .venv/bin/python examples/chat_flask.py
    .venv/bin/flask --app examples/chat_flask.py run

then open http://127.0.0.1:5000/?room=lobby in two windows. The first runs
``wsgiws.run``, which picks a server that serves WebSockets among those
installed and says which (``--host``, ``--port``); the second Flask's own
development server. The WebSocket route is a Flask URL rule: ``flask routes``
lists it, ``url_for("chat", room="lobby")`` builds it, and ``flask.request``,
``session`` and ``g`` work in the handler.
"""

# The rooms (joining, validating, broadcasting) are examples/chat.py's: this
# example shows only what the framework changes. Run as a script, or by
# `flask --app`, this file's directory is on sys.path, so `chat` is that module.

from __future__ import annotations

import argparse

from chat import PAGE
from chat import chat as relay
from flask import Flask, Response, current_app, request

import wsgiws
from wsgiws import WebSocket
from wsgiws.flask import WebSockets

app = Flask(__name__)
websockets = WebSockets(app)


@app.get("/")
def index() -> Response:
    return Response(PAGE, mimetype="text/html")


# A valid chat message is well under 16 KiB: see chat.py.
@websockets.route("/ws/<room>", max_message_size=16 * 1024)
def chat(ws: WebSocket, room: str) -> None:
    """The WebSocket handler, run inside the Flask request: ``request`` and ``current_app`` work."""
    current_app.logger.info("%s joined %s", request.remote_addr, room)
    relay(ws, room)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    args = parser.parse_args()
    wsgiws.run(app, args.host, args.port)


if __name__ == "__main__":
    main()
