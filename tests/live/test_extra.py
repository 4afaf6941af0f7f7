"""Beyond the basics: pings, fragments, early bytes split or large, keep-alive, many clients.

Each of these is a way real clients behave that a socket takeover can get wrong.
"""

from __future__ import annotations

import socket
import threading

import pytest

from tests.conftest import timeout

from ._clients import new_id, wait_state, ws_connect
from ._scenarios import assert_handler_ended, close_cleanly
from ._wire import BINARY, CLOSE, CONT, PING, PONG, TEXT, RawClient, accept_for, frame, new_key
from ._wire import handshake_request as handshake


def test_ping_answered_while_handler_receives(server):
    client = RawClient.connect(server.address, "/echo")
    try:
        client.send_frame(PING, b"are you there")
        pong = client.recv_frame()
        assert (pong.opcode, pong.payload) == (PONG, b"are you there")
        client.send("still echoing")
        assert client.recv_message() == "still echoing"
        close_cleanly(client)
    finally:
        client.close()


def test_fragmented_message_with_ping_between(server):
    client = RawClient.connect(server.address, "/echo")
    try:
        client.send_frame(TEXT, b"frag", fin=False)
        client.send_frame(PING, b"mid")
        client.send_frame(CONT, "mént".encode()[:3], fin=False)  # splits the é across frames
        client.send_frame(CONT, "mént".encode()[3:], fin=True)
        pong = client.recv_frame()
        assert (pong.opcode, pong.payload) == (PONG, b"mid")
        assert client.recv_message() == "fragmént"
        client.send_frame(BINARY, b"\x01", fin=False)
        client.send_frame(CONT, b"\x02", fin=True)
        assert client.recv_message() == b"\x01\x02"
        close_cleanly(client)
    finally:
        client.close()


@pytest.mark.parametrize("size", [70_000, 1 << 20])
def test_pipelined_large_first_message(server, size):
    """More early bytes than any server's read-ahead buffer: part buffered, part in the socket."""
    message = bytes(range(256)) * (size // 256)
    client = RawClient.connect(server.address, "/echo", early=frame(BINARY, message))
    try:
        assert client.recv_message() == message
        close_cleanly(client)
    finally:
        client.close()


def test_pipelined_partial_frame(server):
    """The handshake carries half a frame; the rest comes after the 101."""
    data = frame(TEXT, b"split across the handshake")
    client = RawClient.connect(server.address, "/echo", early=data[:9])
    try:
        client.sock.sendall(data[9:])
        assert client.recv_message() == "split across the handshake"
        close_cleanly(client)
    finally:
        client.close()


def test_handshake_after_keepalive_request(server):
    """A plain request, then the handshake on the same (kept-alive) connection."""
    sock = socket.create_connection(server.address, timeout=timeout(10))
    client = RawClient(sock)
    try:
        host = f"{server.host}:{server.port}"
        sock.sendall(f"GET /hello HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        client.read_response_head()
        client.read_body()
        assert client.status == 200
        length = int(client.headers["content-length"])
        assert bytes(client.buf[:length]) == b"hello from the app\n"
        del client.buf[:length]
        if client.headers.get("connection", "").lower() == "close":
            # This server does not offer keep-alive (Werkzeug): it must then close.
            assert client.read_until_eof() == b""
            return
        key = new_key()
        sock.sendall(handshake(host, "/echo", key))
        client.read_response_head()
        assert client.status == 101, (client.status, client.headers, bytes(client.buf))
        assert client.headers["sec-websocket-accept"] == accept_for(key)
        client.send("on a reused connection")
        assert client.recv_message() == "on a reused connection"
        close_cleanly(client)
    finally:
        sock.close()


def test_many_clients_at_once(server):
    """20 connections open together, each echoing 50 messages."""
    errors: list[str] = []
    barrier = threading.Barrier(20, timeout=timeout(30))

    def run(n: int) -> None:
        try:
            with ws_connect(server, "/echo") as ws:
                barrier.wait()
                for i in range(50):
                    ws.send(f"{n}:{i}")
                    got = ws.recv(timeout=timeout(30))
                    if got != f"{n}:{i}":
                        errors.append(f"client {n} message {i}: {got!r}")
                        return
        except Exception as exc:
            errors.append(f"client {n}: {exc!r}")

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout(60))
    assert not any(t.is_alive() for t in threads), "some clients did not finish"
    assert not errors, errors


def test_handler_returns_while_client_sends_big_message(server):
    """The handler closes at once while a 16 MiB message is on its way: a clean close anyway."""
    message = b"\x00" * (16 << 20)
    with ws_connect(server, "/close?code=4003&reason=enough") as ws:
        try:
            ws.send(message)
        except Exception as exc:  # the close may cut the send short on the client's side
            assert "4003" in str(exc), exc
        with pytest.raises(Exception) as info:
            ws.recv(timeout=timeout(30))
    assert ws.close_code == 4003, (info.value, ws.close_code)


# -- a handler that only sends (server push) ---------------------------------------------


def test_push_handler_sees_client_close_websockets(server):
    cid = new_id()
    with ws_connect(server, f"/push?id={cid}") as ws:
        for i in range(10):
            assert ws.recv(timeout=timeout(10)) == f"push {i}"
        ws.close(4000, "stop")
        assert ws.close_code == 4000
    assert_handler_ended(server, cid, "ConnectionClosed", 4000, "stop")


def test_push_handler_answers_ping_and_close_raw(server):
    cid = new_id()
    client = RawClient.connect(server.address, f"/push?id={cid}")
    try:
        assert client.recv_message() == "push 0"
        client.send_frame(PING, b"push ping")
        while True:  # pushes keep coming; the pong is among them
            f = client.recv_frame()
            if f.opcode == PONG:
                assert f.payload == b"push ping"
                break
            assert f.opcode == TEXT, f
        client.send_close(4000, "stop")
        while True:
            f = client.recv_frame()
            if f.opcode == CLOSE:
                break
            assert f.opcode == TEXT, f
        assert (f.close_code, f.close_reason) == (4000, "stop")
        assert client.read_until_eof() == b""
    finally:
        client.close()
    assert_handler_ended(server, cid, "ConnectionClosed", 4000, "stop")


@pytest.mark.parametrize("how", ["fin", "reset"])
def test_push_handler_sees_abrupt_disconnect(server, how):
    cid = new_id()
    client = RawClient.connect(server.address, f"/push?id={cid}")
    try:
        assert client.recv_message() == "push 0"
    finally:
        client.abort(reset=how == "reset")
    rec = wait_state(server, cid, "ended")
    assert (rec["how"], rec["code"]) == ("ConnectionClosed", 1006), rec


@pytest.mark.parametrize(
    "extra",
    [
        {"Connection": "keep-alive, Upgrade", "Upgrade": "websocket"},  # Firefox
        {"Connection": "upgrade", "Upgrade": "WebSocket"},  # case-insensitive tokens
        {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"},
    ],
    ids=["firefox-connection", "token-case", "extension-offered"],
)
def test_browser_style_handshakes(server, extra):
    # /plain has compression off: the offer must be declined there (compression accepted
    # and used is tested in test_options.py).
    client = RawClient.connect(server.address, "/plain", extra=extra)
    try:
        assert "sec-websocket-extensions" not in client.headers, client.headers
        client.send("hi")
        assert client.recv_message() == "hi"
        close_cleanly(client)
    finally:
        client.close()
