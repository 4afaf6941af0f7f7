"""Test bodies several live test modules run, each against its own server fixture.

The main tier (``server``), gunicorn's sync worker (``sync_server``) and the
framework apps (``framework_server``) check the same things over the same
wire: these helpers hold that logic once; ``path`` names the app's route.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import timeout

from ._clients import wait_state, ws_connect
from ._wire import BINARY, CLOSE, TEXT, RawClient, frame


def close_cleanly(client: RawClient) -> None:
    """Our Close 1000, the server's Close 1000 back, then EOF: nothing else on the wire."""
    client.send_close(1000)
    closing = client.recv_message()
    assert not isinstance(closing, (str, bytes)), closing
    assert closing.opcode == CLOSE and closing.close_code == 1000
    assert client.read_until_eof() == b""


def assert_handler_ended(server: Any, cid: str, how: str, code: int, reason: str) -> None:
    """The ``/record`` or ``/push`` handler ``cid`` ended: ``how``, ``code`` and ``reason``."""
    rec = wait_state(server, cid, "ended")
    assert (rec["how"], rec["code"], rec["reason"]) == (how, code, reason), rec


# -- echo ---------------------------------------------------------------------------------


def echo_websockets_client(server: Any, path: str, message: str | bytes, seconds: float) -> None:
    """One message echoed back over the ``websockets`` client: same type, length and content."""
    with ws_connect(server, path) as ws:
        ws.send(message)
        echoed = ws.recv(timeout=timeout(seconds))
    assert type(echoed) is type(message)
    assert len(echoed) == len(message)
    assert echoed == message


def echo_raw_socket(server: Any, path: str, message: str | bytes) -> None:
    """One message echoed back over a raw socket (a TLS one on a TLS server), then a clean close.

    ``server`` is a live server or anything else with an ``address`` (nginx in front).
    """
    context = getattr(server, "ssl_context", None)
    client = RawClient.connect(server.address, path, ssl_context=context)
    try:
        client.send(message)
        echoed = client.recv_message()
        assert type(echoed) is type(message)
        assert len(echoed) == len(message)
        assert echoed == message
        close_cleanly(client)
    finally:
        client.close()


def pipelined_first_frame(server: Any, path: str) -> None:
    """The handshake and two frames leave in one sendall: both echoed, then one more, then close."""
    early = frame(TEXT, "pipelined é".encode()) + frame(BINARY, b"\x00\xff" * 100)
    client = RawClient.connect(server.address, path, early=early)
    try:
        assert client.recv_message() == "pipelined é"
        assert client.recv_message() == b"\x00\xff" * 100
        client.send("after")
        assert client.recv_message() == "after"
        close_cleanly(client)
    finally:
        client.close()


# -- close codes, both ways ------------------------------------------------------------------


def client_close_reaches_handler_websockets(server: Any, cid: str) -> None:
    """The ``websockets`` client closes ``/record`` with 4000 "bye": echoed; the handler saw it."""
    with ws_connect(server, f"/record?id={cid}") as ws:
        ws.send("hello")
        assert ws.recv(timeout=timeout(10)) == "hello"
        ws.close(4000, "bye")
        assert ws.close_code == 4000  # the server echoed our code
    assert_handler_ended(server, cid, "ConnectionClosed", 4000, "bye")


def client_close_reaches_handler_raw(server: Any, cid: str) -> None:
    """A raw Close 4000 "bye" to ``/record``: echoed as the last frame, and the handler saw it."""
    client = RawClient.connect(server.address, f"/record?id={cid}")
    try:
        client.send("hello")
        assert client.recv_message() == "hello"
        client.send_close(4000, "bye")
        echo = client.recv_message()
        assert not isinstance(echo, (str, bytes)), echo
        assert (echo.opcode, echo.close_code, echo.close_reason) == (CLOSE, 4000, "bye")
        assert client.read_until_eof() == b""
    finally:
        client.close()
    assert_handler_ended(server, cid, "ConnectionClosed", 4000, "bye")


#: Codes and reasons the ``/close`` handler closes with, seen by the ``websockets`` client.
SERVER_CLOSES = [(4001, "server bye"), (1011, ""), (3000, "é" * 60)]
#: Codes and reasons the raw-socket tests have the ``/close`` handler close with.
SERVER_CLOSES_RAW = [(4001, "server bye"), (1000, "")]


def close_path(code: int, reason: str) -> str:
    """The ``/close`` handler's path: it closes at once with ``code`` and ``reason``."""
    return f"/close?code={code}&reason={quote(reason)}"


def server_close_reaches_client(
    server: Any, code: int, reason: str, raises: type[ConnectionClosed]
) -> None:
    """The ``/close`` handler closes at once: ``recv`` raises ``raises``, with code and reason."""
    with ws_connect(server, close_path(code, reason)) as ws, pytest.raises(raises) as info:
        ws.recv(timeout=timeout(10))
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (code, reason)


def server_close_then_eof(
    server: Any,
    path: str,
    code: int,
    reason: str | None = None,
    *,
    answer: bool = True,
    eof_seconds: float = 15,
) -> None:
    """The server's Close frame first (``code``, and ``reason`` when given); our Close back
    unless not ``answer``; then EOF: no further frame, no HTTP response."""
    client = RawClient.connect(server.address, path)
    try:
        closing = client.recv_message()
        assert not isinstance(closing, (str, bytes)), closing
        if reason is None:
            assert closing.close_code == code
        else:
            assert (closing.close_code, closing.close_reason) == (code, reason)
        if answer:
            client.send_close(code, reason or "")
        assert client.read_until_eof(seconds=eof_seconds) == b""
    finally:
        client.close()


def nothing_after_unanswered_close(server: Any) -> None:
    """We never answer the server's Close 4002: its close timeout (1 s on ``/close-quick``)
    ends the connection, the Close frame, then EOF, nothing else."""
    path = "/close-quick?code=4002&reason=no%20answer"
    server_close_then_eof(server, path, 4002, answer=False, eof_seconds=30)
