"""The native integrations (wsgiws.flask, wsgiws.bottle, wsgiws.pyramid) on every supported server.

Each framework app (``tests/live/frameworks/*_native.py``) declares its
WebSocket routes with the framework's own router: the handler gets the
framework's converted parameters and sees its request, session and helpers
while it runs. The ``native_server`` fixture runs each app on each server id
of ``SUPPORTED``; the pool starts each pair once per session, and the
``LiveTest`` checks (no traceback or error line in the server's log, the same
worker processes) apply after every test.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.conftest import timeout

from . import _scenarios
from ._clients import ws_connect
from ._harness import SUPPORTED, ServerPool
from ._wire import RawClient, handshake_request, new_key
from .conftest import LiveTest, _live

#: The native apps, by framework.
NATIVE = {
    "flask": "tests.live.frameworks.flask_native:app",
    "bottle": "tests.live.frameworks.bottle_native:app",
    "pyramid": "tests.live.frameworks.pyramid_native:app",
}
#: A line of each framework's own 404 page.
NOT_FOUND = {
    "flask": "<h1>Not Found</h1>",
    "bottle": "<title>Error: 404 Not Found</title>",
    "pyramid": "The resource could not be found.",
}
#: What the handler at /rooms/<n> reports beyond the request: framework helpers.
EXTRA = {
    "flask": {"g": "set by before_request", "app": "tests.live.frameworks.flask_native"},
    "bottle": {"rule": "/rooms/<n:int>"},
    "pyramid": {"route": "room", "userid": "carol"},
}
#: What the prefixed route's handler reports as its place: endpoint, rule, route name.
PREFIXED = {"flask": "sub.numbered", "bottle": "/sub/<n:int>", "pyramid": "numbered"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name, frameworks in (("native_server", list(NATIVE)), ("pyramid_server", ["pyramid"])):
        if name in metafunc.fixturenames:
            pairs = [(fw, sid) for fw in frameworks for sid in SUPPORTED]
            ids = [f"{fw}-{sid}" for fw, sid in pairs]
            metafunc.parametrize(name, pairs, ids=ids, indirect=True)


@pytest.fixture
def native_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Iterator[LiveTest]:
    framework, server_id = request.param
    yield from _live(server_pool, server_id, NATIVE[framework], framework)


@pytest.fixture
def pyramid_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Iterator[LiveTest]:
    framework, server_id = request.param
    yield from _live(server_pool, server_id, NATIVE[framework], framework)


def raw_handshake(
    server: LiveTest, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """A handshake over a raw socket that is expected to be refused: status, headers, body."""
    with socket.create_connection(server.address, timeout=timeout(10)) as sock:
        client = RawClient(sock)
        host = f"{server.host}:{server.port}"
        sock.sendall(handshake_request(host, path, new_key(), headers))
        client.read_response_head()
        assert client.status != 101, f"{path} upgraded: {client.headers}"
        client.read_body()
        return client.status, client.headers, bytes(client.buf).decode("utf-8", "replace")


def sign_in(server: LiveTest, user: str) -> str:
    """Sign in over HTTP; the ``Cookie`` header value that carries the session."""
    resp = server.get(f"/login?user={user}")
    assert resp.status == 200, (resp.status, resp.text)
    return resp.headers["set-cookie"].split(";")[0]


def test_converter_request_and_session_in_the_handler(native_server: LiveTest) -> None:
    server = native_server
    session = sign_in(server, "alice")
    headers = {"X-Test": "a header", "Cookie": f"{session}; flavour=ginger"}
    if server.framework == "pyramid":
        headers["Cookie"] += "; user=carol"  # the security policy's identity
    with ws_connect(server, "/rooms/42?q=h%C3%A9llo+world", additional_headers=headers) as ws:
        seen = json.loads(ws.recv(timeout=timeout(10)))
        ws.send("and then an echo")
        assert ws.recv(timeout=timeout(10)) == "and then an echo"
    assert seen == {
        "framework": server.framework,
        "n": 42,
        "type": "int",
        "q": "héllo world",
        "header": "a header",
        "cookie": "ginger",
        "user": "alice",
        "extra": EXTRA[server.framework],
    }


def test_converter_refuses_what_it_does_not_match(native_server: LiveTest) -> None:
    status, _, body = raw_handshake(native_server, "/rooms/forty-two")
    assert status == 404
    assert NOT_FOUND[native_server.framework] in body, body


def test_route_under_a_prefix(native_server: LiveTest) -> None:
    with ws_connect(native_server, "/sub/41") as ws:
        seen = json.loads(ws.recv(timeout=timeout(10)))
    assert seen == {"n": 42, "where": PREFIXED[native_server.framework]}


def test_per_route_max_message_size_closes_1009(native_server: LiveTest) -> None:
    client = RawClient.connect(native_server.address, "/small")
    try:
        client.send("12345678")
        assert client.recv_message() == "12345678"
        client.send("123456789")
        closing = client.recv_message()
        assert not isinstance(closing, (str, bytes)), closing
        assert closing.close_code == 1009
        assert client.read_until_eof() == b""
    finally:
        client.close()


def test_plain_get_on_a_websocket_route_is_426(native_server: LiveTest) -> None:
    server = native_server
    resp = server.get("/rooms/3")
    assert resp.status == 426, (resp.status, resp.headers, resp.text)
    assert resp.headers.get("upgrade", "").lower() == "websocket", resp.headers
    assert resp.text == "/rooms/3 is a WebSocket endpoint: connect with a WebSocket client\n"
    # The framework's response hooks saw it.
    assert resp.headers.get("x-framework") == server.framework, resp.headers


def test_unknown_path_upgrade_is_the_frameworks_404(native_server: LiveTest) -> None:
    status, headers, body = raw_handshake(native_server, "/no/such/socket")
    assert status == 404
    assert NOT_FOUND[native_server.framework] in body, body
    assert headers.get("x-framework") == native_server.framework, headers


def test_defective_handshake_gets_the_precise_answer(native_server: LiveTest) -> None:
    status, headers, body = raw_handshake(native_server, "/echo", {"Sec-WebSocket-Version": "8"})
    assert status == 426
    assert headers.get("sec-websocket-version") == "13", headers
    assert "unsupported Sec-WebSocket-Version '8'" in body, body


def test_http_routes_beside_an_open_websocket(native_server: LiveTest) -> None:
    server = native_server
    page = f"a {server.framework} page\n"
    with ws_connect(server, "/echo") as ws:
        ws.send("open")
        assert ws.recv(timeout=timeout(10)) == "open"
        resp = server.get("/page")
        assert (resp.status, resp.text) == (200, page)
        ws.send("still open")
        assert ws.recv(timeout=timeout(10)) == "still open"
    server.settle()
    resp = server.get("/page")
    assert (resp.status, resp.text, resp.headers.get("x-framework")) == (
        200,
        page,
        server.framework,
    )


def test_pipelined_first_frames_are_not_lost(native_server: LiveTest) -> None:
    """The handshake and two frames in one sendall: both echoed, then a clean close."""
    _scenarios.pipelined_first_frame(native_server, "/echo")


def test_pyramid_permission_denied_is_403(pyramid_server: LiveTest) -> None:
    status, headers, body = raw_handshake(pyramid_server, "/private", {"Cookie": "user=bob"})
    assert status == 403
    assert "Access was denied to this resource" in body, body
    assert headers.get("x-framework") == "pyramid", headers


def test_pyramid_permission_allowed_upgrades(pyramid_server: LiveTest) -> None:
    with ws_connect(pyramid_server, "/private", additional_headers={"Cookie": "user=alice"}) as ws:
        ws.send("allowed")
        assert ws.recv(timeout=timeout(10)) == "allowed"
