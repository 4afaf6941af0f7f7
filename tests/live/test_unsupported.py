"""Servers that give no access to the socket: a clear 501 and a log line, never a crash."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidMessage, InvalidStatus

from ._clients import ws_connect
from ._wire import RawClient, new_key

#: The adapters' names, as the 501 body and the log line list them.
SUPPORTED_NAMES = ("gunicorn", "werkzeug", "eventlet.wsgi", "gevent.pywsgi")
#: How each server names itself (SERVER_SOFTWARE), which our log line quotes.
SERVER_NAMES = {"waitress": "waitress", "wsgiref": "WSGIServer/"}


def _check_501(status: int, body: str) -> None:
    assert status == 501, (status, body)
    line = body.strip()
    assert "\n" not in line, body
    for name in SUPPORTED_NAMES:
        assert name in line, line


def _expect_log(server) -> None:
    server.allow_errors(r"^ERROR:wsgiws:cannot serve a WebSocket on ", r'/echo HTTP/1\.1" 501 ')


def _check_log(server) -> None:
    server.settle()
    lines = [
        line
        for line in server.log().splitlines()
        if line.startswith("ERROR:wsgiws:cannot serve a WebSocket on ")
    ]
    assert len(lines) == 1, server.log()
    assert SERVER_NAMES[server.id] in lines[0], lines[0]
    assert all(name in lines[0] for name in SUPPORTED_NAMES), lines[0]


def test_handshake_gets_501_http(unsupported_server):
    server = unsupported_server
    _expect_log(server)
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": new_key(),
        "Sec-WebSocket-Version": "13",
    }
    resp = server.request("GET", "/echo", headers)
    assert resp.headers["content-type"].startswith("text/plain"), resp.headers
    _check_501(resp.status, resp.text)
    _check_log(server)


def test_handshake_gets_501_websockets(unsupported_server):
    server = unsupported_server
    _expect_log(server)
    with pytest.raises((InvalidStatus, InvalidMessage)) as info:
        ws_connect(server, "/echo")
    if isinstance(info.value, InvalidStatus):
        response = info.value.response
        _check_501(response.status_code, bytes(response.body).decode())
    else:
        # wsgiref answers with HTTP/1.0, which the client refuses to parse.
        assert server.id == "wsgiref", info.value
        assert "HTTP/1.0 501 Not Implemented" in str(info.value.__cause__), info.value.__cause__
    _check_log(server)


def test_handshake_gets_501_raw(unsupported_server):
    server = unsupported_server
    _expect_log(server)
    with pytest.raises(AssertionError, match="handshake answered 501") as info:
        RawClient.connect(server.address, "/echo")
    body = str(info.value).partition("; body b")[2]
    assert "supported servers" in body, info.value
    _check_log(server)


def test_plain_http_still_served(unsupported_server):
    server = unsupported_server
    _expect_log(server)
    resp = server.get("/hello")
    assert (resp.status, resp.text) == (200, "hello from the app\n")
    resp = server.get("/echo")
    assert (resp.status, resp.text) == (200, "plain app: GET /echo\n")
