"""Keepalive over a real socket pair: pings to a silent peer, and failing a peer that stays silent.

The intervals are short (tenths of a second) so the tests are quick; nothing
here asserts how long anything took, only what happened and in which order.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest
import webob
from wsproto.events import CloseConnection, Ping

from tests.conftest import timeout
from tests.core._engines import ENGINES, engine_extensions
from tests.core._peer import Peer, mask_frame
from wsgiws import ConnectionClosed, WebSocket
from wsgiws._concurrency import THREADS


def connection(
    ping_interval: float | None, ping_timeout: float | None, engine: str
) -> tuple[WebSocket, Peer, socket.socket]:
    server, client = socket.socketpair()
    ws = WebSocket(
        server,
        THREADS,
        request=webob.Request.blank("/ws"),
        close_timeout=timeout(2),
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        extensions=engine_extensions(engine),
    )
    return ws, Peer(client), server


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each framing engine in turn."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def test_a_silent_peer_gets_a_ping_and_its_pong_keeps_the_connection(
    engine: str,
    sockets: list[socket.socket],
) -> None:
    ws, peer, server = connection(0.1, timeout(5), engine)
    sockets += [server, peer.sock]
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(ws.receive()))
    reader.start()
    event = peer.next_event()
    assert isinstance(event, Ping)
    peer.send_raw(peer.ws.send(event.response()))
    # Answered: a second ping follows after another interval of silence.
    assert isinstance(peer.next_event(), Ping)
    peer.send("done")
    reader.join(timeout(5))
    assert got == ["done"]
    assert not ws.closed


def test_a_peer_that_never_answers_fails_with_1011_and_receive_raises(
    engine: str, sockets: list[socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "wsgiws")
    ws, peer, server = connection(0.1, 0.2, engine)
    sockets += [server, peer.sock]
    with pytest.raises(ConnectionClosed) as info:
        ws.receive()  # blocked here, with no timeout of its own
    assert (info.value.code, info.value.reason) == (1011, "keepalive ping timeout")
    assert ws.closed and ws.close_code == 1011
    # On the wire: our ping, then Close 1011, then EOF.
    assert isinstance(peer.next_event(), Ping)
    assert peer.next_event() == CloseConnection(code=1011, reason="keepalive ping timeout")
    assert peer.read_to_eof() == b""
    assert "no answer from the client" in caplog.text
    with pytest.raises(ConnectionClosed):
        ws.send("too late")


def test_any_bytes_from_the_peer_count_as_an_answer(
    engine: str, sockets: list[socket.socket]
) -> None:
    """A peer that keeps sending data (and never sends a pong) is alive."""
    ws, peer, server = connection(0.05, 0.1, engine)
    sockets += [server, peer.sock]
    stop = threading.Event()

    def chatter() -> None:
        i = 0
        while not stop.wait(0.01):
            peer.send(f"m{i}")
            i += 1

    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        for i in range(60):  # well past several ping timeouts
            assert ws.receive() == f"m{i}"
    finally:
        stop.set()
        thread.join()
    assert not ws.closed


def test_a_handler_that_only_sends_also_detects_a_dead_peer(
    engine: str,
    sockets: list[socket.socket],
) -> None:
    ws, peer, server = connection(0.05, 0.1, engine)
    sockets += [server, peer.sock]
    with pytest.raises(ConnectionClosed) as info:
        for _ in range(100_000):  # bounded: ends by ConnectionClosed long before
            ws.send("tick")
            threading.Event().wait(0.005)
    assert info.value.code == 1011


def test_no_pings_when_turned_off(engine: str, sockets: list[socket.socket]) -> None:
    ws, peer, server = connection(None, None, engine)
    sockets += [server, peer.sock]
    assert ws.receive(timeout=0.3) is None
    peer.sock.settimeout(0.1)
    with pytest.raises(socket.timeout):
        peer.sock.recv(1)


def test_without_a_timeout_pings_go_on_and_the_connection_stays(
    engine: str,
    sockets: list[socket.socket],
) -> None:
    ws, peer, server = connection(0.05, None, engine)
    sockets += [server, peer.sock]
    assert ws.receive(timeout=0.4) is None
    assert not ws.closed
    assert isinstance(peer.next_event(), Ping)


def test_an_unsolicited_pong_is_ignored_quietly(engine: str, sockets: list[socket.socket]) -> None:
    ws, peer, server = connection(timeout(10), timeout(10), engine)
    sockets += [server, peer.sock]
    peer.send_raw(mask_frame(0xA, b"hi"))
    peer.send("after")
    assert ws.receive() == "after"
