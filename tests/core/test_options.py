"""The middleware's protocol options, in memory: subprotocols, origins, the accept hook, per-path
options and their validation. Keepalive is in test_keepalive.py, compression in test_deflate.py."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Sequence
from typing import Any

import pytest
import webob
from wsproto.events import CloseConnection

from tests.core.test_middleware import HANDSHAKE, Response, Upgrade, echo, inner_app
from wsgiws import Accept, Endpoint, Reject, WebSocket, WebSocketMiddleware
from wsgiws._handshake import origin_allowed


def call(mw: Any, **environ: Any) -> Response:
    """One request to the middleware, on a server it supports (a Werkzeug-like environ over a
    socket pair), answered without an upgrade."""
    server, client = socket.socketpair()
    with server, client, server.makefile("rb") as reader:
        env = {**HANDSHAKE, "werkzeug.socket": server, "wsgi.input": reader, **environ}
        return Response().call(mw, {k: v for k, v in env.items() if v is not None})


def body(response: Response) -> str:
    return b"".join(response.body).decode()


def upgrade_headers(mw: Any, **environ: Any) -> dict[str, str]:
    """Run a whole upgrade; the 101's headers (lower-case names)."""
    up = Upgrade(mw, **environ)
    head = up.read_101().decode("latin-1")
    assert head.startswith("HTTP/1.1 101 ")
    up.peer.close()
    up.peer.expect_close()
    up.join()
    lines = head.split("\r\n")[1:]
    pairs = [line.split(": ", 1) for line in lines if line]
    return {name.lower(): value for name, value in pairs}


# -- subprotocols -------------------------------------------------------------------


def test_a_subprotocol_callable_chooses_from_the_offer_in_the_clients_order() -> None:
    seen: list[Sequence[str]] = []

    def choose(offered: Sequence[str]) -> str | None:
        seen.append(offered)
        return offered[-1]

    mw = WebSocketMiddleware(inner_app, echo, subprotocols=choose)
    headers = upgrade_headers(mw, HTTP_SEC_WEBSOCKET_PROTOCOL="v1.chat, v2.chat")
    assert headers["sec-websocket-protocol"] == "v2.chat"
    assert seen == [("v1.chat", "v2.chat")]


def test_a_subprotocol_callable_is_not_called_without_an_offer_and_may_choose_none() -> None:
    def choose(offered: Sequence[str]) -> str | None:
        assert offered, "called with an empty offer"
        return None

    mw = WebSocketMiddleware(inner_app, echo, subprotocols=choose)
    assert "sec-websocket-protocol" not in upgrade_headers(mw)
    headers = upgrade_headers(mw, HTTP_SEC_WEBSOCKET_PROTOCOL="x")
    assert "sec-websocket-protocol" not in headers


def test_a_subprotocol_callable_choosing_a_name_not_offered_is_a_500_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mw = WebSocketMiddleware(inner_app, echo, subprotocols=lambda offered: "mine")
    response = call(mw, HTTP_SEC_WEBSOCKET_PROTOCOL="theirs")
    assert response.status == "500 Internal Server Error"
    [record] = [r for r in caplog.records if r.name == "wsgiws"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and "'mine'" in str(record.exc_info[1])


# -- origins ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://example.com", True),
        ("HTTPS://Example.COM", True),
        ("https://example.com:8443", False),
        ("https://app.example.org", True),
        ("https://a.b.example.org", True),
        ("https://example.org", False),  # "*" is at least one label
        ("https://evil.com/.example.org", False),
        ("https://example.org.evil.com", False),
        ("http://app.example.org", False),
        ("http://localhost:5000", True),
        ("http://localhost:5001", False),
        ("null", False),
        (None, False),
    ],
)
def test_origin_rules(origin: str | None, allowed: bool) -> None:
    rules = [
        "https://example.com",
        "https://*.example.org",
        re.compile(r"http://localhost:50\d0"),
    ]
    assert origin_allowed(origin, rules) is allowed


def test_none_in_the_rules_allows_requests_without_origin() -> None:
    assert origin_allowed(None, ["https://example.com", None])
    assert not origin_allowed("https://evil.example", ["https://example.com", None])


def test_a_forbidden_origin_gets_403_before_the_upgrade(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "wsgiws")
    mw = WebSocketMiddleware(inner_app, echo, origins=["https://example.com"])
    response = call(mw, HTTP_ORIGIN="https://evil.example")
    assert response.status == "403 Forbidden"
    assert "Origin 'https://evil.example' is not allowed" in body(response)
    assert "https://evil.example" in caplog.text
    response = call(mw)
    assert response.status == "403 Forbidden"
    assert "no Origin header" in body(response)


def test_an_allowed_origin_is_upgraded() -> None:
    mw = WebSocketMiddleware(inner_app, echo, origins=["https://example.com"])
    assert upgrade_headers(mw, HTTP_ORIGIN="https://example.com")


def test_a_defective_handshake_is_400_whatever_its_origin() -> None:
    mw = WebSocketMiddleware(inner_app, echo, origins=["https://example.com"])
    response = call(mw, HTTP_ORIGIN="https://evil.example", HTTP_SEC_WEBSOCKET_KEY="?")
    assert response.status == "400 Bad Request"


# -- the accept hook ----------------------------------------------------------------------


def test_the_accept_hook_rejects_with_its_status_body_and_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "wsgiws")
    seen: list[webob.Request] = []

    def hook(request: webob.Request) -> None:
        seen.append(request)
        raise Reject(401, "log in first", {"WWW-Authenticate": 'Bearer realm="chat"'})

    mw = WebSocketMiddleware(inner_app, echo, accept=hook)
    response = call(mw)
    assert response.status == "401 Unauthorized"
    assert body(response) == "log in first\n"
    assert dict(response.headers)["WWW-Authenticate"] == 'Bearer realm="chat"'
    assert seen[0].path_info == "/ws"
    assert "rejected by the accept hook: 401 Unauthorized: log in first" in caplog.text


def test_reject_defaults_and_validation() -> None:
    assert Reject().status == "403 Forbidden" and Reject().detail == "Forbidden"
    assert Reject("429 Slow Down", "try later").status == "429 Slow Down"
    assert Reject(599).status == "599 Rejected"
    for status in (101, 200, 302, "abc", "20 x"):
        with pytest.raises(ValueError, match="4xx or 5xx"):
            Reject(status)


def test_the_accept_hook_chooses_the_subprotocol_and_adds_headers() -> None:
    def hook(request: webob.Request) -> Accept:
        request.environ["myapp.user"] = "ada"
        return Accept(subprotocol="b", headers=[("Set-Cookie", "seen=1")])

    users: list[str] = []

    def handler(ws: WebSocket) -> None:
        users.append(ws.environ["myapp.user"])
        assert ws.subprotocol == "b"

    mw = WebSocketMiddleware(inner_app, handler, subprotocols=["a", "b"], accept=hook)
    headers = upgrade_headers(mw, HTTP_SEC_WEBSOCKET_PROTOCOL="a, b")
    assert headers["sec-websocket-protocol"] == "b"
    assert headers["set-cookie"] == "seen=1"
    assert users == ["ada"]


def test_the_accept_hook_returning_none_keeps_the_choice() -> None:
    mw = WebSocketMiddleware(inner_app, echo, subprotocols=["a"], accept=lambda request: None)
    assert upgrade_headers(mw, HTTP_SEC_WEBSOCKET_PROTOCOL="a")["sec-websocket-protocol"] == "a"


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        (Accept(subprotocol="zzz"), "'zzz' was not offered"),
        (Accept(headers={"Sec-WebSocket-Accept": "x"}), "set by wsgiws"),
        (Accept(headers={"X-Bad": "a\r\nb"}), "invalid response header"),
        ("yes", "returns None or wsgiws.Accept"),
    ],
)
def test_a_broken_accept_hook_is_a_500_with_a_log_line(
    decision: Any, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    mw = WebSocketMiddleware(inner_app, echo, accept=lambda request: decision)
    response = call(mw, HTTP_SEC_WEBSOCKET_PROTOCOL="a")
    assert response.status == "500 Internal Server Error"
    [record] = [r for r in caplog.records if r.name == "wsgiws"]
    assert record.levelno == logging.ERROR and "accept hook" in record.getMessage()
    assert record.exc_info is not None and message in str(record.exc_info[1])


def test_the_accept_hook_runs_only_for_valid_handshakes() -> None:
    calls: list[object] = []
    mw = WebSocketMiddleware(inner_app, echo, accept=calls.append)  # type: ignore[arg-type]
    assert call(mw, HTTP_SEC_WEBSOCKET_VERSION="8").status == "426 Upgrade Required"
    assert calls == []


# -- options per path ---------------------------------------------------------------------


def test_an_endpoint_overrides_options_for_its_path_and_inherits_the_rest() -> None:
    mw = WebSocketMiddleware(
        inner_app,
        {
            "/open": echo,
            "/strict": Endpoint(echo, origins=["https://example.com"]),
        },
        subprotocols=["chat"],
        close_timeout=1.5,
    )
    assert call(mw, PATH_INFO="/strict", HTTP_ORIGIN="https://x.example").status.startswith("403")
    headers = upgrade_headers(
        mw,
        PATH_INFO="/strict",
        HTTP_ORIGIN="https://example.com",
        HTTP_SEC_WEBSOCKET_PROTOCOL="chat",
    )
    assert headers["sec-websocket-protocol"] == "chat"  # inherited
    assert upgrade_headers(mw, PATH_INFO="/open", HTTP_ORIGIN="https://x.example")
    assert set(mw.handlers) == {"/open", "/strict"}


def test_endpoint_limits_reach_the_connection() -> None:
    def small(ws: WebSocket) -> None:
        ws.receive()

    mw = WebSocketMiddleware(
        inner_app, {"/ws": Endpoint(small, max_message_size=4)}, max_message_size=None
    )
    up = Upgrade(mw)
    up.read_101()
    up.peer.send("12345")
    assert up.peer.expect_close() == CloseConnection(
        code=1009, reason="message larger than 4 bytes"
    )
    up.join()


def test_send_timeout_reaches_the_connection_and_none_turns_it_off() -> None:
    seen: list[float | None] = []

    def record(ws: WebSocket) -> None:
        seen.append(ws._deadlines.send_timeout)

    mw = WebSocketMiddleware(
        inner_app,
        {"/ws": record, "/slow": Endpoint(record, send_timeout=None)},
        send_timeout=3.5,
    )
    for path in ("/ws", "/slow"):
        up = Upgrade(mw, PATH_INFO=path)
        up.read_101()
        up.peer.expect_close()
        up.join()
    assert seen == [3.5, None]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"subprotocols": "chat"}, TypeError, "list of names or a callable"),
        ({"compression": "yes"}, TypeError, "wsgiws.Deflate"),
        ({"max_message_size": 0}, ValueError, "max_message_size"),
        ({"ping_interval": 0}, ValueError, "ping_interval"),
        ({"ping_timeout": -1}, ValueError, "ping_timeout"),
        ({"close_timeout": -1}, ValueError, "close_timeout"),
        ({"send_timeout": 0}, ValueError, "send_timeout"),
        ({"origins": "https://example.com"}, TypeError, "list of allowed origins"),
        ({"origins": [42]}, TypeError, "str, a re.Pattern or None"),
        ({"accept": 42}, TypeError, "accept must be a callable"),
    ],
)
def test_bad_options_fail_at_construction(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        WebSocketMiddleware(inner_app, echo, **options)
    with pytest.raises(error, match=message):
        Endpoint(echo, **options)


def test_compression_can_be_turned_off_with_false_or_none() -> None:
    offer = "permessage-deflate; client_max_window_bits"
    for off in (False, None):
        mw = WebSocketMiddleware(inner_app, echo, compression=off)
        assert "sec-websocket-extensions" not in upgrade_headers(
            mw, HTTP_SEC_WEBSOCKET_EXTENSIONS=offer
        )
