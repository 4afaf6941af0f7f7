"""How connections end: close codes both ways, handler errors, lost peers, bytes after Close."""

from __future__ import annotations

import socket

import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from tests.conftest import timeout

from . import _scenarios
from ._clients import new_id, wait_state, ws_connect
from ._harness import wait_for
from ._wire import CLOSE, RawClient

# -- close codes and reasons, both ways -----------------------------------------------


def test_client_close_code_reaches_handler_websockets(server):
    _scenarios.client_close_reaches_handler_websockets(server, new_id())


def test_client_close_code_reaches_handler_raw(server):
    _scenarios.client_close_reaches_handler_raw(server, new_id())


@pytest.mark.parametrize("code", [1000, 1001])
def test_client_normal_close_ends_handler_loop_quietly(server, code):
    cid = new_id()
    with ws_connect(server, f"/record?id={cid}") as ws:
        ws.send("hello")
        assert ws.recv(timeout=timeout(10)) == "hello"
        ws.close(code, "done")
    _scenarios.assert_handler_ended(server, cid, "end-of-stream", code, "done")


@pytest.mark.parametrize(("code", "reason"), _scenarios.SERVER_CLOSES)
def test_server_close_code_reaches_client_websockets(server, code, reason):
    _scenarios.server_close_reaches_client(server, code, reason, ConnectionClosedError)


def test_server_normal_close_reaches_client_websockets(server):
    _scenarios.server_close_reaches_client(server, 1000, "done", ConnectionClosedOK)


@pytest.mark.parametrize(("code", "reason"), _scenarios.SERVER_CLOSES_RAW)
def test_server_close_code_reaches_client_raw(server, code, reason):
    # Nothing after the server's Close frame: no further frame, no HTTP response.
    _scenarios.server_close_then_eof(server, _scenarios.close_path(code, reason), code, reason)


def test_nothing_after_close_when_client_never_answers(server):
    """The server gives up waiting for our Close (its close timeout) and closes TCP, silently."""
    _scenarios.nothing_after_unanswered_close(server)


def test_nothing_after_close_echo_raw(server):
    """Client-initiated close on the echo handler: the echoed Close is the last byte, then EOF."""
    client = RawClient.connect(server.address, "/echo")
    try:
        client.send("x")
        assert client.recv_message() == "x"
        client.send_close(None)  # a Close without a code: 1005 for the handler
        echo = client.recv_message()
        assert not isinstance(echo, (str, bytes)), echo
        assert echo.opcode == CLOSE
        assert client.read_until_eof() == b""
    finally:
        client.close()


# -- a handler that raises ------------------------------------------------------------------


def _expect_handler_traceback(server, marker: str) -> None:
    server.allow_errors(
        r"Traceback \(most recent call last\)",
        r"WebSocket handler for /fail raised",
        rf"RuntimeError: handler failed on purpose: {marker}$",
    )
    line = f"RuntimeError: handler failed on purpose: {marker}"
    wait_for(lambda: line in server.log(), 10, f"the handler's traceback ({marker}) in the log")
    server.settle()
    log = server.log()
    assert log.count("Traceback (most recent call last)") == 1, log
    assert log.count(line) == 1, log
    assert log.count("WebSocket handler for /fail raised") == 1, log


def test_handler_exception_gives_1011_websockets(server):
    marker = new_id()
    path = f"/fail?marker={marker}"
    with ws_connect(server, path) as ws, pytest.raises(ConnectionClosedError) as info:
        ws.recv(timeout=timeout(10))
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    _expect_handler_traceback(server, marker)


def test_handler_exception_gives_1011_raw(server):
    marker = new_id()
    _scenarios.server_close_then_eof(server, f"/fail?marker={marker}", 1011)
    _expect_handler_traceback(server, marker)


# -- the peer vanishes ----------------------------------------------------------------------


#: gthread's pool keeps its threads (up to --threads 32) once started: not a leak.
_THREAD_POOL_CAP = {"gunicorn-gthread": 32 + 2}


def _resources_settled(server, baseline: dict) -> dict:
    """Wait until the worker's fds, and threads or greenlets, are back to ``baseline``."""
    thread_cap = _THREAD_POOL_CAP.get(server.id, baseline["threads"])

    def check():
        stats = server.stats()
        ok = stats["fds"] <= baseline["fds"] and stats["threads"] <= thread_cap
        if baseline["greenlets"] is not None:
            ok = ok and stats["greenlets"] <= baseline["greenlets"]
        return stats if ok else None

    what = (
        f"the worker's fds ({baseline['fds']}), threads (<= {thread_cap}) and greenlets "
        f"({baseline['greenlets']}) to return to their baseline"
    )
    return wait_for(check, 15, what)  # type: ignore[no-any-return]


@pytest.mark.parametrize("how", ["fin", "reset"])
def test_abrupt_disconnect_raw(server, how):
    baseline = server.settle()
    cid = new_id()
    client = RawClient.connect(server.address, f"/record?id={cid}")
    try:
        client.send("hello")
        assert client.recv_message() == "hello"
        wait_state(server, cid, "receiving")
    finally:
        client.abort(reset=how == "reset")
    rec = wait_state(server, cid, "ended")
    assert (rec["how"], rec["code"]) == ("ConnectionClosed", 1006), rec
    assert rec["closed"] is True
    _resources_settled(server, baseline)


def test_abrupt_disconnect_websockets(server):
    baseline = server.settle()
    cid = new_id()
    with ws_connect(server, f"/record?id={cid}") as ws:
        ws.send("hello")
        assert ws.recv(timeout=timeout(10)) == "hello"
        wait_state(server, cid, "receiving")
        # As if the client's process died: TCP ends, no Close frame.
        ws.socket.shutdown(socket.SHUT_RDWR)
        rec = wait_state(server, cid, "ended")
    assert (rec["how"], rec["code"]) == ("ConnectionClosed", 1006), rec
    _resources_settled(server, baseline)
