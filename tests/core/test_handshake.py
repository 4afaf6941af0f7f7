"""The sans-I/O handshake: every acceptance and every rejection, no sockets."""

from __future__ import annotations

from typing import Any

import pytest
import webob

from wsgiws import HandshakeError
from wsgiws._handshake import accept, accept_key, is_handshake, tokens

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example


def request(**overrides: Any) -> webob.Request:
    environ = {
        "REQUEST_METHOD": "GET",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/ws",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "example.com",
        "HTTP_UPGRADE": "websocket",
        "HTTP_CONNECTION": "Upgrade",
        "HTTP_SEC_WEBSOCKET_KEY": KEY,
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
        "wsgi.url_scheme": "http",
    }
    for name, value in overrides.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return webob.Request(environ)


def test_accept_key_matches_rfc_example() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_valid_handshake_gets_the_101_response() -> None:
    result = accept(request())
    assert result.subprotocol is None
    assert result.response_bytes() == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )


@pytest.mark.parametrize(
    "connection", ["Upgrade", "upgrade", "keep-alive, Upgrade", "Upgrade,keep-alive", "UPGRADE"]
)
def test_connection_header_is_a_case_insensitive_token_list(connection: str) -> None:
    # Firefox sends "keep-alive, Upgrade".
    accept(request(HTTP_CONNECTION=connection))


@pytest.mark.parametrize("upgrade", ["websocket", "WebSocket", "h2c, websocket"])
def test_upgrade_header_is_a_case_insensitive_token_list(upgrade: str) -> None:
    accept(request(HTTP_UPGRADE=upgrade))


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"REQUEST_METHOD": "POST"}, "must use GET, not POST"),
        ({"SERVER_PROTOCOL": "HTTP/1.0"}, "needs HTTP/1.1, not HTTP/1.0"),
        ({"HTTP_HOST": None}, "missing Host header"),
        ({"CONTENT_LENGTH": "5"}, "must not have a body"),
        ({"HTTP_TRANSFER_ENCODING": "chunked"}, "must not have a body"),
        ({"HTTP_UPGRADE": None}, "missing 'Upgrade: websocket' header"),
        ({"HTTP_UPGRADE": "h2c"}, "missing 'Upgrade: websocket' header"),
        ({"HTTP_CONNECTION": None}, "Connection header must contain the 'upgrade' token"),
        ({"HTTP_CONNECTION": "keep-alive"}, "Connection header must contain the 'upgrade'"),
        ({"HTTP_SEC_WEBSOCKET_KEY": None}, "missing Sec-WebSocket-Key header"),
        ({"HTTP_SEC_WEBSOCKET_KEY": "not base64!"}, "Sec-WebSocket-Key is not valid base64"),
        ({"HTTP_SEC_WEBSOCKET_KEY": "c2hvcnQ="}, "must decode to 16 bytes, not 5"),
        ({"HTTP_SEC_WEBSOCKET_KEY": f"{KEY},{KEY}"}, "Sec-WebSocket-Key is not valid base64"),
    ],
)
def test_defects_get_400_naming_the_defect(overrides: dict[str, Any], detail: str) -> None:
    with pytest.raises(HandshakeError) as info:
        accept(request(**overrides))
    assert info.value.status == "400 Bad Request"
    assert detail in info.value.detail
    assert info.value.headers == ()


@pytest.mark.parametrize(
    ("version", "detail"),
    [("8", "unsupported Sec-WebSocket-Version '8'"), (None, "missing Sec-WebSocket-Version")],
)
def test_wrong_version_gets_426_naming_version_13(version: str | None, detail: str) -> None:
    with pytest.raises(HandshakeError) as info:
        accept(request(HTTP_SEC_WEBSOCKET_VERSION=version))
    assert info.value.status == "426 Upgrade Required"
    assert info.value.headers == (("Sec-WebSocket-Version", "13"),)
    assert detail in info.value.detail


def test_first_defect_in_rfc_order_is_named() -> None:
    with pytest.raises(HandshakeError, match="GET"):
        accept(request(REQUEST_METHOD="POST", HTTP_SEC_WEBSOCKET_KEY=None))


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (None, None),
        ("superchat, chat", "chat"),
        ("superchat", "superchat"),
        ("other", None),
        # Names are compared exactly: a browser fails a 101 that echoes a
        # spelling it did not send (RFC 6455 §4.1, the client's item 6).
        ("CHAT", None),
        ("chat,superchat", "chat"),
        (" superchat ,  chat ", "chat"),
    ],
)
def test_subprotocol_is_the_servers_first_choice_the_client_offers(
    offered: str | None, chosen: str | None
) -> None:
    result = accept(request(HTTP_SEC_WEBSOCKET_PROTOCOL=offered), ["chat", "superchat"])
    assert result.subprotocol == chosen
    names = [name for name, _ in result.headers]
    assert names.count("Sec-WebSocket-Protocol") == (0 if chosen is None else 1)
    if chosen:
        assert ("Sec-WebSocket-Protocol", chosen) in result.headers


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, False),
        ({"HTTP_UPGRADE": "h2c"}, False),
        ({"HTTP_CONNECTION": "Upgrade"}, False),
        ({"HTTP_UPGRADE": "WebSocket"}, True),
        ({"HTTP_SEC_WEBSOCKET_KEY": KEY}, True),
        ({"HTTP_SEC_WEBSOCKET_VERSION": "13"}, True),
    ],
)
def test_is_handshake_looks_for_websocket_headers_only(
    headers: dict[str, str], expected: bool
) -> None:
    assert is_handshake(headers) is expected


def test_tokens() -> None:
    assert tokens(None) == []
    assert tokens(" keep-alive ,, Upgrade ") == ["keep-alive", "upgrade"]


def test_http_version_check_can_be_skipped_for_servers_that_misreport_it() -> None:
    # eventlet.wsgi reports HTTP/1.0 for every request.
    accept(request(SERVER_PROTOCOL="HTTP/1.0"), check_http_version=False)
