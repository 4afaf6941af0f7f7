"""Flask, Bottle and Pyramid apps wrapped by the middleware, on every supported server.

Each framework keeps answering its own routes (status, headers, body, the
request body of a POST, its own 404) beside the WebSocket paths, before,
during and after a WebSocket; a plain GET of a WebSocket path is the
framework's to answer. The apps are in ``tests/live/frameworks``.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlencode

import pytest

from tests.conftest import timeout

from . import _scenarios
from ._clients import ws_connect

#: A line of each framework's own 404 page (http.client sends no Accept header).
NOT_FOUND = {
    "flask": "<h1>Not Found</h1>",
    "bottle": "<title>Error: 404 Not Found</title>",
    "pyramid": "The resource could not be found.",
}


def _check_framework_response(server, resp, status: int, ctype: str) -> None:
    assert resp.status == status, (resp.status, resp.headers, resp.text[:300])
    assert resp.headers["content-type"].lower().startswith(ctype), resp.headers
    assert resp.headers.get("x-framework") == server.framework, resp.headers
    assert int(resp.headers["content-length"]) == len(resp.body), resp.headers


def _check_item_and_404(server, item: int, missing: str) -> None:
    """``/items/<item>`` answers its JSON; ``missing`` gets the framework's own 404."""
    resp = server.get(f"/items/{item}")
    _check_framework_response(server, resp, 200, "application/json")
    assert resp.json() == {"framework": server.framework, "item": item, "type": "int"}
    resp = server.get(missing)
    _check_framework_response(server, resp, 404, "text/")
    assert NOT_FOUND[server.framework] in resp.text, resp.text


def _check_routes(server) -> None:
    """The framework's ordinary routes, as a quick round (during and after a WebSocket)."""
    _check_item_and_404(server, 7, "/nope")


# -- ordinary HTTP ------------------------------------------------------------------


def test_health_route(framework_server):
    server = framework_server
    resp = server.get("/health")
    _check_framework_response(server, resp, 200, "text/plain")
    assert resp.text == "ok\n"


def test_json_route_with_url_converter(framework_server):
    # The route's converter (int, \d+) refuses a word: the framework's 404.
    _check_item_and_404(framework_server, 42, "/items/forty-two")


def test_post_json_body_round_trip(framework_server):
    server = framework_server
    data = {"text": "héllo ✓", "numbers": list(range(50)), "nested": {"blob": "x" * 20000}}
    body = json.dumps(data).encode()
    resp = server.request("POST", "/submit", {"Content-Type": "application/json"}, body)
    _check_framework_response(server, resp, 201, "application/json")
    assert resp.json() == {"framework": server.framework, "received": data}


def test_post_form_body(framework_server):
    server = framework_server
    body = urlencode({"name": "Zoë", "blob": "y" * 100_000}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    resp = server.request("POST", "/form", headers, body)
    _check_framework_response(server, resp, 200, "application/json")
    assert resp.json() == {"framework": server.framework, "name": "Zoë", "size": 100_000}


def test_unknown_path_gets_the_framework_404(framework_server):
    server = framework_server
    resp = server.get("/no/such/page")
    _check_framework_response(server, resp, 404, "text/")
    assert NOT_FOUND[server.framework] in resp.text, resp.text


def test_plain_get_on_websocket_paths_reaches_the_framework(framework_server):
    """Without the upgrade headers a WebSocket path is an ordinary URL of the app."""
    server = framework_server
    resp = server.get("/ws/echo")  # the app routes a page there
    _check_framework_response(server, resp, 200, "text/html")
    assert f"<p>{server.framework} echo page</p>" in resp.text, resp.text
    resp = server.get("/ws/request?q=1")  # and nothing there
    _check_framework_response(server, resp, 404, "text/")
    assert NOT_FOUND[server.framework] in resp.text, resp.text


# -- WebSockets beside the framework -----------------------------------------------------


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_websocket_echo(framework_server, kind):
    messages = ["héllo ✓", "x" * 70_000] if kind == "text" else [b"\x00\xff", os.urandom(70_000)]
    with ws_connect(framework_server, "/ws/echo") as ws:
        for message in messages:
            ws.send(message)
            assert ws.recv(timeout=timeout(30)) == message


def test_websocket_pipelined_first_frame(framework_server):
    """The handshake and the first frames in one sendall: none may be lost."""
    _scenarios.pipelined_first_frame(framework_server, "/ws/echo")


def test_websocket_handler_reads_query_and_cookie(framework_server):
    server = framework_server
    headers = {"Cookie": "other=1; flavour=ginger-snap", "User-Agent": "wsgiws-live/1"}
    with ws_connect(server, "/ws/request?q=h%C3%A9llo+world&x=2", additional_headers=headers) as ws:
        seen = json.loads(ws.recv(timeout=timeout(10)))
        ws.send("and then an echo")
        assert ws.recv(timeout=timeout(10)) == "and then an echo"
    assert seen == {
        "framework": server.framework,
        "path": "/ws/request",
        "q": "héllo world",
        "cookie": "ginger-snap",
        "user_agent": "wsgiws-live/1",
    }


def test_http_routes_answer_during_and_after_a_websocket(framework_server):
    server = framework_server
    with ws_connect(server, "/ws/echo") as ws:
        ws.send("open")
        assert ws.recv(timeout=timeout(10)) == "open"
        _check_routes(server)  # while the WebSocket is open
        ws.send("still open")
        assert ws.recv(timeout=timeout(10)) == "still open"
    server.settle()
    _check_routes(server)  # after it closed, the same server
    resp = server.get("/health")
    assert (resp.status, resp.text) == (200, "ok\n")
