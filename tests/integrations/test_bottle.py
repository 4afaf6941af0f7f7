"""wsgiws.bottle in process: the plugin on Bottle routes, filters, mounts and hooks."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

bottle = pytest.importorskip(
    "bottle", reason="Bottle is in the test extra: pip install -e '.[test]'"
)

from tests.core._peer import mask_frame  # noqa: E402
from wsgiws import WebSocket  # noqa: E402
from wsgiws.bottle import WebSocketPlugin  # noqa: E402

from ._wsgi import Upgrade  # noqa: E402
from ._wsgi import request as http  # noqa: E402

SECRET = "cookie secret"


def make_app(**defaults: Any) -> Any:
    app = bottle.Bottle()
    app.install(WebSocketPlugin(**defaults))

    @app.hook("after_request")
    def tag() -> None:
        bottle.response.set_header("X-After", "yes")

    @app.get("/login")
    def login() -> str:
        bottle.response.set_cookie("user", bottle.request.query.user, secret=SECRET)
        return "signed in"

    @app.get("/page")
    def page() -> str:
        return "a page"

    @app.route("/rooms/<n:int>", websocket=True)
    def room(ws: WebSocket, n: int) -> None:
        request = bottle.request
        ws.send(
            json.dumps(
                {
                    "n": n,
                    "type": type(n).__name__,
                    "q": request.query.getunicode("q"),
                    "header": request.get_header("X-Test"),
                    "cookie": request.get_cookie("flavour"),
                    "user": request.get_cookie("user", secret=SECRET),
                    "route": request.route.rule,
                }
            )
        )
        for message in ws:
            ws.send(message)

    @app.route("/small", websocket={"max_message_size": 8})
    def small(ws: WebSocket) -> None:
        for message in ws:
            ws.send(message)

    return app


def receive_json(up: Upgrade) -> Any:
    message = up.peer.receive()
    assert isinstance(message, str)
    return json.loads(message)


def test_route_with_filter_sees_bottle_request() -> None:
    app = make_app()
    up = Upgrade(app, "/rooms/42?q=h%C3%A9llo", {"X-Test": "hdr", "Cookie": "flavour=ginger"})
    up.read_101()
    assert receive_json(up) == {
        "n": 42,
        "type": "int",
        "q": "héllo",
        "header": "hdr",
        "cookie": "ginger",
        "user": None,
        "route": "/rooms/<n:int>",
    }
    up.peer.send("echo")
    assert up.peer.receive() == "echo"
    up.finish()
    assert up.status == "101 Switching Protocols"
    assert ("X-After", "yes") in up.headers


def test_signed_cookie_set_by_an_http_route_is_read_in_the_handler() -> None:
    app = make_app()
    resp = http(app, "/login?user=alice")
    cookie = resp.headers["Set-Cookie"].split(";")[0]
    up = Upgrade(app, "/rooms/1", {"Cookie": cookie})
    up.read_101()
    assert receive_json(up)["user"] == "alice"
    up.finish()


def test_mounted_app_route_under_a_prefix() -> None:
    parent = make_app()
    child = bottle.Bottle()
    child.install(WebSocketPlugin())

    @child.route("/<n:int>", websocket=True)
    def numbered(ws: WebSocket, n: int) -> None:
        ws.send(f"{bottle.request.route.rule} {bottle.request.path} {n + 1}")

    # Bottle 0.13 moves a mounted Bottle's routes into the parent, prefixed;
    # they keep the child's plugins.
    parent.mount("/sub/", child)
    up = Upgrade(parent, "/sub/41")
    up.read_101()
    assert up.peer.receive() == "/sub/<n:int> /sub/41 42"
    assert up.peer.expect_close().code == 1000
    up.join()


def test_per_route_options_override_the_plugins() -> None:
    app = make_app(max_message_size=1000)
    up = Upgrade(app, "/small")
    up.read_101()
    up.peer.send("12345678")
    assert up.peer.receive() == "12345678"
    up.peer.send("123456789")
    assert up.peer.expect_close().code == 1009
    up.join()


def test_plugin_default_applies_to_websocket_true() -> None:
    app = make_app(max_message_size=4)
    up = Upgrade(app, "/rooms/1")
    up.read_101()
    receive_json(up)
    up.peer.send("12345")
    assert up.peer.expect_close().code == 1009
    up.join()


def test_first_frame_in_the_servers_buffer_is_not_lost() -> None:
    up = Upgrade(make_app(), "/small", early=mask_frame(0x1, b"early"))
    up.read_101()
    assert up.peer.receive() == "early"
    up.finish()


def test_plain_get_gets_426() -> None:
    app = make_app()
    resp = http(app, "/rooms/3")
    assert resp.status_code == 426
    assert resp.headers["X-After"] == "yes"
    assert b"/rooms/3 is a WebSocket endpoint" in resp.data
    a, b = socket.socketpair()
    with a, b:  # on a server wsgiws supports, the Upgrade header names the protocol
        resp = http(app, "/rooms/3", environ_overrides={"werkzeug.socket": a})
    assert (resp.status_code, resp.headers["Upgrade"]) == (426, "websocket")


def test_rejection_is_the_plain_answer_with_hooks_applied() -> None:
    status, headers, body = Upgrade(
        make_app(), "/rooms/1", {"Sec-WebSocket-Version": "8"}
    ).rejected()
    assert status == "426 Upgrade Required"
    assert headers["sec-websocket-version"] == "13"
    assert headers["x-after"] == "yes"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert b"unsupported Sec-WebSocket-Version '8'" in body


def test_other_routes_are_untouched() -> None:
    app = make_app()
    page = next(r for r in app.routes if r.rule == "/page")
    assert WebSocketPlugin().apply(page.callback, page) is page.callback
    assert http(app, "/page").data == b"a page"
    status, _, body = Upgrade(app, "/nowhere").rejected()
    assert status.startswith("404 ")
    assert b"Error: 404 Not Found" in body


def test_bad_options_raise() -> None:
    with pytest.raises(TypeError, match="max_size"):
        WebSocketPlugin(max_size=3)
    with pytest.raises(ValueError):
        WebSocketPlugin(max_message_size=0)
    app = make_app()

    @app.route("/bad", websocket={"max_size": 3})
    def bad(ws: WebSocket) -> None:
        raise AssertionError("not reached")

    route = next(r for r in app.routes if r.rule == "/bad")
    with pytest.raises(TypeError, match="max_size"):
        WebSocketPlugin().apply(route.callback, route)


def test_second_plugin_is_refused() -> None:
    app = make_app()
    with pytest.raises(bottle.PluginError):
        app.install(WebSocketPlugin())
