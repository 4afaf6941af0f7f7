"""wsgiws.flask in process: Flask's rules, blueprints, contexts and error handlers around serve."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

pytest.importorskip("flask", reason="Flask is in the test extra: pip install -e '.[test]'")

from flask import Blueprint, Flask, current_app, g, request, session, url_for

from tests.core._peer import mask_frame
from wsgiws import WebSocket
from wsgiws.flask import WebSockets

from ._wsgi import Upgrade
from ._wsgi import request as http


def make_app(**defaults: Any) -> tuple[Flask, WebSockets]:
    app = Flask(__name__)
    app.secret_key = "test secret"
    websockets = WebSockets(app, **defaults)

    @app.before_request
    def remember() -> None:
        g.seen = "before_request ran"

    @app.after_request
    def tag(response: Any) -> Any:
        response.headers["X-After"] = "yes"
        return response

    @app.get("/login")
    def login() -> str:
        session["user"] = request.args["user"]
        return "signed in"

    @app.get("/page")
    def page() -> str:
        return "a page"

    @websockets.route("/rooms/<int:n>")
    def room(ws: WebSocket, n: int) -> None:
        ws.send(
            json.dumps(
                {
                    "n": n,
                    "type": type(n).__name__,
                    "q": request.args.get("q"),
                    "header": request.headers.get("X-Test"),
                    "cookie": request.cookies.get("flavour"),
                    "user": session.get("user"),
                    "g": g.get("seen"),
                    "app": current_app.name,
                    "endpoint": request.endpoint,
                    "same_request": ws.request.environ is request.environ,
                }
            )
        )
        for message in ws:
            ws.send(message)

    @websockets.route("/small", max_message_size=8)
    def small(ws: WebSocket) -> None:
        for message in ws:
            ws.send(message)

    return app, websockets


def receive_json(up: Upgrade) -> Any:
    message = up.peer.receive()
    assert isinstance(message, str)
    return json.loads(message)


def test_route_with_converter_sees_flask_request_and_contexts() -> None:
    app, _ = make_app()
    headers = {"X-Test": "hdr", "Cookie": "flavour=ginger"}
    up = Upgrade(app, "/rooms/42?q=h%C3%A9llo", headers)
    fields = up.read_101()
    assert fields["upgrade"] == "websocket"
    assert receive_json(up) == {
        "n": 42,
        "type": "int",
        "q": "héllo",
        "header": "hdr",
        "cookie": "ginger",
        "user": None,
        "g": "before_request ran",
        "app": app.name,
        "endpoint": "room",
        "same_request": True,
    }
    up.peer.send("echo")
    assert up.peer.receive() == "echo"
    up.finish()
    # Flask handled the outcome as a response: after_request saw the 101.
    assert up.status == "101 Switching Protocols"
    assert ("X-After", "yes") in up.headers
    assert up.body == b""


def test_session_set_by_an_http_view_is_read_in_the_handler() -> None:
    app, _ = make_app()
    client = app.test_client()
    assert client.get("/login?user=alice").status_code == 200
    cookie = client.get_cookie("session")
    assert cookie is not None
    up = Upgrade(app, "/rooms/1", {"Cookie": f"session={cookie.value}"})
    up.read_101()
    assert receive_json(up)["user"] == "alice"
    up.finish()


def test_blueprint_route_gets_prefix_and_blueprint_name() -> None:
    app, websockets = make_app()
    bp = Blueprint("rooms", __name__, url_prefix="/bp")

    @websockets.route("/<int:n>", blueprint=bp)
    def numbered(ws: WebSocket, n: int) -> None:
        ws.send(f"{request.blueprint} {request.endpoint} {n + 1}")

    app.register_blueprint(bp)
    up = Upgrade(app, "/bp/41")
    up.read_101()
    assert up.peer.receive() == "rooms rooms.numbered 42"
    assert up.peer.expect_close().code == 1000
    up.join()
    with app.test_request_context():
        # Werkzeug builds WebSocket rules as full ws:// URLs (browsers need them).
        assert url_for("rooms.numbered", n=3) == "ws://localhost/bp/3"
        assert url_for("room", n=3) == "ws://localhost/rooms/3"


def test_init_app_registers_earlier_routes_on_each_app() -> None:
    websockets = WebSockets(max_message_size=4)

    @websockets.route("/late", endpoint="late_ws")
    def late(ws: WebSocket) -> None:
        ws.send(current_app.name)
        for message in ws:
            ws.send(message)

    for name in ("first", "second"):
        app = Flask(name)
        websockets.init_app(app)
        assert app.extensions["wsgiws"] is websockets
        assert "late_ws" in app.view_functions
        up = Upgrade(app, "/late")
        up.read_101()
        assert up.peer.receive() == name
        up.peer.send("12345")  # over the extension's default limit
        assert up.peer.expect_close().code == 1009
        up.join()


def test_per_route_option_overrides_the_extension_default() -> None:
    app, _ = make_app(max_message_size=1000)
    up = Upgrade(app, "/small")
    up.read_101()
    up.peer.send("12345678")
    assert up.peer.receive() == "12345678"
    up.peer.send("123456789")
    close = up.peer.expect_close()
    assert close.code == 1009
    up.join()


def test_first_frame_in_the_servers_buffer_is_not_lost() -> None:
    app, _ = make_app()
    up = Upgrade(app, "/small", early=mask_frame(0x1, b"early"))
    up.read_101()
    assert up.peer.receive() == "early"
    up.finish()


def test_plain_get_gets_426_through_after_request() -> None:
    app, _ = make_app()
    resp = http(app, "/rooms/3")
    assert resp.status_code == 426
    assert resp.headers["X-After"] == "yes"
    assert b"/rooms/3 is a WebSocket endpoint" in resp.data
    # The werkzeug test client is no server wsgiws supports: no hop-by-hop headers.
    assert "Upgrade" not in resp.headers


def test_plain_get_on_a_supported_server_names_the_protocol() -> None:
    app, _ = make_app()
    a, b = socket.socketpair()
    with a, b:
        resp = http(app, "/rooms/3", environ_overrides={"werkzeug.socket": a})
    assert resp.status_code == 426
    assert resp.headers["Upgrade"] == "websocket"
    assert resp.headers["Connection"] == "Upgrade"


def test_rejections_reach_flask_error_handlers() -> None:
    app, websockets = make_app()

    @websockets.route("/strict", origins=["https://example.com"])
    def strict(ws: WebSocket) -> None:
        raise AssertionError("not reached")

    @app.errorhandler(403)
    def forbidden(exc: Any) -> Any:
        return f"custom 403: {exc.get_response().get_data(as_text=True).strip()}", 403

    status, headers, body = Upgrade(app, "/strict", {"Origin": "https://evil.test"}).rejected()
    assert status.startswith("403")
    assert body.startswith(b"custom 403: Origin 'https://evil.test' is not allowed")
    assert headers["x-after"] == "yes"
    # Without a handler the answer is serve()'s own, headers included.
    status, headers, body = Upgrade(app, "/rooms/1", {"Sec-WebSocket-Version": "8"}).rejected()
    assert status == "426 Upgrade Required"
    assert headers["sec-websocket-version"] == "13"
    assert headers["x-after"] == "yes"
    assert b"unsupported Sec-WebSocket-Version '8'" in body


def test_broken_handshake_on_the_plain_rule_gets_the_precise_400() -> None:
    # No "Connection: Upgrade": Werkzeug does not see a WebSocket request and
    # routes it to the plain rule, whose view still validates it.
    app, _ = make_app()
    status, _, body = Upgrade(app, "/rooms/1", {"Connection": "keep-alive"}).rejected()
    assert status.startswith("400 ")
    assert b"Connection header must contain the 'upgrade' token" in body


def test_unknown_path_and_http_routes_are_flasks() -> None:
    app, _ = make_app()
    status, _, body = Upgrade(app, "/nowhere").rejected()
    assert status.startswith("404 ")
    assert b"Not Found" in body
    assert http(app, "/page").data == b"a page"


def test_handler_exception_closes_1011_and_flask_answers_101() -> None:
    app, websockets = make_app()

    @websockets.route("/boom")
    def boom(ws: WebSocket) -> None:
        raise RuntimeError("boom")

    up = Upgrade(app, "/boom")
    up.read_101()
    assert up.peer.expect_close().code == 1011
    up.join()
    assert up.status == "101 Switching Protocols"


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"max_message_size": 0}, ValueError),
        ({"compression": "yes"}, TypeError),
        ({"methods": ["POST"]}, TypeError),
        ({"websocket": False}, TypeError),
    ],
)
def test_bad_route_arguments_raise_at_declaration(kwargs: dict[str, Any], error: type) -> None:
    websockets = WebSockets()
    with pytest.raises(error):
        websockets.route("/x", **kwargs)


def test_bad_extension_option_raises() -> None:
    with pytest.raises(ValueError):
        WebSockets(ping_interval=-1)
