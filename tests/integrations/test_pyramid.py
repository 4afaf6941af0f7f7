"""wsgiws.pyramid in process: the directive, the predicate, security and sessions around serve()."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

pytest.importorskip("pyramid", reason="Pyramid is in the test extra: pip install -e '.[test]'")

from pyramid.config import Configurator
from pyramid.events import NewResponse
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory

from tests.core._peer import mask_frame
from tests.live.frameworks.pyramid_native import CookiePolicy
from wsgiws import WebSocket
from wsgiws.pyramid import WebSocketPredicate

from ._wsgi import Upgrade
from ._wsgi import request as http


def room(ws: WebSocket) -> None:
    request: Any = ws.request
    ws.send(
        json.dumps(
            {
                "matchdict": request.matchdict,
                "route": request.matched_route.name,
                "q": request.GET.get("q"),
                "header": request.headers.get("X-Test"),
                "cookie": request.cookies.get("flavour"),
                "session": request.session.get("seen"),
                "userid": request.authenticated_userid,
            }
        )
    )
    for message in ws:
        ws.send(message)


def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


def set_session(request: Any) -> Response:
    request.session["seen"] = request.GET["value"]
    return Response("stored")


def page(request: Any) -> Response:
    return Response("a page")


def tag(event: Any) -> None:
    event.response.headers["X-After"] = "yes"


def make_app(defaults: dict[str, Any] | None = None, **room_options: Any) -> Any:
    with Configurator() as config:
        config.include("wsgiws.pyramid")
        if defaults is not None:
            config.set_websocket_options(**defaults)
        config.set_session_factory(SignedCookieSessionFactory("session secret"))
        config.set_security_policy(CookiePolicy())
        config.add_subscriber(tag, NewResponse)
        config.add_route("store", "/store")
        config.add_view(set_session, route_name="store")
        config.add_route("room", r"/rooms/{n:\d+}")
        config.add_websocket_view(room, route_name="room", **room_options)
        config.add_route("private", "/private")
        config.add_websocket_view(echo, route_name="private", permission="chat")
        config.add_route("small", "/small")
        config.add_websocket_view(echo, route_name="small", max_message_size=8)
        config.add_route("shared", "/shared")
        config.add_view(page, route_name="shared")
        config.add_websocket_view(echo, route_name="shared")

        def prefixed(config: Any) -> None:
            config.add_route("prefixed", "/{n}")
            config.add_websocket_view(room, route_name="prefixed")

        config.include(prefixed, route_prefix="/pre")
        return config.make_wsgi_app()


def receive_json(up: Upgrade) -> Any:
    message = up.peer.receive()
    assert isinstance(message, str)
    return json.loads(message)


def test_handler_gets_the_pyramid_request() -> None:
    app = make_app()
    up = Upgrade(app, "/rooms/42?q=h%C3%A9llo", {"X-Test": "hdr", "Cookie": "flavour=ginger"})
    up.read_101()
    assert receive_json(up) == {
        "matchdict": {"n": "42"},
        "route": "room",
        "q": "héllo",
        "header": "hdr",
        "cookie": "ginger",
        "session": None,
        "userid": None,
    }
    up.peer.send("echo")
    assert up.peer.receive() == "echo"
    up.finish()
    assert up.status == "101 Switching Protocols"
    assert ("X-After", "yes") in up.headers  # NewResponse subscribers see it


def test_session_and_identity_from_http_requests() -> None:
    app = make_app()
    resp = http(app, "/store?value=from-http")
    session_cookie = resp.headers["Set-Cookie"].split(";")[0]
    up = Upgrade(app, "/rooms/1", {"Cookie": f"{session_cookie}; user=bob"})
    up.read_101()
    seen = receive_json(up)
    assert (seen["session"], seen["userid"]) == ("from-http", "bob")
    up.finish()


def test_route_prefix_of_an_include() -> None:
    up = Upgrade(make_app(), "/pre/7")
    up.read_101()
    seen = receive_json(up)
    assert (seen["route"], seen["matchdict"]) == ("prefixed", {"n": "7"})
    up.finish()


def test_permission_denied_is_pyramids_403_and_allowed_upgrades() -> None:
    app = make_app()
    status, headers, body = Upgrade(app, "/private", {"Cookie": "user=bob"}).rejected()
    assert status == "403 Forbidden"
    assert headers["x-after"] == "yes"
    assert b"Access was denied to this resource" in body
    up = Upgrade(app, "/private", {"Cookie": "user=alice"})
    up.read_101()
    up.peer.send("in")
    assert up.peer.receive() == "in"
    up.finish()


def test_options_per_view_over_app_defaults() -> None:
    app = make_app({"max_message_size": 4}, max_message_size=16)
    up = Upgrade(app, "/rooms/1")  # the view's own 16
    up.read_101()
    receive_json(up)
    up.peer.send("x" * 16)
    assert up.peer.receive() == "x" * 16
    up.peer.send("x" * 17)
    assert up.peer.expect_close().code == 1009
    up.join()
    up = Upgrade(app, "/shared")  # the app's 4
    up.read_101()
    up.peer.send("12345")
    assert up.peer.expect_close().code == 1009
    up.join()


def test_first_frame_in_the_servers_buffer_is_not_lost() -> None:
    up = Upgrade(make_app(), "/small", early=mask_frame(0x1, b"early"))
    up.read_101()
    assert up.peer.receive() == "early"
    up.finish()


def test_http_view_and_websocket_view_share_a_route() -> None:
    app = make_app()
    resp = http(app, "/shared")
    assert (resp.status_code, resp.data) == (200, b"a page")
    up = Upgrade(app, "/shared")
    up.read_101()
    up.peer.send("ws")
    assert up.peer.receive() == "ws"
    up.finish()


def test_plain_get_on_a_websocket_only_route_gets_426() -> None:
    app = make_app()
    resp = http(app, "/rooms/3")
    assert resp.status_code == 426
    assert b"/rooms/3 is a WebSocket endpoint" in resp.data
    assert resp.headers["X-After"] == "yes"
    a, b = socket.socketpair()
    with a, b:  # on a server wsgiws supports, the Upgrade header names the protocol
        resp = http(app, "/rooms/3", environ_overrides={"werkzeug.socket": a})
    assert (resp.status_code, resp.headers["Upgrade"]) == (426, "websocket")


def test_unknown_path_is_pyramids_404() -> None:
    app = make_app()
    status, _, body = Upgrade(app, "/nowhere").rejected()
    assert status == "404 Not Found"
    assert b"The resource could not be found." in body
    assert http(app, "/nowhere").status_code == 404


def test_defective_handshake_gets_serves_answer() -> None:
    status, headers, body = Upgrade(
        make_app(), "/rooms/1", {"Sec-WebSocket-Version": "8"}
    ).rejected()
    assert status == "426 Upgrade Required"
    assert headers["sec-websocket-version"] == "13"
    assert b"unsupported Sec-WebSocket-Version '8'" in body


def test_predicate() -> None:
    yes, no = WebSocketPredicate(True, None), WebSocketPredicate(False, None)

    class Request:
        def __init__(self, **environ: str) -> None:
            self.environ = environ

    handshake = Request(HTTP_SEC_WEBSOCKET_KEY="x")
    assert yes(None, handshake) and not no(None, handshake)
    assert no(None, Request()) and not yes(None, Request())
    assert yes.text() != no.text()


def test_bad_options_raise_at_configuration() -> None:
    with Configurator() as config:
        config.include("wsgiws.pyramid")
        with pytest.raises(ValueError):
            config.add_websocket_view(echo, max_message_size=0)
        with pytest.raises(TypeError):
            config.set_websocket_options(max_size=1)
        with pytest.raises(TypeError):
            config.add_websocket_view(echo, websocket=False)
