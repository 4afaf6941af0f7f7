"""wsgiws: WebSockets for any WSGI application, on the server it already runs on.

Wrap the application once::

    from wsgiws import WebSocketMiddleware

    def echo(ws):
        for message in ws:
            ws.send(message)

    app = WebSocketMiddleware(app, echo, path="/echo")

Everything public is named in ``__all__``; the modules are private.
"""

from __future__ import annotations

from ._connection import WebSocket
from ._exceptions import ConnectionClosed, HandshakeError, UnsupportedServer, WebSocketError
from ._middleware import Handler, WebSocketMiddleware

__version__ = "0.1.0.dev0"

__all__ = [
    "ConnectionClosed",
    "Handler",
    "HandshakeError",
    "UnsupportedServer",
    "WebSocket",
    "WebSocketError",
    "WebSocketMiddleware",
    "__version__",
]
