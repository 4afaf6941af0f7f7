"""The WSGI app the conformance tier runs (``tests.conformance.app:app``).

An echo handler at ``/echo`` (every message sent back as it came: the
fuzzingclient's cases expect an echo server), and a deliberately broken one at
``/broken`` for the runner's own test, wrapped by
:class:`~wsgiws.WebSocketMiddleware` with the defaults a user gets, except the
message size limit: section 9 sends messages of up to 16 MiB. Everything else
is what the live harness needs: ``/health`` for its readiness probe, and
``/stats`` through :func:`~tests.live._instrument.instrument`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

from tests.live._instrument import instrument
from wsgiws import WebSocket, WebSocketMiddleware

#: The largest message of section 9 (9.1.6, 9.2.6: 16 MiB).
MAX_MESSAGE_SIZE = 16 * 2**20

# What users do: let the library's log lines reach the server's output.
logging.basicConfig(
    level=logging.INFO,
    stream=sys.stderr,
    format="%(levelname)s:%(name)s:%(message)s",
)


def echo(ws: WebSocket) -> None:
    """Send every message back, text as text and binary as binary."""
    for message in ws:
        ws.send(message)


def broken(ws: WebSocket) -> None:
    """A broken echo, for the test that the runner reports failures: a message of exactly
    125 bytes is swallowed (no echo, no close: wstest's case 1.1.2 stalls), and a text
    message of 126 characters comes back as binary (case 1.1.3 FAILS)."""
    for message in ws:
        if len(message) == 125:
            continue
        if isinstance(message, str) and len(message) == 126:
            ws.send(message.encode())
        else:
            ws.send(message)


def plain_app(environ: MutableMapping[str, Any], start_response: Any) -> Iterable[bytes]:
    """``/health`` for the harness; 404 for anything else that is not a WebSocket."""
    if environ.get("PATH_INFO") == "/health":
        status, body = "200 OK", b"ok\n"
    else:
        status, body = "404 Not Found", b"not found\n"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


app = instrument(
    WebSocketMiddleware(
        plain_app, {"/echo": echo, "/broken": broken}, max_message_size=MAX_MESSAGE_SIZE
    )
)
