"""The chat of examples/chat.py, served by eventlet's own WSGI server, ``eventlet.wsgi``.

From the root of the repository (``.venv/bin/pip install eventlet``), then open
http://127.0.0.1:5000/?room=lobby in two windows::

    .venv/bin/python examples/eventlet_server.py

``--host`` and ``--port`` choose where it listens. Each connection is a green
thread. The chat starts a thread per chatter and uses locks and queues from the
standard library: monkey-patching, first thing, makes those green too.
(Eventlet is in maintenance mode and advises against new projects: prefer
gevent or threads when you have the choice.)
"""

import eventlet

eventlet.monkey_patch()  # before anything else is imported: see eventlet's docs on patching

import argparse  # noqa: E402

import eventlet.wsgi  # noqa: E402
from chat import application  # noqa: E402  (examples/ is this script's directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    args = parser.parse_args()
    listener = eventlet.listen((args.host, args.port))
    url = f"http://{args.host}:{args.port}/?room=lobby"
    print(f"Serving the chat with eventlet.wsgi on {url}", flush=True)
    eventlet.wsgi.server(listener, application)


if __name__ == "__main__":
    main()
