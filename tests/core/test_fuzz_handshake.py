"""Property-based tests of the opening handshake: generated and mutated environs.

Valid handshakes and handshakes with some fields mutated or removed (method,
HTTP version, Host, Upgrade, Connection, Sec-WebSocket-Key/-Version, a body,
subprotocol lists, random latin-1 header values) go to the sans-I/O
:func:`wsgiws._handshake.accept` and through the whole middleware in memory.
The verdict comes from :func:`tests._strategies.handshake_verdict`, written
from RFC 6455 §4.2.1 and §4.4.
"""

from __future__ import annotations

import socket
from collections.abc import MutableMapping
from typing import Any

import webob
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._strategies import (
    SUBPROTOCOLS,
    FrameSpec,
    accept_value,
    chosen_subprotocol,
    handshake_environs,
    handshake_verdict,
    is_handshake_oracle,
    parse_server_frames,
)
from tests.conftest import timeout
from wsgiws import HandshakeError, WebSocket, WebSocketMiddleware
from wsgiws._handshake import accept, is_handshake

_servers = st.lists(st.sampled_from(SUBPROTOCOLS), unique=True, max_size=3)


@settings(max_examples=300)
@given(environ=handshake_environs(), ours=_servers, check_version=st.booleans())
def test_accept_answers_as_the_rfc_says(
    environ: dict[str, Any], ours: list[str], check_version: bool
) -> None:
    """accept() returns an Accept exactly for a valid handshake (with the right
    Sec-WebSocket-Accept and the server's first subprotocol the client offers), and
    otherwise raises HandshakeError: 426 naming version 13 when the version is the only
    defect, else 400 naming the first defect. Nothing else is ever raised."""
    verdict = handshake_verdict(environ, check_http_version=check_version)
    try:
        result = accept(webob.Request(dict(environ)), ours, check_http_version=check_version)
    except HandshakeError as exc:
        assert verdict.status != 101, f"rejected a valid handshake: {exc.detail}"
        assert exc.status == {400: "400 Bad Request", 426: "426 Upgrade Required"}[verdict.status]
        assert exc.headers == ((("Sec-WebSocket-Version", "13"),) if verdict.status == 426 else ())
        assert verdict.word is not None and verdict.word.lower() in exc.detail.lower(), (
            verdict.first_defect,
            exc.detail,
        )
        if not any("\n" in v or "\r" in v for v in environ.values() if isinstance(v, str)):
            # Finding 6: a CR or LF the client sent is echoed into the detail.
            assert "\n" not in exc.detail and "\r" not in exc.detail
        return
    assert verdict.status == 101, f"accepted although {verdict.first_defect} is wrong"
    headers = dict(result.headers)
    assert len(headers) == len(result.headers), "a header appears twice"
    assert headers["Upgrade"].lower() == "websocket"
    assert headers["Connection"].lower() == "upgrade"
    assert headers["Sec-WebSocket-Accept"] == accept_value(environ["HTTP_SEC_WEBSOCKET_KEY"])
    chosen = chosen_subprotocol(environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL"), ours)
    assert result.subprotocol == chosen
    assert headers.get("Sec-WebSocket-Protocol") == chosen
    head = result.response_bytes()
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n") and head.endswith(b"\r\n\r\n")
    assert head.count(b"\r\n\r\n") == 1


@settings(max_examples=300)
@given(environ=handshake_environs())
def test_is_handshake_matches_the_websocket_headers(environ: dict[str, Any]) -> None:
    """is_handshake() is true exactly when a header only a WebSocket client sends is there."""
    assert is_handshake(environ) is is_handshake_oracle(environ)


def _app(environ: MutableMapping[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"app"]


def _echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@settings(max_examples=150)
@given(environ=handshake_environs())
def test_middleware_answers_every_request_once(environ: dict[str, Any]) -> None:
    """Through the middleware (a Werkzeug-shaped environ over a socket pair whose client
    already sent a Close): a non-handshake reaches the app; a handshake gets exactly one
    status, 101 (then the echo of the Close, then EOF), or 400/426 with a one-line
    plain-text body; no exception escapes."""
    mw = WebSocketMiddleware(_app, _echo, close_timeout=timeout(2))
    server, client = socket.socketpair()
    client.settimeout(timeout(10))
    reader = server.makefile("rb")
    try:
        client.sendall(FrameSpec(0x8, b"\x03\xe8").encode())
        client.shutdown(socket.SHUT_WR)
        environ = {**environ, "werkzeug.socket": server, "wsgi.input": reader}
        calls: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            calls.append((status, headers))
            return lambda data: None

        body = b"".join(mw(environ, start_response))
        assert len(calls) == 1, calls
        status, headers = calls[0]
        code = int(status.split()[0])
        if not is_handshake_oracle(environ):
            assert (code, body) == (200, b"app")
            return
        verdict = handshake_verdict(environ)
        assert code == verdict.status, (status, verdict)
        fields = dict(headers)
        if code == 101:
            assert body == b""
            wire = b""
            while chunk := client.recv(65536):
                wire += chunk
            head, _, rest = wire.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
            key = environ["HTTP_SEC_WEBSOCKET_KEY"]
            assert f"Sec-WebSocket-Accept: {accept_value(key)}".encode() in head
            frames, partial = parse_server_frames(rest)
            assert (frames, partial) == ([(0x8, b"\x03\xe8")], b"")
            return
        assert fields["Content-Type"] == "text/plain; charset=utf-8"
        assert fields["Content-Length"] == str(len(body))
        assert body.endswith(b"\n")
        if not any("\n" in v or "\r" in v for v in environ.values() if isinstance(v, str)):
            assert body.count(b"\n") == 1  # one line (finding 6 otherwise)
        assert verdict.word is not None and verdict.word.lower() in body.decode().lower()
        assert ("Sec-WebSocket-Version" in fields) is (code == 426)
        server.setblocking(False)
        assert server.recv(100) == FrameSpec(0x8, b"\x03\xe8").encode(), "input was consumed"
        reader.close()
        server.close()  # as the server would after writing the response
        assert client.recv(1) == b"", "the middleware wrote to the socket itself"
    finally:
        reader.close()
        server.close()
        client.close()


def test_zero_content_length_with_leading_zeros_is_no_body() -> None:
    """RFC 9110 §8.6: Content-Length is 1*DIGIT, so "00" is zero: no body, a valid handshake."""
    environ = {
        "REQUEST_METHOD": "GET",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "HTTP_UPGRADE": "websocket",
        "HTTP_CONNECTION": "Upgrade",
        "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
        "CONTENT_LENGTH": "00",
    }
    assert handshake_verdict(environ).status == 101
    accept(webob.Request(environ))  # finding 4 of the fuzz tests, fixed in 9416bb0
