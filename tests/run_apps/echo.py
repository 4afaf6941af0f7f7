"""An echo app: GET / answers what served it, a WebSocket at /echo echoes.

``/`` answers JSON: the server's ``SERVER_SOFTWARE``, this process's id, and
the class ``socket.socket`` was when this module was imported, which tells
whether the process was monkey-patched before the app was imported.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from typing import Any, Callable

from wsgiws import WebSocket, WebSocketMiddleware

#: What socket.socket was at import time: gevent's or eventlet's class if the
#: launcher patched first.
SOCKET_AT_IMPORT = f"{socket.socket.__module__}.{socket.socket.__qualname__}"


def plain(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = json.dumps(
        {
            "server": environ.get("SERVER_SOFTWARE", ""),
            "pid": os.getpid(),
            "socket_at_import": SOCKET_AT_IMPORT,
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


app = WebSocketMiddleware(plain, echo, path="/echo")
