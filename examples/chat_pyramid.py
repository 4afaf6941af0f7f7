"""The chat of examples/chat.py as a Pyramid app: WebSocket views with wsgiws.pyramid.

From the root of the repository (``.venv/bin/pip install pyramid``), then open
http://127.0.0.1:5000/?room=lobby in two windows::

    .venv/bin/python examples/chat_pyramid.py

It runs ``wsgiws.run``, which picks a server that serves WebSockets among those
installed and says which (``--host``, ``--port``). The WebSocket view is a
Pyramid view on a route: permissions, predicates and ``ws.request`` (the Pyramid
request, with its ``matchdict``) all work as usual.
"""

# The chat room (from MAX_NAME to forward) is the same in chat.py, chat_flask.py
# and chat_bottle.py: each example is self-contained on purpose.

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import re
import threading
from pathlib import Path

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

import wsgiws
from wsgiws import ConnectionClosed, WebSocket

PAGE = Path(__file__).with_name("chat.html").read_bytes()

MAX_NAME, MAX_TEXT = 40, 2000  # characters
ROOM = re.compile(r"[\w-]{1,40}")
OUTBOX = 100  # messages queued for one chatter before it misses some

# Each room is a set of outboxes, one per chatter; a thread per chatter sends
# what lands in its outbox. A chatter that reads slowly (or never) fills only
# its own outbox and stalls only its own thread, never the room.
rooms: dict[str, set[queue.Queue[str | None]]] = {}
rooms_lock = threading.Lock()


def chat(ws: WebSocket) -> None:
    """The WebSocket handler: relay this chatter's messages to the room until it leaves."""
    room = ws.request.matchdict["room"]
    if not ROOM.fullmatch(room):
        ws.close(1008, "a room name is letters, digits, - and _")
        return
    outbox: queue.Queue[str | None] = queue.Queue(OUTBOX)
    threading.Thread(target=forward, args=(outbox, ws), daemon=True).start()
    with rooms_lock:
        rooms.setdefault(room, set()).add(outbox)
    try:
        for message in ws:
            if not isinstance(message, str):
                ws.close(1003, "text messages only")  # RFC 6455 §7.4.1: unacceptable type
                return
            try:
                name, text = parse(message)
            except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
                ws.close(1007, "expected {name, text}")  # §7.4.1: data inconsistent with type
                return
            broadcast(room, json.dumps({"name": name, "text": text}))
    finally:
        with rooms_lock:
            rooms[room].discard(outbox)
            if not rooms[room]:
                del rooms[room]
        with contextlib.suppress(queue.Full):  # full: its thread is busy, and fails next send
            outbox.put_nowait(None)


def parse(message: str) -> tuple[str, str]:
    """The name and text of a message ``{"name": ..., "text": ...}``; ValueError if it is not."""
    data = json.loads(message)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    name, text = data.get("name"), data.get("text")
    if not isinstance(name, str) or not isinstance(text, str):
        raise ValueError("name and text must be strings")
    name, text = name.strip(), text.strip()
    if not (0 < len(name) <= MAX_NAME and 0 < len(text) <= MAX_TEXT):
        raise ValueError("name or text empty or too long")
    return name, text


def broadcast(room: str, message: str) -> None:
    """Queue ``message`` for everyone in ``room`` (the sender too: that is its echo)."""
    with rooms_lock:
        outboxes = list(rooms.get(room, ()))
    for outbox in outboxes:
        with contextlib.suppress(queue.Full):  # that chatter is far behind: it misses this
            outbox.put_nowait(message)


def forward(outbox: queue.Queue[str | None], ws: WebSocket) -> None:
    """Send one chatter what its outbox receives, until None or the connection is gone."""
    with contextlib.suppress(ConnectionClosed):
        while (message := outbox.get()) is not None:
            ws.send(message)


def index(request: Request) -> Response:
    return Response(PAGE, content_type="text/html", charset="utf-8")


def make_app():
    """The Pyramid WSGI app: the page at /, the chat's WebSocket view at /ws/{room}."""
    with Configurator() as config:
        config.include("wsgiws.pyramid")
        config.add_route("index", "/")
        config.add_view(index, route_name="index")
        config.add_route("chat", "/ws/{room}")
        # A valid chat message is well under 16 KiB: see chat.py.
        config.add_websocket_view(chat, route_name="chat", max_message_size=16 * 1024)
        return config.make_wsgi_app()


app = make_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    args = parser.parse_args()
    wsgiws.run(app, args.host, args.port)


if __name__ == "__main__":
    main()
