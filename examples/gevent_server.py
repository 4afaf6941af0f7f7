"""The chat of examples/chat.py, served by gevent's own WSGI server, ``gevent.pywsgi``.

From the root of the repository (``.venv/bin/pip install gevent``), then open
http://127.0.0.1:5000/?room=lobby in two windows::

    .venv/bin/python examples/gevent_server.py

``--host`` and ``--port`` choose where it listens. Each connection is a
greenlet. The chat starts a thread per chatter and uses locks and queues from
the standard library: monkey-patching, first thing, makes those greenlets too.

On SIGTERM or Ctrl-C it stops accepting, calls ``wsgiws.shutdown()`` (every
chatter gets a Close frame with 1001, going away, and its handler ends), then
stops the server.
"""

from gevent import monkey

monkey.patch_all()  # before anything else is imported: see gevent's docs on monkey-patching

import argparse  # noqa: E402
import signal  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from chat import application  # noqa: E402  (examples/ is this script's directory)
from gevent.pywsgi import WSGIServer  # noqa: E402

import wsgiws  # noqa: E402


def serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C; then close its WebSockets, and stop."""
    server = WSGIServer((host, port), app)

    def stop() -> None:  # gevent runs it in a greenlet of its own: it may wait
        wsgiws.shutdown()  # Close (1001) to every WebSocket; wait until they are done
        server.stop()  # then serve_forever returns

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    server.start()
    url = f"http://{host}:{server.server_port}/?room=lobby"
    print(f"Serving the chat with gevent.pywsgi on {url}", flush=True)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    args = parser.parse_args()
    serve(application, args.host, args.port)


if __name__ == "__main__":
    main()
