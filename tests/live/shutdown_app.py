"""The app of the shutdown tests (``tests.live.shutdown_app:app``).

``/hold?id=NAME`` sends ``ready`` and then echoes until the connection ends,
and logs how it ended: ``handler NAME: ConnectionClosed(CODE)`` when
``receive`` raised :class:`~wsgiws.ConnectionClosed`, which is what a server
that shuts down gracefully gives its handlers (1001). Everything else is the
default live app (``/health`` and ``/stats`` for the harness).
"""

from __future__ import annotations

import logging

from wsgiws import ConnectionClosed, WebSocket, WebSocketMiddleware

from .apps import app as default_app

log = logging.getLogger("tests.shutdown")


def hold(ws: WebSocket) -> None:
    name = ws.request.GET.get("id", "?")
    ws.send("ready")  # the handler is in place: the test may stop the server now
    try:
        for message in ws:
            ws.send(message)
    except ConnectionClosed as exc:
        log.info("handler %s: ConnectionClosed(%s)", name, exc.code)
        raise
    log.info("handler %s: the client closed (%s)", name, ws.close_code)


app = WebSocketMiddleware(default_app, {"/hold": hold})
