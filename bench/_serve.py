"""Child entry point: serve one target on an inherited listening socket.

Run by :func:`bench._targets.start` as::

    python -m bench._serve TARGET_ID FD [APP_MODULE]

``FD`` is a listening TCP socket the parent bound on 127.0.0.1 (so the port is
known before this process runs, and no other process can take it).
``APP_MODULE`` (default ``bench.apps``) is where the app or handler is looked
up; the tests point it at a module that fails. gunicorn targets do not come
here: the parent runs ``python -m gunicorn --bind fd://FD`` directly.

The green servers are monkey-patched first thing, before anything that might
import ``threading`` or ``socket``, as eventlet's and gevent's documentation
(and wsgiws's) ask. Only ``sys`` is imported before.
"""

from __future__ import annotations

import sys
from typing import Any


def _patch(server: str) -> None:
    if server == "eventlet-wsgi":
        import eventlet

        eventlet.monkey_patch()
    elif server == "gevent-pywsgi":
        from gevent import monkey

        monkey.patch_all()


def _load(module: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module), name)


#: The attribute of the app module each library's target serves.
_APP_NAMES = {
    "wsgiws": "wsgiws_app",
    "flask-sock": "flask_sock_app",
    "websockets/asyncio": "websockets_asyncio_echo",
    "websockets/sync": "websockets_sync_echo",
}


def main(argv: list[str]) -> None:
    target_id, fd = argv[0], int(argv[1])
    module = argv[2] if len(argv) > 2 else "bench.apps"
    library, _, server = target_id.partition("/")
    _patch(server)

    import socket

    listener = socket.socket(fileno=fd)
    if library == "floor":
        from bench import floor

        floor.serve(listener)
        return
    app = _load(module, _APP_NAMES.get(target_id) or _APP_NAMES[library])
    if target_id == "websockets/asyncio":
        import asyncio

        from websockets.asyncio.server import serve as serve_asyncio

        from bench.apps import MAX_MESSAGE_SIZE

        async def run() -> None:
            async with serve_asyncio(
                app, sock=listener, compression=None, max_size=MAX_MESSAGE_SIZE
            ) as ws_server:
                await ws_server.serve_forever()

        asyncio.run(run())
    elif target_id == "websockets/sync":
        from websockets.sync.server import serve as serve_sync

        from bench.apps import MAX_MESSAGE_SIZE

        with serve_sync(
            app, sock=listener, compression=None, max_size=MAX_MESSAGE_SIZE
        ) as ws_server:
            ws_server.serve_forever()
    elif server == "werkzeug":
        import logging

        from werkzeug.serving import make_server

        # run_simple(threaded=True) is make_server(threaded=True) + serve_forever()
        # plus a banner; it takes a listening fd only under its reloader. Its
        # per-request log lines are off, as the other servers' access logs.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        make_server("127.0.0.1", 0, app, threaded=True, fd=fd).serve_forever()
    elif server == "eventlet-wsgi":
        import eventlet.wsgi

        # max_size: the greenthread pool; its default (1024) is fewer than W6 holds.
        eventlet.wsgi.server(listener, app, max_size=12000, log_output=False)
    elif server == "gevent-pywsgi":
        from gevent.pywsgi import WSGIServer

        WSGIServer(listener, app, log=None).serve_forever()  # no pool: no limit
    else:
        sys.exit(f"bench._serve: unknown target {target_id!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
