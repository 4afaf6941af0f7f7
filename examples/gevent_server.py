"""The chat of examples/chat.py, served by gevent's own WSGI server, ``gevent.pywsgi``.

From the root of the repository (``.venv/bin/pip install gevent``), then open
http://127.0.0.1:5000/?room=lobby in two windows::

    .venv/bin/python examples/gevent_server.py

``--host`` and ``--port`` choose where it listens. Each connection is a
greenlet. The chat starts a thread per chatter and uses locks and queues from
the standard library: monkey-patching, first thing, makes those greenlets too.
"""

from gevent import monkey

monkey.patch_all()  # before anything else is imported: see gevent's docs on monkey-patching

import argparse  # noqa: E402

from chat import application  # noqa: E402  (examples/ is this script's directory)
from gevent.pywsgi import WSGIServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    args = parser.parse_args()
    server = WSGIServer((args.host, args.port), application)
    url = f"http://{args.host}:{args.port}/?room=lobby"
    print(f"Serving the chat with gevent.pywsgi on {url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
