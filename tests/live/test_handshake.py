"""Handshakes the live servers must refuse (400/426 with a plain-text reason, never 500),
and the ordinary HTTP traffic that must reach the wrapped app untouched."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import timeout

from ._clients import ws_connect
from ._wire import new_key

UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade"}
VERSION = {"Sec-WebSocket-Version": "13"}

REJECTIONS = {
    "missing-key": ("GET", {**UPGRADE, **VERSION}, 400, "Sec-WebSocket-Key"),
    "key-not-base64": (
        "GET",
        {**UPGRADE, **VERSION, "Sec-WebSocket-Key": "not base64 at all!!!"},
        400,
        "base64",
    ),
    "key-wrong-length": (
        "GET",
        {**UPGRADE, **VERSION, "Sec-WebSocket-Key": base64.b64encode(b"x" * 15).decode()},
        400,
        "16 bytes",
    ),
    "wrong-version": (
        "GET",
        {**UPGRADE, "Sec-WebSocket-Key": "KEY", "Sec-WebSocket-Version": "8"},
        426,
        "Sec-WebSocket-Version",
    ),
    "missing-version": ("GET", {**UPGRADE, "Sec-WebSocket-Key": "KEY"}, 426, "version"),
    "post": ("POST", {**UPGRADE, **VERSION, "Sec-WebSocket-Key": "KEY"}, 400, "GET"),
    "missing-upgrade": (
        "GET",
        {"Connection": "Upgrade", **VERSION, "Sec-WebSocket-Key": "KEY"},
        400,
        "Upgrade",
    ),
    "missing-connection-upgrade": (
        "GET",
        {"Upgrade": "websocket", **VERSION, "Sec-WebSocket-Key": "KEY"},
        400,
        "Connection",
    ),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_handshake_rejected(server, case):
    method, headers, status, named = REJECTIONS[case]
    headers = {k: (new_key() if v == "KEY" else v) for k, v in headers.items()}
    resp = server.request(method, "/echo", headers, body=b"" if method == "POST" else None)
    assert resp.status == status, (resp.status, resp.text)
    assert resp.headers["content-type"].startswith("text/plain"), resp.headers
    body = resp.text.strip()
    assert named.lower() in body.lower(), body
    assert "\n" not in body, body
    if status == 426:
        assert resp.headers.get("sec-websocket-version") == "13", resp.headers
    assert "upgrade" not in resp.headers, resp.headers


def test_plain_get_on_websocket_path_reaches_app(server):
    resp = server.get("/echo")
    assert (resp.status, resp.text) == (200, "plain app: GET /echo\n")


def test_app_routes_answer(server):
    assert (server.get("/health").status, server.get("/health").text) == (200, "ok\n")
    resp = server.get("/hello")
    assert (resp.status, resp.text) == (200, "hello from the app\n")
    resp = server.request("POST", "/somewhere", body=b"data")
    assert (resp.status, resp.text) == (200, "plain app: POST /somewhere\n")


def test_websocket_then_plain_http_on_same_server(server):
    """The server keeps serving plain HTTP between WebSocket connections."""
    with ws_connect(server, "/echo") as ws:
        ws.send("x")
        assert ws.recv(timeout=timeout(10)) == "x"
        assert server.get("/hello").status == 200
    assert server.get("/hello").status == 200
