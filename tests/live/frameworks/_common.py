"""What the three framework apps share: their WebSocket handlers and the library's logging.

The handlers live beside the framework, not in it: the middleware answers the
upgrade before the framework sees the request. What the handler knows of the
request comes from ``ws.request``, the :class:`webob.Request` of the upgrade.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from wsgiws import WebSocket

# What users do: let the library's log lines reach the server's output.
logging.basicConfig(
    level=logging.INFO, stream=sys.stderr, format="%(levelname)s:%(name)s:%(message)s"
)

#: The cookie the ``/ws/request`` handler reads.
COOKIE = "flavour"


def handlers(framework: str) -> dict[str, Any]:
    """The WebSocket paths of a framework app: an echo, and the upgrade request seen back."""

    def echo(ws: WebSocket) -> None:
        for message in ws:
            ws.send(message)

    def request_echo(ws: WebSocket) -> None:
        """Send the upgrade request's query parameter ``q`` and cookie back, as JSON; then echo."""
        request = ws.request
        ws.send(
            json.dumps(
                {
                    "framework": framework,
                    "path": request.path_info,
                    "q": request.GET.get("q"),
                    "cookie": request.cookies.get(COOKIE),
                    "user_agent": request.user_agent,
                }
            )
        )
        for message in ws:
            ws.send(message)

    return {"/ws/echo": echo, "/ws/request": request_echo}
