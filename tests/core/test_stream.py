"""wsgiws._stream: the socket as the connection uses it, plain and TLS, over real TCP on loopback.

The TLS cases use a certificate made for the session (tests/live/_tls.py) and
the standard library's SSL sockets on both ends, except where the test must
decide how the bytes are cut: there the client is an ``ssl.SSLObject`` over
memory buffers, so that a TLS record can be sent in two halves.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import webob

from tests.conftest import timeout
from tests.core._peer import Peer
from tests.live._tls import Certificates, make_certificates
from wsgiws import ConnectionClosed, WebSocket
from wsgiws._concurrency import THREADS
from wsgiws._stream import Stream, TLSStream, stream_for


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(Path(tmp_path_factory.mktemp("tls")))


#: Sockets the TLS helpers made (wrap_socket returns new objects): closed after each test.
_opened: list[socket.socket] = []


@pytest.fixture
def tcp() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(server, client): a TCP connection on loopback."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    yield server, client
    for sock in [server, client, *_opened]:
        sock.close()
    _opened.clear()


def tls_pair(
    certificates: Certificates, server: socket.socket, client: socket.socket
) -> tuple[ssl.SSLSocket, ssl.SSLSocket]:
    """Both ends of ``server``/``client`` wrapped in TLS, the handshake done."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificates.cert, certificates.key)
    client_context = ssl.create_default_context(cafile=str(certificates.ca))
    result: list[ssl.SSLSocket] = []
    thread = threading.Thread(
        target=lambda: result.append(server_context.wrap_socket(server, server_side=True))
    )
    thread.start()
    tls_client = client_context.wrap_socket(client, server_hostname="127.0.0.1")
    thread.join(timeout(10))
    _opened.extend([result[0], tls_client])
    return result[0], tls_client


def test_a_plain_socket_gets_the_plain_stream_and_a_tls_socket_the_tls_one(
    certificates: Certificates, tcp: tuple[socket.socket, socket.socket]
) -> None:
    with socket.socket() as plain:
        assert type(stream_for(plain, THREADS)) is Stream
    tls_server, tls_client = tls_pair(certificates, *tcp)
    stream = stream_for(tls_server, THREADS)
    assert type(stream) is TLSStream and not stream.corks
    tls_client.close()


def test_nothing_to_read_and_no_room_to_write_return_at_once(
    tcp: tuple[socket.socket, socket.socket],
) -> None:
    server, client = tcp
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    stream = Stream(server, THREADS)
    assert stream.recv(100) is None
    assert stream.readable(0) is False
    sent = 1
    while sent:  # the client never reads: the buffers fill, then send takes nothing
        sent = stream.send(b"x" * 65536)
    assert stream.writable(0.01) is False
    client.sendall(b"hello")
    assert stream.readable(timeout(5)) and stream.recv(100) == b"hello"


def test_bytes_decrypted_inside_the_ssl_object_count_as_readable(
    certificates: Certificates, tcp: tuple[socket.socket, socket.socket]
) -> None:
    """poll() cannot see them: a wait that asked it alone would wait for ever."""
    tls_server, tls_client = tls_pair(certificates, *tcp)
    stream = stream_for(tls_server, THREADS)
    tls_client.sendall(b"a" * 100)  # one TLS record
    assert stream.readable(timeout(5))
    assert stream.recv(10) == b"a" * 10  # OpenSSL decrypted the whole record
    assert tls_server.pending() == 90
    poller = select.poll()
    poller.register(tls_server.fileno(), select.POLLIN)
    assert poller.poll(0) == []  # nothing left in the socket itself
    assert stream.readable(0) is True
    assert stream.recv(1000) == b"a" * 90
    tls_client.close()


def test_part_of_a_tls_record_is_nothing_to_read_yet(
    certificates: Certificates, tcp: tuple[socket.socket, socket.socket]
) -> None:
    server, client = tcp
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificates.cert, certificates.key)
    client_context = ssl.create_default_context(cafile=str(certificates.ca))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    done: list[ssl.SSLSocket] = []
    thread = threading.Thread(
        target=lambda: done.append(server_context.wrap_socket(server, server_side=True))
    )
    thread.start()
    client.settimeout(timeout(10))
    while True:  # the client's side of the handshake, by hand
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            client.sendall(outgoing.read())
            incoming.write(client.recv(65536))
    client.sendall(outgoing.read())
    thread.join(timeout(10))
    _opened.extend(done)
    stream = stream_for(done[0], THREADS)
    tls.write(b"z" * 1000)
    record = outgoing.read()
    client.sendall(record[:20])
    assert stream.readable(timeout(5))  # the socket has bytes...
    assert stream.recv(4096) is None  # ...but not a whole record
    client.sendall(record[20:])
    assert stream.readable(timeout(5))
    received = b""
    while len(received) < 1000:
        chunk = stream.recv(4096)
        if chunk is None:
            assert stream.readable(timeout(5))
            continue
        received += chunk
    assert received == b"z" * 1000


def test_shutting_a_tls_stream_down_keeps_its_ssl_object(
    certificates: Certificates, tcp: tuple[socket.socket, socket.socket]
) -> None:
    """Our FIN goes out, and what the peer still sends is decrypted (SSLSocket.shutdown
    would drop the SSL object: later reads would return ciphertext)."""
    tls_server, tls_client = tls_pair(certificates, *tcp)
    stream = stream_for(tls_server, THREADS)
    stream.shutdown(socket.SHUT_WR)
    tls_client.sendall(b"still here")  # sent before it reads our FIN
    assert stream.readable(timeout(5))
    assert stream.recv(100) == b"still here"
    tls_client.settimeout(timeout(5))
    assert tls_client.recv(100) == b""  # our FIN (the SSL layer reports EOF)


def tls_websocket(
    certificates: Certificates, tcp: tuple[socket.socket, socket.socket], **options: float | None
) -> tuple[WebSocket, ssl.SSLSocket]:
    tls_server, tls_client = tls_pair(certificates, *tcp)
    ws = WebSocket(tls_server, THREADS, request=webob.Request.blank("/tls"), **options)  # type: ignore[arg-type]
    return ws, tls_client


def test_messages_both_ways_over_tls(
    certificates: Certificates, tcp: tuple[socket.socket, socket.socket]
) -> None:
    ws, tls_client = tls_websocket(
        certificates, tcp, close_timeout=timeout(2), max_message_size=None
    )
    peer = Peer(tls_client)  # type: ignore[arg-type]
    for size in (0, 1, 125, 65536, 1024 * 1024 + 7):
        payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        sender = threading.Thread(target=peer.send, args=(payload,))
        sender.start()
        assert ws.receive(timeout(10)) == payload
        sender.join()
        received: list[object] = []
        reader = threading.Thread(target=lambda out=received: out.append(peer.receive()))
        reader.start()
        ws.send(payload)
        reader.join(timeout(10))
        assert received == [payload]
    closer = threading.Thread(target=peer.expect_close)
    closer.start()
    ws.close(4001, "done")
    closer.join(timeout(5))
    assert ws.close_code == 4001


def test_a_tls_client_that_stops_reading_fails_the_send_after_send_timeout(
    certificates: Certificates, tcp: tuple[socket.socket, socket.socket]
) -> None:
    tcp[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    tcp[1].setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ws, _ = tls_websocket(certificates, tcp, send_timeout=0.3, ping_interval=None)
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.send(b"x" * 65536)
    assert info.value.code == 1006 and "stopped reading" in info.value.reason
    assert ws.closed


@pytest.mark.parametrize("how", ["close", "abort"])
def test_a_send_stuck_on_a_tls_client_is_released_by_another_thread(
    certificates: Certificates, tcp: tuple[socket.socket, socket.socket], how: str
) -> None:
    tcp[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    tcp[1].setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ws, _ = tls_websocket(
        certificates, tcp, send_timeout=None, ping_interval=None, close_timeout=0.3
    )
    outcome: list[BaseException] = []

    def flood() -> None:
        try:
            while True:
                ws.send(b"x" * 65536)
        except BaseException as exc:
            outcome.append(exc)

    flooder = threading.Thread(target=flood)
    flooder.start()
    deadline = time.monotonic() + timeout(10)
    while True:  # stuck: no progress for a while
        since = ws._deadlines._send_stuck_since
        if since is not None and time.monotonic() - since > 0.2:
            break
        assert time.monotonic() < deadline, "the flood never blocked"
        time.sleep(0.01)
    if how == "close":
        ws.close()
    else:
        ws.abort()
    flooder.join(timeout(5))
    assert not flooder.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ConnectionClosed)
    assert outcome[0].code == 1006


class _OverlapRecorder:
    """An SSL socket stand-in that records how many of its calls ran at once."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.running = 0
        self.most = 0

    def _call(self, result: object) -> object:
        self.running += 1
        self.most = max(self.most, self.running)
        time.sleep(0.002)  # long enough for the other thread to come in
        self.running -= 1
        return result

    def recv(self, size: int) -> object:
        return self._call(b"r")

    def send(self, data: bytes) -> object:
        return self._call(len(data))

    def pending(self) -> object:
        return self._call(0)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def test_a_tls_stream_never_reads_and_writes_its_ssl_object_at_once(
    tcp: tuple[socket.socket, socket.socket],
) -> None:
    """OpenSSL does not support SSL_read and SSL_write at once on one SSL object (a
    TLS 1.3 write can be lost): a receiving and a sending thread take turns."""
    recorder = _OverlapRecorder(tcp[0])
    stream = TLSStream(recorder, THREADS)  # type: ignore[arg-type]

    def reader() -> None:
        for _ in range(100):
            stream.recv(100)
            stream.readable(0)

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(100):
        stream.send(b"w")
    thread.join(timeout(30))
    assert recorder.most == 1


def test_a_taken_over_tcp_socket_sends_small_writes_at_once(
    tcp: tuple[socket.socket, socket.socket],
) -> None:
    """No Nagle: a second small write (a message, TLS's close_notify after a Close) must not
    wait for the client's delayed ACK of the first (45 ms per wss:// connection on the
    servers that leave Nagle on)."""
    server, _ = tcp
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # as Werkzeug leaves it
    Stream(server, THREADS)
    assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
