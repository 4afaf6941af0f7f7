"""A Flask app with WebSocket routes of wsgiws.flask (``tests.live.frameworks.flask_native:app``).

The routes the live tests of ``test_integrations.py`` use, the same in the three
native apps: ``/rooms/<n>`` (a converter; reports what the handler sees of the
request), ``/sub/<n>`` (a blueprint), ``/echo``, ``/small`` (its own
``max_message_size``), ``/login`` and ``/page`` (plain HTTP).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, current_app, g, request, session

from wsgiws import WebSocket
from wsgiws.flask import WebSockets

from .._instrument import instrument
from ._common import COOKIE

app = Flask(__name__)
app.secret_key = "flask-native secret"
websockets = WebSockets(app)


@app.before_request
def remember() -> None:
    g.marker = "set by before_request"


@app.after_request
def tag(response: Any) -> Any:
    response.headers["X-Framework"] = "flask"
    return response


@app.get("/health")
def health() -> Any:
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/page")
def page() -> Any:
    return "a flask page\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/login")
def login() -> Any:
    session["user"] = request.args["user"]
    return "signed in\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@websockets.route("/rooms/<int:n>")
def room(ws: WebSocket, n: int) -> None:
    ws.send(
        json.dumps(
            {
                "framework": "flask",
                "n": n,
                "type": type(n).__name__,
                "q": request.args.get("q"),
                "header": request.headers.get("X-Test"),
                "cookie": request.cookies.get(COOKIE),
                "user": session.get("user"),
                "extra": {"g": g.get("marker"), "app": current_app.name},
            }
        )
    )
    for message in ws:
        ws.send(message)


bp = Blueprint("sub", __name__, url_prefix="/sub")


@websockets.route("/<int:n>", blueprint=bp)
def numbered(ws: WebSocket, n: int) -> None:
    ws.send(json.dumps({"n": n + 1, "where": request.endpoint}))


app.register_blueprint(bp)


@websockets.route("/echo")
def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@websockets.route("/small", max_message_size=8)
def small(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


app.wsgi_app = instrument(app.wsgi_app)  # type: ignore[method-assign]
