"""A chat: a plain WSGI app serving one page, and a WebSocket per room at /ws/<room>.

Every message sent to a room reaches everyone in that room. Run it from the root
of the repository, then open http://127.0.0.1:5000/?room=lobby in two windows::

    .venv/bin/python examples/chat.py

``--host`` and ``--port`` choose where it listens; it prints which server it
runs on and why.

Under gunicorn (``.venv/bin/pip install gunicorn gevent``), with the threaded
worker, where each chatter holds a thread, or with the gevent worker, where each
holds a greenlet; then open http://127.0.0.1:8000/?room=lobby::

    .venv/bin/gunicorn -k gthread --threads 100 -w 1 examples.chat:application
    .venv/bin/gunicorn -k gevent -w 1 examples.chat:application

``-w 1`` because the rooms live in the memory of one process: with several
workers, two chatters in the same room could land in different processes and
never see each other (that takes a broker shared by the workers, such as Redis).
"""

# The chat room (from MAX_NAME to forward) is the same in chat_flask.py,
# chat_bottle.py and chat_pyramid.py: each example is self-contained on purpose.

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import re
import threading
from pathlib import Path

import wsgiws
from wsgiws import ConnectionClosed, Endpoint, WebSocket, WebSocketMiddleware

PAGE = Path(__file__).with_name("chat.html").read_bytes()

MAX_NAME, MAX_TEXT = 40, 2000  # characters
ROOM = re.compile(r"[\w-]{1,40}")
OUTBOX = 100  # messages queued for one chatter before it misses some

# Each room is a set of outboxes, one per chatter; a thread per chatter sends
# what lands in its outbox. A chatter that reads slowly (or never) fills only
# its own outbox and stalls only its own thread, never the room.
rooms: dict[str, set[queue.Queue[str | None]]] = {}
rooms_lock = threading.Lock()


def chat(ws: WebSocket, room: str) -> None:
    """The WebSocket handler: relay this chatter's messages to the room until it leaves."""
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


def app(environ, start_response):
    """The WSGI application: the chat page at /, 404 everywhere else."""
    if environ.get("PATH_INFO", "/") != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found\n"]
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(PAGE)))]
    start_response("200 OK", headers)
    return [PAGE]


# A valid chat message is well under 16 KiB (2000 characters, JSON-escaped);
# a bigger one closes the connection with 1009 before it is even parsed. No
# login, no cookies: nothing for another site to hijack, so any Origin may
# connect. Once you add a login, set origins= (see docs/topics/security.rst).
application = WebSocketMiddleware(app, {"/ws/{room}": Endpoint(chat, max_message_size=16 * 1024)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    args = parser.parse_args()
    wsgiws.run(application, args.host, args.port)


if __name__ == "__main__":
    main()
