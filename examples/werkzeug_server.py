"""The chat of examples/chat.py, served by a Werkzeug development server the script makes itself.

From the root of the repository (``.venv/bin/pip install werkzeug``), then open
http://127.0.0.1:5000/?room=lobby in two windows::

    .venv/bin/python examples/werkzeug_server.py

``--host`` and ``--port`` choose where it listens. Each connection is a thread.
On SIGTERM or Ctrl-C the server stops accepting, and ``wsgiws.shutdown()``
sends every chatter a Close frame with 1001 (going away) and waits until their
handlers are done: the server's threads are daemon threads, which would
otherwise die with the process in the middle of their WebSockets.
"""

from __future__ import annotations

import argparse
import signal
from typing import Any

from chat import application  # examples/ is this script's directory
from werkzeug.serving import make_server

import wsgiws


def serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C; then close its WebSockets, and return."""
    server = make_server(host, port, app, threaded=True)
    url = f"http://{host}:{server.port}/?room=lobby"
    print(f"Serving the chat with the Werkzeug server on {url}", flush=True)
    # SIGTERM stops the server as Ctrl-C does: serve_forever returns on KeyboardInterrupt.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.serve_forever()
    finally:
        wsgiws.shutdown()  # Close (1001) to every WebSocket; wait until they are done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    args = parser.parse_args()
    serve(application, args.host, args.port)


if __name__ == "__main__":
    main()
