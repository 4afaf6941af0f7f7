"""An echo server: a plain WSGI app with a WebSocket at /echo.

Run it on the Werkzeug development server, then open the URL it prints::

    python examples/echo.py [--port 5000]

The page at / opens a WebSocket to /echo on the same host; what you type comes
back from the server.
"""

from __future__ import annotations

import argparse

from werkzeug.serving import make_server

from wsgiws import WebSocketMiddleware

PAGE = b"""<!doctype html>
<html>
<head><meta charset="utf-8"><title>wsgiws echo</title></head>
<body>
<h1>wsgiws echo</h1>
<form id="form"><input id="text" autofocus> <button>Send</button></form>
<pre id="log"></pre>
<script>
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/echo");
ws.onopen = () => log("connected");
ws.onmessage = (event) => log("< " + event.data);
ws.onclose = (event) => log("closed (" + event.code + ")");
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  const text = document.getElementById("text");
  ws.send(text.value);
  log("> " + text.value);
  text.value = "";
};
</script>
</body>
</html>
"""


def app(environ, start_response):
    """The WSGI application: the page at /, 404 everywhere else."""
    if environ.get("PATH_INFO", "/") != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found\n"]
    start_response(
        "200 OK",
        [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(PAGE)))],
    )
    return [PAGE]


def echo(ws):
    """The WebSocket handler: send every message back as it came."""
    for message in ws:
        ws.send(message)


application = WebSocketMiddleware(app, echo, path="/echo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    args = parser.parse_args()
    server = make_server("127.0.0.1", args.port, application, threaded=True)
    print(f"Serving the echo demo on http://127.0.0.1:{server.port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
