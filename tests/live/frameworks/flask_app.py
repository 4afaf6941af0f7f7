"""A Flask app with WebSockets beside its routes: ``app.wsgi_app`` wrapped, the ``Flask``
object served (``tests.live.frameworks.flask_app:app``)."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from wsgiws import WebSocketMiddleware

from .._instrument import instrument
from ._common import handlers

app = Flask(__name__)


@app.get("/health")
def health() -> Any:
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/items/<int:item_id>")
def item(item_id: int) -> Any:
    return jsonify(framework="flask", item=item_id, type=type(item_id).__name__)


@app.post("/submit")
def submit() -> Any:
    return jsonify(framework="flask", received=request.get_json()), 201


@app.post("/form")
def form() -> Any:
    return jsonify(framework="flask", name=request.form["name"], size=len(request.form["blob"]))


@app.get("/ws/echo")
def echo_page() -> Any:
    """What a browser gets at the WebSocket path without an upgrade: a page."""
    return "<!doctype html><title>echo</title><p>flask echo page</p>\n"


@app.after_request
def tag(response: Any) -> Any:
    response.headers["X-Framework"] = "flask"
    return response


app.wsgi_app = instrument(WebSocketMiddleware(app.wsgi_app, handlers("flask")))  # type: ignore[method-assign]
