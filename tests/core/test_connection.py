"""The blocking connection over a real socket pair: no server, real sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import webob
from wsproto.events import CloseConnection, Ping, Pong

import wsgiws._connection
from tests.conftest import timeout
from tests.core._engines import ENGINES, engine_extensions
from tests.core._peer import Peer, mask_frame
from wsgiws import ConnectionClosed, WebSocket
from wsgiws._concurrency import THREADS, Lock, Waiter


@pytest.fixture(params=ENGINES)
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[WebSocket, Peer]]:
    """A connection on each framing engine in turn, and its peer."""
    server, client = socket.socketpair()
    ws = WebSocket(
        server,
        THREADS,
        request=webob.Request.blank("/ws"),
        max_message_size=32 * 1024 * 1024,
        close_timeout=timeout(2),
        extensions=engine_extensions(request.param),
    )
    yield ws, Peer(client)
    server.close()
    client.close()


def test_receive_text_and_binary(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    peer.send("hello")
    peer.send(b"\x00\x01")
    assert ws.receive() == "hello"
    assert ws.receive() == b"\x00\x01"


def test_early_bytes_are_delivered_first(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    ws._start(b"", mask_frame(0x1, b"early") + mask_frame(0x9, b"p"))
    peer.send("later")
    assert ws.receive() == "early"
    assert ws.receive() == "later"
    assert peer.next_event() == Pong(payload=b"p")


def test_receive_timeout_returns_none(pair: tuple[WebSocket, Peer]) -> None:
    ws, _ = pair
    assert ws.receive(timeout=0.05) is None
    assert not ws.closed


def test_large_messages_both_ways(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    big = bytes(range(256)) * (16 * 4096)  # 16 MiB
    sender = threading.Thread(target=peer.send, args=(big,))
    sender.start()
    assert ws.receive() == big
    sender.join()
    sender = threading.Thread(target=ws.send, args=(big,))
    sender.start()
    assert peer.receive() == big
    sender.join()


@pytest.mark.parametrize("code", [1000, 1001, None])
def test_normal_close_ends_iteration_then_raises(
    pair: tuple[WebSocket, Peer], code: int | None
) -> None:
    ws, peer = pair
    peer.send("one")
    if code is None:
        peer.send_raw(mask_frame(0x8, b""))  # a Close without a code: 1005
    else:
        peer.close(code)
    assert list(ws) == ["one"]
    assert ws.closed
    assert ws.close_code == (1005 if code is None else code)
    assert isinstance(peer.next_event(), CloseConnection)  # the echo
    assert peer.read_to_eof() == b""  # then TCP is closed by us
    with pytest.raises(ConnectionClosed):
        ws.receive()
    with pytest.raises(ConnectionClosed):
        ws.send("too late")


def test_other_close_codes_raise_with_code_and_reason(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    peer.close(4000, "bye")
    with pytest.raises(ConnectionClosed) as info:
        ws.receive()
    assert (info.value.code, info.value.reason) == (4000, "bye")
    assert (ws.close_code, ws.close_reason) == (4000, "bye")
    assert peer.next_event() == CloseConnection(code=4000, reason="bye")


def test_eof_without_close_frame_raises_1006(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    peer.sock.shutdown(socket.SHUT_WR)
    with pytest.raises(ConnectionClosed) as info:
        ws.receive()
    assert info.value.code == 1006
    assert ws.close_code == 1006


def test_reset_while_receiving_raises_1006() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    ws = WebSocket(server, THREADS, request=webob.Request.blank("/ws"))
    result: list[BaseException] = []

    def receive() -> None:
        try:
            ws.receive()
        except ConnectionClosed as exc:
            result.append(exc)

    receiver = threading.Thread(target=receive)
    receiver.start()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()  # RST
    receiver.join(timeout(5))
    assert not receiver.is_alive(), "receive() did not return after a reset"
    assert isinstance(result[0], ConnectionClosed) and result[0].code == 1006
    server.close()


def test_ping_is_answered_while_receiving(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    peer.ping(b"are you there")
    peer.send("msg")
    assert ws.receive() == "msg"
    assert peer.next_event() == Pong(payload=b"are you there")


def test_ping_is_answered_by_a_handler_that_only_sends(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    peer.ping(b"p1")
    ws.send("a")
    events = [peer.next_event(), peer.next_event()]
    assert Pong(payload=b"p1") in events


def test_peer_close_is_echoed_by_a_handler_that_only_sends(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    peer.close(1001, "going away")
    with pytest.raises(ConnectionClosed) as info:
        ws.send("nobody listens")
    assert info.value.code == 1001
    assert peer.next_event() == CloseConnection(code=1001, reason="going away")
    assert peer.read_to_eof() == b""


def test_concurrent_sends_never_interleave(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    threads, count = 4, 200

    def send(n: int) -> None:
        for i in range(count):
            ws.send(bytes([n]) * (1 + (i * 7919) % 70000))

    senders = [threading.Thread(target=send, args=(n,)) for n in range(threads)]
    for t in senders:
        t.start()
    seen = {n: 0 for n in range(threads)}
    for _ in range(threads * count):
        message = peer.receive()
        assert isinstance(message, bytes)
        n = message[0]
        assert message == bytes([n]) * (1 + (seen[n] * 7919) % 70000), "corrupted or reordered"
        seen[n] += 1
    for t in senders:
        t.join()
    assert seen == {n: count for n in range(threads)}


def test_send_while_another_thread_receives(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    count = 1000
    received: list[object] = []

    def receive() -> None:
        for _ in range(count):
            received.append(ws.receive())

    receiver = threading.Thread(target=receive)
    receiver.start()
    client_sender = threading.Thread(target=lambda: [peer.send(f"c{i}") for i in range(count)])
    client_sender.start()
    client_received: list[object] = []
    client_receiver = threading.Thread(
        target=lambda: client_received.extend(peer.receive() for _ in range(count))
    )
    client_receiver.start()
    for i in range(count):
        ws.send(f"s{i}")
    for t in (receiver, client_sender, client_receiver):
        t.join(timeout(10))
        assert not t.is_alive()
    assert client_received == [f"s{i}" for i in range(count)]
    assert received == [f"c{i}" for i in range(count)]


def test_close_waits_for_the_peers_answer(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    answer = threading.Thread(target=peer.expect_close)
    answer.start()
    ws.close(4001, "server bye")
    answer.join()
    assert (ws.close_code, ws.close_reason, ws.closed) == (4001, "server bye", True)
    assert peer.read_to_eof() == b""


def test_close_gives_up_on_a_silent_peer(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    ws._close_timeout = 0.1
    ws.close()
    assert ws.closed and ws.close_code == 1006
    event = peer.next_event()
    assert event == CloseConnection(code=1000, reason="")


def test_close_rejects_codes_an_endpoint_may_not_send(pair: tuple[WebSocket, Peer]) -> None:
    ws, _ = pair
    for code in (999, 1004, 1005, 1006, 1015, 2000, 5000):
        with pytest.raises(ValueError):
            ws.close(code)


def test_finish_after_handler_error_sends_1011(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    answer = threading.Thread(target=peer.expect_close)
    answer.start()
    ws._finish(1011)
    answer.join()
    assert ws.close_code == 1011
    assert peer.read_to_eof() == b""


def test_finish_shuts_the_socket_so_later_writes_fail(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    answer = threading.Thread(target=peer.expect_close)
    answer.start()
    ws._finish()
    answer.join()
    with pytest.raises(BrokenPipeError):
        ws._sock.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    assert peer.read_to_eof() == b""


def test_protocol_error_raises_and_fails_the_connection(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    peer.send_raw(mask_frame(0x1, b"\xff\xfe"))
    with pytest.raises(ConnectionClosed) as info:
        ws.receive()
    assert info.value.code == 1007
    assert isinstance(peer.next_event(), CloseConnection)
    assert peer.read_to_eof() == b""


def test_message_too_big_closes_with_1009(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    ws._protocol.max_message_size = 1000
    peer.send(b"x" * 1001)
    answer = threading.Thread(target=peer.expect_close)
    answer.start()
    with pytest.raises(ConnectionClosed) as info:
        ws.receive()
    answer.join()
    assert info.value.code == 1009


def test_send_rejects_other_types(pair: tuple[WebSocket, Peer]) -> None:
    ws, _ = pair
    with pytest.raises(TypeError):
        ws.send(42)  # type: ignore[arg-type]


def test_ping_payload_limit(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    ws.ping(b"x" * 125)
    assert peer.next_event() == Ping(payload=b"x" * 125)
    with pytest.raises(ValueError):
        ws.ping(b"x" * 126)


def test_context_manager_closes(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    got: list[object] = []
    answer = threading.Thread(target=lambda: got.extend([peer.receive(), peer.expect_close()]))
    answer.start()
    with ws:
        ws.send("in")
    answer.join()
    assert ws.closed and ws.close_code == 1000
    assert got == ["in", CloseConnection(code=1000, reason="")]


def test_attributes(pair: tuple[WebSocket, Peer]) -> None:
    ws, _ = pair
    assert ws.path == "/ws"
    assert ws.environ["PATH_INFO"] == "/ws"
    assert ws.subprotocol is None
    assert (ws.closed, ws.close_code, ws.close_reason) == (False, None, "")
    assert "OPEN" in repr(ws)


def test_send_after_our_close_names_our_code(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    ended: list[BaseException] = []

    def receive() -> None:
        try:
            ws.receive(timeout=timeout(5))
        except ConnectionClosed as exc:
            ended.append(exc)

    receiver = threading.Thread(target=receive)
    receiver.start()
    while ws._read_lock.acquire(False):  # wait until the receiver holds the lock
        ws._read_lock.release()
        time.sleep(0.001)
    # Another thread is receiving: close() sends the Close and waits while the
    # receiving thread reads the peer's answer and closes TCP.
    closer = threading.Thread(target=ws.close, args=(4002, "mine"))
    closer.start()
    event = peer.next_event()
    assert isinstance(event, CloseConnection) and event.code == 4002
    with pytest.raises(ConnectionClosed) as info:
        ws.send("x")
    assert (info.value.code, info.value.reason) == (4002, "mine")
    peer.sock.sendall(peer.ws.send(event.response()))
    closer.join(timeout(5))
    receiver.join(timeout(5))
    assert not closer.is_alive() and not receiver.is_alive()
    assert ws.closed and ws.close_code == 4002
    assert [(e.code, e.reason) for e in ended] == [(4002, "mine")]  # type: ignore[attr-defined]
    assert peer.read_to_eof() == b""


def test_a_peer_silent_after_our_1009_does_not_keep_receive_forever() -> None:
    """The protocol starts the closing handshake itself (a message too big) while the handler
    waits in receive(); the peer never answers: receive gives up after the close timeout."""
    server, client = socket.socketpair()
    with server, client:
        ws = WebSocket(
            server,
            THREADS,
            request=webob.Request.blank("/ws"),
            max_message_size=10,
            close_timeout=0.2,
        )
        peer = Peer(client)
        peer.send(b"x" * 20)
        with pytest.raises(ConnectionClosed) as info:
            ws.receive()
        assert info.value.code == 1006
        assert peer.next_event() == CloseConnection(
            code=1009, reason="message larger than 10 bytes"
        )
        assert peer.read_to_eof() == b""  # we closed TCP (our FIN)


def test_a_message_before_a_protocol_error_is_answered_then_1002(
    pair: tuple[WebSocket, Peer],
) -> None:
    ws, peer = pair
    peer.send_raw(mask_frame(0x1, b"hello") + mask_frame(0x1, b"bad", rsv=2))
    message = ws.receive()
    assert message == "hello"
    ws.send(message)
    with pytest.raises(ConnectionClosed) as info:
        ws.receive()
    assert info.value.code == 1002
    assert peer.receive() == "hello"
    close = peer.next_event()
    assert isinstance(close, CloseConnection) and close.code == 1002


def test_close_with_a_protocol_error_pending_uses_its_code(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    peer.send_raw(mask_frame(0x1, b"hello") + mask_frame(0x1, b"bad", rsv=2))
    assert ws.receive() == "hello"
    ws.close(1000)
    close = peer.next_event()
    assert isinstance(close, CloseConnection) and close.code == 1002
    assert ws.close_code == 1002


def test_a_handler_that_only_sends_fails_one_send_after_a_protocol_error(
    pair: tuple[WebSocket, Peer],
) -> None:
    ws, peer = pair
    peer.send_raw(mask_frame(0x1, b"bad", rsv=2))
    deadline = time.monotonic() + timeout(5)
    while not ws._stream.readable(0):  # the bytes are there before the first send
        assert time.monotonic() < deadline
    ws.send("first")  # reads the defect; this send still goes out
    with pytest.raises(ConnectionClosed) as info:
        ws.send("second")
    assert info.value.code == 1002
    assert peer.receive() == "first"
    close = peer.next_event()
    assert isinstance(close, CloseConnection) and close.code == 1002


class _CountingSocket:
    """A socket that records the size of every recv() asked of it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.asked: list[int] = []

    def recv(self, size: int) -> bytes:
        self.asked.append(size)
        return self._sock.recv(size)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def test_a_large_frame_is_read_in_reads_as_large_as_the_frame() -> None:
    """16 reads of 64 KiB for a 1 MiB message cost a wait and a parse each: ask for the frame."""
    server, client = socket.socketpair()
    counting = _CountingSocket(server)
    ws = WebSocket(
        counting,  # type: ignore[arg-type]
        THREADS,
        request=webob.Request.blank("/ws"),
        max_message_size=4 * 1024 * 1024,
        close_timeout=timeout(2),
    )
    big = bytes(range(256)) * 4096  # 1 MiB
    try:
        sender = threading.Thread(target=Peer(client).send, args=(big,))
        sender.start()
        assert ws.receive() == big
        sender.join()
        assert max(counting.asked) >= len(big) - 65536
    finally:
        server.close()
        client.close()


class _CountingKit:
    """THREADS, counting the zero-timeout readiness checks (one system call each)."""

    def __init__(self) -> None:
        self.checks = 0

    def lock(self) -> Lock:
        return THREADS.lock()

    def write_waiter(self, sock: socket.socket) -> Waiter:
        return THREADS.write_waiter(sock)

    def sleep(self, seconds: float) -> None:
        THREADS.sleep(seconds)

    def spawn(self, function: Callable[[], object]) -> None:
        THREADS.spawn(function)

    def waiter(self, sock: socket.socket) -> Waiter:
        wait = THREADS.waiter(sock)

        def counting(timeout: float | None) -> bool:
            if timeout is not None and timeout <= 0:
                self.checks += 1
            return wait(timeout)

        return counting


def test_answering_what_was_just_received_costs_no_readiness_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An echo handler reads again at once: its sends need not look for pings first."""
    # "Lately" is made long, then zero, so that a slow machine cannot change the outcome.
    monkeypatch.setattr(wsgiws._connection, "_SERVICE_INTERVAL", 3600.0)
    server, client = socket.socketpair()
    kit = _CountingKit()
    ws = WebSocket(server, kit, request=webob.Request.blank("/ws"), close_timeout=timeout(2))
    peer = Peer(client)
    try:
        for n in range(50):
            peer.send(f"m{n}")
            ws.send(ws.receive() or "")
            assert peer.receive() == f"m{n}"
        assert kit.checks == 0
        # A handler that only sends still answers a ping (the check is made
        # when nothing was read lately).
        monkeypatch.setattr(wsgiws._connection, "_SERVICE_INTERVAL", 0.0)
        client.sendall(mask_frame(0x9, b"are you there"))
        ws.send("news")
        assert kit.checks >= 1
        assert peer.next_event() == Pong(payload=b"are you there")
    finally:
        server.close()
        client.close()
