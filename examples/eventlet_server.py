"""The chat of examples/chat.py, served by eventlet's own WSGI server, ``eventlet.wsgi``.

From the root of the repository (``.venv/bin/pip install eventlet``), then open
http://127.0.0.1:5000/?room=lobby in two windows::

    .venv/bin/python examples/eventlet_server.py

``--host`` and ``--port`` choose where it listens. Each connection is a green
thread. The chat starts a thread per chatter and uses locks and queues from the
standard library: monkey-patching, first thing, makes those green too.
(Eventlet is in maintenance mode and advises against new projects: prefer
gevent or threads when you have the choice.)

On SIGTERM or Ctrl-C it stops accepting, calls ``wsgiws.shutdown()`` (every
chatter gets a Close frame with 1001, going away, and its handler ends), then
waits for the server to finish.
"""

import eventlet

eventlet.monkey_patch()  # before anything else is imported: see eventlet's docs on patching

import argparse  # noqa: E402
import signal  # noqa: E402
from typing import Any  # noqa: E402

import eventlet.wsgi  # noqa: E402
from chat import application  # noqa: E402  (examples/ is this script's directory)

import wsgiws  # noqa: E402


def serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C; then close its WebSockets, and stop."""
    listener = eventlet.listen((host, port))
    url = f"http://{host}:{listener.getsockname()[1]}/?room=lobby"
    print(f"Serving the chat with eventlet.wsgi on {url}", flush=True)
    server = eventlet.spawn(eventlet.wsgi.server, listener, app)
    signals: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: signals.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: signals.append(signum))
    while not signals:
        # A signal handler cannot wake eventlet's hub from its wait (no
        # green thread it wakes runs before the hub's next timer): look often.
        eventlet.sleep(0.1)
    server.kill(SystemExit)  # the server stops accepting, and waits for its connections
    wsgiws.shutdown()  # Close (1001) to every WebSocket; wait until they are done
    server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    args = parser.parse_args()
    serve(application, args.host, args.port)


if __name__ == "__main__":
    main()
