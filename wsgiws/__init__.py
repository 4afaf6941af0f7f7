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
from ._deflate import Deflate
from ._exceptions import (
    ConnectionClosed,
    HandshakeError,
    Reject,
    UnsupportedServer,
    WebSocketError,
)
from ._middleware import WebSocketMiddleware
from ._options import Accept, AcceptHook, Endpoint, Handler
from ._run import run
from ._shutdown import shutdown

__version__ = "0.1.0.dev0"

__all__ = [
    "Accept",
    "AcceptHook",
    "ConnectionClosed",
    "Deflate",
    "Endpoint",
    "Handler",
    "HandshakeError",
    "Reject",
    "UnsupportedServer",
    "WebSocket",
    "WebSocketError",
    "WebSocketMiddleware",
    "__version__",
    "run",
    "shutdown",
]
