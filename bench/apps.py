"""The applications under test, each an echo at ``/echo``: every message comes back unchanged.

* ``wsgiws_app``: :class:`wsgiws.WebSocketMiddleware` around a plain 404 app,
  with wsgiws's defaults except a 4 MiB message limit (the W3 workload sends
  1 MiB messages; wsgiws's default limit is 1 MiB).
* ``flask_sock_app``: a Flask app with flask-sock, the loop its documentation
  shows (``while True: ws.send(ws.receive())``). ``receive()`` raises
  ``simple_websocket.ConnectionClosed`` once the client's Close arrived, and
  flask-sock's route wrapper catches it: that is how the handler ends.
  ``SOCK_SERVER_OPTIONS`` is passed to ``simple_websocket.Server`` as keyword
  arguments; ``max_message_size`` is its limit (default: none).
* ``websockets_asyncio_echo``, ``websockets_sync_echo``: handlers for the
  ``websockets`` library's servers (started by :mod:`bench._serve`).

gunicorn loads the WSGI apps as ``bench.apps:wsgiws_app`` and
``bench.apps:flask_sock_app``. Each is built on first access (a PEP 562 module
``__getattr__``), so a process serving one library never imports the other:
the memory figure of a wsgiws target holds no Flask. This module may be
imported after the server monkey-patched the process (gevent, eventlet).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

#: Largest message every target accepts (``max_message_size``, ``max_size``).
MAX_MESSAGE_SIZE = 4 * 2**20

_built: dict[str, Any] = {}


def plain_404_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI app behind the middleware: nothing but ``/echo`` exists."""
    body = b"not found\n"
    start_response(
        "404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


def echo(ws: Any) -> None:
    """wsgiws's handler: iterating ends when the client closes."""
    for message in ws:
        ws.send(message)


def _wsgiws_app() -> Any:
    from wsgiws import WebSocketMiddleware

    return WebSocketMiddleware(plain_404_app, {"/echo": echo}, max_message_size=MAX_MESSAGE_SIZE)


def _flask_sock_app() -> Any:
    import flask
    from flask_sock import Sock

    app = flask.Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": MAX_MESSAGE_SIZE}
    sock = Sock(app)

    @sock.route("/echo")
    def flask_sock_echo(ws: Any) -> None:
        # flask-sock's documented loop; ws.receive() raises ConnectionClosed
        # when the client closes, and flask-sock's wrapper swallows it.
        while True:
            ws.send(ws.receive())

    return app


async def websockets_asyncio_echo(ws: Any) -> None:
    """The reference: ``websockets.asyncio.server``."""
    async for message in ws:
        await ws.send(message)


def websockets_sync_echo(ws: Any) -> None:
    """``websockets.sync.server``: one thread per connection."""
    for message in ws:
        ws.send(message)


_FACTORIES: dict[str, Callable[[], Any]] = {
    "wsgiws_app": _wsgiws_app,
    "flask_sock_app": _flask_sock_app,
}


def __getattr__(name: str) -> Any:
    factory = _FACTORIES.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _built:
        _built[name] = factory()
    return _built[name]
