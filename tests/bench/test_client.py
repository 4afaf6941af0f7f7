"""The benchmark's load client (bench._client) against real sockets.

The echo server here is wsproto in server mode, an independent parser: it
proves the client's frames valid (masking, lengths, the Close), and its frames
exercise the client's parser. Switches make it misbehave the ways a server
under test could: fragmented echoes, pings, a corrupted or short echo, a Close
mid-run, silence. One test drives wsgiws itself under the Werkzeug server.
Nothing here asserts a time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from tests.conftest import timeout

wsproto = pytest.importorskip("wsproto", reason="wsproto is not installed (pip install wsproto)")

from wsproto import ConnectionType, WSConnection  # noqa: E402
from wsproto.events import (  # noqa: E402
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from bench import _client  # noqa: E402
from bench._client import (  # noqa: E402
    BenchError,
    Endpoint,
    concurrent,
    handshakes,
    idle,
    loopback_only,
    roundtrips,
)
from bench._frames import client_frame, mask  # noqa: E402

TEXT_16 = b"0123456789abcdef"
BINARY_64K = bytes(range(256)) * 256
BINARY_1M = BINARY_64K * 16


class EchoServer:
    """A threaded wsproto echo server on 127.0.0.1, one thread per connection.

    ``behaviour``: ``echo``; ``fragment`` (each echo in three frames);
    ``ping`` (a ping before each echo); ``corrupt`` (the first echo of each
    connection has one byte changed); ``short`` (the 10th echo lacks its last
    byte); ``close`` (Close 1011 "boom" instead of the 5th echo); ``stall``
    (handshake, then silence); ``silent`` (no handshake answer); ``reject``
    (400 to the handshake); ``bad-accept`` (a 101 with a wrong accept value);
    ``three`` (the first three connections accepted are served, the others
    get no handshake answer); ``trailing`` (a stray HTTP response right after
    the Close, in the same write, as flask-sock sends on Werkzeug);
    ``http-first`` (that stray response before the Close, a race flask-sock
    on Werkzeug can lose); ``unanswered`` (TCP closed on the client's Close,
    no Close in answer);
    ``going-away`` (the client's Close answered with 1001);
    ``open-after-close`` (TCP left open after the Close, as flask-sock on
    gevent.pywsgi does, until the client closes it).
    """

    def __init__(self, behaviour: str = "echo") -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.endpoint = Endpoint("127.0.0.1", self.port, "/echo")
        self.lock = threading.Lock()
        self.accepted = 0
        self.messages = 0
        self.upgraded = 0
        self.open = 0
        self.close_codes: list[int | None] = []
        self.resets = 0
        self.pongs: list[bytes] = []
        self.pings: list[bytes] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            silent = self.behaviour == "three" and self.accepted > 3
            thread = threading.Thread(target=self._serve, args=(sock, silent), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, silent: bool) -> None:
        sock.settimeout(0.2)
        # Fragments go out as separate writes: without this, Nagle's algorithm
        # holds the second until the client's delayed ACK (40 ms on Linux).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with sock:
            try:
                self._converse(sock, silent)
            except ConnectionResetError:
                with self.lock:
                    self.resets += 1
            except OSError:
                pass
            except Exception as exc:  # a wsproto protocol error: the client is at fault
                self.errors.append(exc)

    def _recv(self, sock: socket.socket) -> bytes | None:
        """The next bytes, b"" at EOF, None once the server is stopping."""
        while not self.stopping.is_set():
            try:
                return sock.recv(1 << 20)
            except socket.timeout:
                continue
        return None

    def _converse(self, sock: socket.socket, silent: bool) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        parts: list[Any] = []
        count = 0
        counted = False
        try:
            while True:
                data = self._recv(sock)
                if not data:
                    return  # stopping, or EOF: nothing to answer (the client went away)
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, Request):
                        if silent or self.behaviour == "silent":
                            continue
                        if self.behaviour == "reject":
                            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                            return
                        out = ws.send(AcceptConnection())
                        if self.behaviour == "bad-accept":
                            out = out.replace(b"Sec-WebSocket-Accept: ", b"Sec-WebSocket-Accept: x")
                        sock.sendall(out)
                        with self.lock:
                            self.upgraded += 1
                            self.open += 1
                        counted = True
                    elif isinstance(event, Message):
                        parts.append(event.data)
                        if event.message_finished:
                            count += 1
                            self._answer(sock, ws, event, parts, count)
                            parts = []
                    elif isinstance(event, CloseConnection):
                        with self.lock:
                            self.close_codes.append(event.code)
                        if self.behaviour == "unanswered":
                            return
                        out = ws.send(event.response())
                        if self.behaviour == "going-away":
                            # By hand: wsproto answers a Close only with its code.
                            out = b"\x88\x05" + (1001).to_bytes(2, "big") + b"bye"
                        if self.behaviour == "trailing":
                            out += b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                        if self.behaviour == "http-first":
                            out = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" + out
                        sock.sendall(out)
                        if self.behaviour != "open-after-close":
                            return  # the server closes TCP first (RFC 6455 §7.1.1)
                    elif isinstance(event, Pong):
                        with self.lock:
                            self.pongs.append(bytes(event.payload))
                    elif isinstance(event, Ping):
                        sock.sendall(ws.send(event.response()))
        finally:
            if counted:
                with self.lock:
                    self.open -= 1

    def _answer(
        self, sock: socket.socket, ws: WSConnection, event: Message[Any], parts: list[Any], n: int
    ) -> None:
        text = isinstance(event, TextMessage)
        whole: Any = ("" if text else b"").join(parts)
        with self.lock:
            self.messages += 1
        behaviour = self.behaviour
        if behaviour == "stall":
            return
        if behaviour == "close" and n == 5:
            sock.sendall(ws.send(CloseConnection(code=1011, reason="boom")))
            return
        if behaviour == "corrupt" and n == 1:
            whole = whole[:-1] + ("X" if text else b"X")
        if behaviour == "short" and n == 10:
            whole = whole[:-1]
        if behaviour == "ping":
            payload = b"ping %d" % n
            with self.lock:
                self.pings.append(payload)
            sock.sendall(ws.send(Ping(payload=payload)))
        if behaviour == "fragment" and len(whole) >= 3:
            third = len(whole) // 3
            chunks = [whole[:third], whole[third : 2 * third], whole[2 * third :]]
        else:
            chunks = [whole]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            message = (
                TextMessage(chunk, message_finished=last)
                if text
                else BytesMessage(chunk, message_finished=last)
            )
            sock.sendall(ws.send(message))

    def stop(self) -> None:
        self.stopping.set()
        self.acceptor.join(timeout(5))
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout(5))


@pytest.fixture
def echo_server() -> Iterator[Callable[..., EchoServer]]:
    servers: list[EchoServer] = []

    def start(behaviour: str = "echo") -> EchoServer:
        server = EchoServer(behaviour)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    for server in servers:
        # wsproto found nothing wrong in any frame the client sent.
        assert not server.errors, server.errors


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + timeout(seconds)
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def short_margin(monkeypatch: pytest.MonkeyPatch) -> float:
    """A stall fails after ``max_seconds`` plus half a second (scaled), not five."""
    margin = timeout(0.5)
    monkeypatch.setattr(_client, "IO_MARGIN", margin)
    return margin


@pytest.mark.parametrize(
    ("payload", "text"),
    [(TEXT_16, True), (BINARY_64K, False), (BINARY_1M, False)],
    ids=["16B-text", "64KiB-binary", "1MiB-binary"],
)
def test_roundtrips(echo_server: Callable[..., EchoServer], payload: bytes, text: bool) -> None:
    server = echo_server()
    count = 30 if len(payload) > 100_000 else 200
    sample = roundtrips(
        server.endpoint,
        payload=payload,
        text=text,
        max_messages=count,
        max_seconds=timeout(60),
        warmup=5,
    )
    assert sample.messages == count
    assert sample.payload_bytes == count * len(payload)
    assert sample.wall > 0 and sample.client_cpu >= 0
    assert sample.notes == ()  # a clean closing handshake
    wait_for(lambda: server.close_codes == [1000])
    assert server.messages == count + 5


def test_roundtrips_stop_at_max_seconds(echo_server: Callable[..., EchoServer]) -> None:
    server = echo_server()
    sample = roundtrips(
        server.endpoint, payload=TEXT_16, text=True, max_messages=10**9, max_seconds=0.2
    )
    assert 0 < sample.messages < 10**9
    wait_for(lambda: server.close_codes == [1000])


@pytest.mark.parametrize(
    ("payload", "text"), [(TEXT_16, True), (BINARY_1M, False)], ids=["16B-text", "1MiB-binary"]
)
def test_fragmented_echo_counts_once(
    echo_server: Callable[..., EchoServer], payload: bytes, text: bool
) -> None:
    server = echo_server("fragment")
    sample = roundtrips(
        server.endpoint, payload=payload, text=text, max_messages=10, max_seconds=timeout(60)
    )
    assert sample.messages == 10
    wait_for(lambda: server.close_codes == [1000])


def test_ping_answered_with_its_payload(echo_server: Callable[..., EchoServer]) -> None:
    server = echo_server("ping")
    roundtrips(
        server.endpoint,
        payload=TEXT_16,
        text=True,
        max_messages=20,
        max_seconds=timeout(30),
        warmup=2,
    )
    wait_for(lambda: server.close_codes == [1000])
    assert server.pongs == server.pings and len(server.pings) == 22


def test_concurrent(echo_server: Callable[..., EchoServer]) -> None:
    server = echo_server()
    sample = concurrent(
        server.endpoint,
        connections=10,
        payload=TEXT_16,
        text=True,
        max_messages=500,
        max_seconds=timeout(60),
    )
    assert sample.messages == 500
    assert sample.payload_bytes == 500 * 16
    assert sample.notes == ()
    wait_for(lambda: len(server.close_codes) == 10)
    assert server.close_codes == [1000] * 10
    assert server.messages == 500 + 10  # and one warm-up round trip each


def test_concurrent_stops_at_max_seconds(echo_server: Callable[..., EchoServer]) -> None:
    server = echo_server("ping")  # pings on every connection, too
    sample = concurrent(
        server.endpoint,
        connections=10,
        payload=BINARY_64K,
        text=False,
        max_messages=10**9,
        max_seconds=0.3,
    )
    assert 0 < sample.messages < 10**9
    assert sample.payload_bytes == sample.messages * len(BINARY_64K)
    wait_for(lambda: len(server.close_codes) == 10)
    assert server.messages == sample.messages + 10
    assert sorted(server.pongs) == sorted(server.pings)


def test_handshakes(echo_server: Callable[..., EchoServer]) -> None:
    server = echo_server()
    sample = handshakes(server.endpoint, max_connections=25, max_seconds=timeout(60))
    assert sample.messages == 25
    assert sample.payload_bytes == 0
    assert sample.notes == ()
    wait_for(lambda: len(server.close_codes) == 25)
    assert server.close_codes == [1000] * 25


@pytest.mark.parametrize(
    ("behaviour", "note"),
    [
        ("trailing", "wrote bytes after its Close (b'HTTP/1.1 200 OK"),
        ("http-first", "wrote bytes that are not frames where its Close was due (b'HTTP/1.1"),
        ("unanswered", "closed TCP without answering our Close"),
        ("going-away", "answered our Close 1000 with 1001 'bye'"),
        ("open-after-close", "kept the TCP connection open {grace:g} s after its Close"),
    ],
)
def test_closing_deviations_are_notes_not_failures(
    echo_server: Callable[..., EchoServer],
    monkeypatch: pytest.MonkeyPatch,
    behaviour: str,
    note: str,
) -> None:
    """How a server ends a connection is reported with the figures; it does not void them."""
    grace = timeout(0.2)
    monkeypatch.setattr(_client, "CLOSE_GRACE", grace)
    note = note.format(grace=grace)
    server = echo_server(behaviour)
    bound = timeout(30)
    samples = [
        handshakes(server.endpoint, max_connections=5, max_seconds=bound),
        roundtrips(server.endpoint, payload=TEXT_16, text=True, max_messages=5, max_seconds=bound),
        concurrent(
            server.endpoint,
            connections=4,
            payload=TEXT_16,
            text=True,
            max_messages=20,
            max_seconds=bound,
        ),
    ]
    assert [sample.messages for sample in samples] == [5, 5, 20]
    totals = [5, 1, 4]
    for sample, total in zip(samples, totals):
        expected = f"{total} of {total} closing handshakes: the server {note}"
        assert len(sample.notes) == 1 and sample.notes[0].startswith(expected), sample.notes
    wait_for(lambda: len(server.close_codes) == 10)


def test_idle_holds_then_resets(echo_server: Callable[..., EchoServer]) -> None:
    server = echo_server()
    with idle(server.endpoint, connections=50, max_seconds=timeout(30)) as held:
        assert held == 50
        wait_for(lambda: server.open == 50)
    wait_for(lambda: server.open == 0)
    # SO_LINGER 0: each connection ended with a reset, not a closing handshake.
    assert server.resets == 50
    assert server.close_codes == []


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("corrupt", "the echo differs from the payload sent"),
        ("short", "an echo of 15 bytes; sent 16"),
        ("close", "the server sent Close, code 1011, reason 'boom'"),
        ("reject", "handshake answered b'HTTP/1.1 400 Bad Request'"),
        ("bad-accept", "Sec-WebSocket-Accept is b'x"),
    ],
)
def test_protocol_failures(
    echo_server: Callable[..., EchoServer], behaviour: str, message: str
) -> None:
    server = echo_server(behaviour)
    with pytest.raises(BenchError, match=r"round trips .* on ws://127\.0\.0\.1") as info:
        roundtrips(
            server.endpoint,
            payload=TEXT_16,
            text=True,
            max_messages=50,
            max_seconds=timeout(30),
            warmup=0,
        )
    assert message in str(info.value)


def test_corrupt_first_echo_in_concurrent(echo_server: Callable[..., EchoServer]) -> None:
    server = echo_server("corrupt")
    with pytest.raises(BenchError, match="the echo differs from the payload sent"):
        concurrent(
            server.endpoint,
            connections=3,
            payload=BINARY_64K,
            text=False,
            max_messages=30,
            max_seconds=timeout(30),
        )


def _run_roundtrips(ep: Endpoint) -> object:
    return roundtrips(ep, payload=TEXT_16, text=True, max_messages=10**9, max_seconds=0.2)


def _run_concurrent(ep: Endpoint) -> object:
    return concurrent(
        ep, connections=3, payload=TEXT_16, text=True, max_messages=10**9, max_seconds=0.2
    )


def _run_handshakes(ep: Endpoint) -> object:
    return handshakes(ep, max_connections=10, max_seconds=0.2)


def _run_idle(ep: Endpoint) -> object:
    with idle(ep, connections=5, max_seconds=0.2) as held:
        return held


@pytest.mark.parametrize(
    ("behaviour", "run", "message"),
    [
        ("stall", _run_roundtrips, "timed out during the warm-up"),
        ("silent", _run_roundtrips, "timed out during the handshake"),
        ("stall", _run_concurrent, "timed out during the warm-up round trips"),
        ("silent", _run_handshakes, "timed out during the measured loop"),
        ("silent", _run_idle, "timed out during the handshakes (0 of 5 connections open)"),
    ],
    ids=["roundtrips-stall", "roundtrips-silent", "concurrent-stall", "handshakes", "idle"],
)
def test_a_silent_server_fails_within_the_bound(
    echo_server: Callable[..., EchoServer],
    short_margin: float,
    behaviour: str,
    run: Callable[[Endpoint], object],
    message: str,
) -> None:
    server = echo_server(behaviour)
    outcome: list[BaseException | object] = []

    def call() -> None:
        try:
            outcome.append(run(server.endpoint))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    # The call's own bound is 0.2 s + the margin; give it several times that.
    thread.join(timeout(10))
    assert not thread.is_alive(), "the client did not give up on a silent server"
    assert isinstance(outcome[0], BenchError), outcome
    assert message in str(outcome[0])


def test_idle_says_how_many_were_open(
    echo_server: Callable[..., EchoServer], short_margin: float
) -> None:
    server = echo_server("three")
    with (
        pytest.raises(BenchError, match=r"timed out during the handshakes \(3 of 10 connections"),
        idle(server.endpoint, connections=10, max_seconds=0.2),
    ):
        pass
    # A port bound but not listening: every connection is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = r"ConnectionRefusedError during the handshakes \(0 of 5 connections open\)"
        with (
            pytest.raises(BenchError, match=refused),
            idle(Endpoint("127.0.0.1", closed.getsockname()[1]), connections=5, max_seconds=5),
        ):
            pass


@pytest.mark.parametrize("host", ["10.1.2.3", "example.com", "0.0.0.0", "192.168.0.1"])
def test_loopback_only(host: str) -> None:
    ep = Endpoint(host, 9)
    with pytest.raises(ValueError, match="loopback only"):
        loopback_only(ep)
    with pytest.raises(ValueError, match="loopback only"):
        roundtrips(ep, payload=TEXT_16, text=True, max_messages=1, max_seconds=1)
    with pytest.raises(ValueError, match="loopback only"):
        concurrent(ep, connections=1, payload=TEXT_16, text=True, max_messages=1, max_seconds=1)
    with pytest.raises(ValueError, match="loopback only"):
        handshakes(ep, max_connections=1, max_seconds=1)
    with pytest.raises(ValueError, match="loopback only"), idle(ep, connections=1, max_seconds=1):
        pass
    for host in ("127.0.0.1", "::1", "localhost"):
        loopback_only(Endpoint(host, 9))


def test_mask_is_the_rfc_xor() -> None:
    key = b"\x01\x80\xfe\x33"
    payload = bytes(range(256)) * 3 + b"xyz"
    naive = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    assert mask(payload, key) == naive
    assert mask(naive, key) == payload
    assert mask(b"", key) == b""
    # RFC 6455 §5.7: a masked "Hello".
    assert client_frame(0x1, b"Hello", key=bytes.fromhex("37fa213d")) == bytes.fromhex(
        "818537fa213d7f9f4d5158"
    )


def test_against_wsgiws_under_werkzeug() -> None:
    serving = pytest.importorskip("werkzeug.serving", reason="werkzeug is not installed")
    import wsgiws

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not here\n"]

    def echo(ws: wsgiws.WebSocket) -> None:
        for message in ws:
            ws.send(message)

    server = serving.make_server(
        "127.0.0.1", 0, wsgiws.WebSocketMiddleware(app, {"/echo": echo}), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        ep = Endpoint("127.0.0.1", server.server_port, "/echo")
        bound = timeout(60)
        w1 = roundtrips(ep, payload=TEXT_16, text=True, max_messages=100, max_seconds=bound)
        w3 = roundtrips(
            ep, payload=BINARY_1M, text=False, max_messages=5, max_seconds=bound, warmup=1
        )
        w4 = concurrent(
            ep, connections=10, payload=TEXT_16, text=True, max_messages=200, max_seconds=bound
        )
        w5 = handshakes(ep, max_connections=10, max_seconds=bound)
        assert (w1.messages, w3.messages, w4.messages, w5.messages) == (100, 5, 200, 10)
        # wsgiws answers every Close with 1000 and closes TCP first.
        assert w1.notes == w3.notes == w4.notes == w5.notes == ()
        with idle(ep, connections=20, max_seconds=bound) as held:
            assert held == 20
    finally:
        server.shutdown()
        thread.join(timeout(10))
        server.server_close()
