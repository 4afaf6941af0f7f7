"""wss:// on every supported server that terminates TLS itself (issue 11).

Each server runs once per session with the session's test certificate
(``tls_server``, tests/live/_tls.py), configured as its users do: gunicorn's
``--certfile``/``--keyfile``, Werkzeug's ``make_server(..., ssl_context=(cert,
key))``, ``gevent.pywsgi.WSGIServer(..., keyfile=, certfile=)``,
``eventlet.wsgi.server(eventlet.wrap_ssl(listener, ..., server_side=True),
app)``. The app then gets an ``ssl.SSLSocket`` (or gevent's or eventlet's green
one) to take over. Werkzeug's ``ssl_context="adhoc"`` (``adhoc_server``) gets an
echo and the close codes. Every client verifies the certificate and the host name.
"""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import timeout

from . import _scenarios
from ._clients import new_id, payload, size_id, wait_state, ws_connect
from ._harness import wait_for
from ._shared import duplex_message
from ._wire import BINARY, CLOSE, PING, PONG, TEXT, RawClient, frame, handshake_request, new_key

#: Message sizes: the three frame-length encodings, and large messages that span
#: many TLS records (16 KiB of plaintext each) both ways.
SIZES = [0, 1, 125, 64 << 10, 1 << 20, 16 << 20]
#: The largest plaintext one TLS record carries (RFC 8446 §5.1, RFC 5246 §6.2.1).
MAX_RECORD = 16384


def wss(server, path: str, **kwargs):
    """The ``websockets`` sync client over wss://, verifying the server's certificate.

    TLS 1.2: the client reads in a thread of its own while it writes, which TLS 1.3's
    session tickets make unsafe (``TLS.threaded_client_context``). The raw client, one
    thread, covers TLS 1.3.
    """
    context = server.tls.threaded_client_context(server.address)
    return ws_connect(server, path, ssl=context, **kwargs)


def raw(server, path: str, **kwargs) -> RawClient:
    """The raw client over a TLS socket, verifying the server's certificate."""
    return RawClient.connect(server.address, path, ssl_context=server.ssl_context, **kwargs)


# -- the harness itself ----------------------------------------------------------------


def test_https_get(tls_server):
    """Plain HTTPS reaches the app: what the readiness probe and /stats rely on too."""
    resp = tls_server.get("/hello")
    assert (resp.status, resp.text) == (200, "hello from the app\n")
    resp = tls_server.get("/")
    assert (resp.status, resp.text) == (200, "plain app: GET /\n")


@pytest.mark.parametrize("client", ["raw", "websockets"])
def test_the_certificate_is_verified(tls_server, client):
    """The clients check the chain and the IP address; the server shows our certificate.
    The raw client speaks TLS 1.3, the ``websockets`` client TLS 1.2 (see :func:`wss`)."""
    if client == "raw":
        context, version = tls_server.ssl_context, "TLSv1.3"
    else:
        context, version = tls_server.tls.threaded_client_context(tls_server.address), "TLSv1.2"
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    sock = socket.create_connection(tls_server.address, timeout=timeout(10))
    with context.wrap_socket(sock, server_hostname=tls_server.host) as tls:
        cert = tls.getpeercert()
        assert ("IP Address", "127.0.0.1") in cert["subjectAltName"], cert
        assert tls.version() == version


# -- echo ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=size_id)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_websockets_client(tls_server, kind, size):
    message = payload(kind, size)
    with wss(tls_server, "/echo") as ws:
        ws.send(message)
        echoed = ws.recv(timeout=timeout(60))
    assert type(echoed) is type(message)
    assert len(echoed) == len(message)
    assert echoed == message


@pytest.mark.parametrize("size", SIZES, ids=size_id)
def test_echo_raw_socket(tls_server, size):
    message = payload("binary", size)
    client = raw(tls_server, "/echo")
    try:
        client.send(message)
        echoed = client.recv_message()
        assert type(echoed) is bytes
        assert len(echoed) == len(message)
        assert echoed == message
        _scenarios.close_cleanly(client)
    finally:
        client.close()


def _early_frames(server, kind: str) -> tuple[bytes, list[str | bytes]]:
    """Frames to send with the handshake in one TLS record, and the messages they carry.

    ``small``: two short frames. ``full-record``: one binary frame that fills the record
    to 16 KiB, more than the 8 KiB a server's buffered reader takes at a time, so part of
    it stays decrypted in the server's SSL object (``SSLSocket.pending()``), not in the
    socket: a server that waits for the socket to be readable first never sees it.
    """
    if kind == "small":
        messages: list[str | bytes] = ["pipelined é", b"\x00\xff" * 100]
        return frame(TEXT, messages[0].encode()) + frame(BINARY, messages[1]), messages
    host = f"{server.host}:{server.port}"
    head = len(handshake_request(host, "/echo", new_key()))
    size = MAX_RECORD - head - (2 + 2 + 4)  # header: 2 bytes, 16-bit length, mask key
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    return frame(BINARY, data), [data]


@pytest.mark.parametrize("kind", ["small", "full-record"])
def test_pipelined_first_frame(tls_server, kind):
    """The handshake and the first frames leave in one TLS write (one record): none may be
    lost, and the server must not wait for more bytes to echo them."""
    early, messages = _early_frames(tls_server, kind)
    host = f"{tls_server.host}:{tls_server.port}"
    assert len(handshake_request(host, "/echo", new_key()) + early) <= MAX_RECORD
    client = raw(tls_server, "/echo", early=early)
    try:
        # Within seconds, not at the next wake-up of a connection that waits on the
        # socket while the bytes sit in the SSL object (its keepalive ping, 20 s).
        client.sock.settimeout(timeout(5))
        for message in messages:
            assert client.recv_message() == message
        client.send("after")
        assert client.recv_message() == "after"
        _scenarios.close_cleanly(client)
    finally:
        client.close()


def test_fifty_connections_in_a_row(tls_server):
    """Each one opens, echoes and closes; the worker's descriptors are back to the baseline."""
    baseline = tls_server.settle()
    for i in range(50):
        with wss(tls_server, "/echo") as ws:
            ws.send(f"connection {i}")
            assert ws.recv(timeout=timeout(10)) == f"connection {i}"
    seen: list[int] = []

    def settled() -> bool:
        seen.append(tls_server.stats()["fds"])
        return seen[-1] <= baseline["fds"]

    try:
        wait_for(settled, 15, "the worker's open descriptors to return to the baseline")
    except AssertionError:
        raise AssertionError(f"{seen[-1]} descriptors open, {baseline['fds']} before") from None


#: Sequential TLS 1.3 connections of the test below: the first report of a hang
#: (gunicorn gthread with --certfile) was one loop in three of 300-400.
IN_A_ROW = 400


def test_hundreds_of_tls13_connections_in_a_row(tls_server):
    """Handshake, echo, close, IN_A_ROW times, with the single-threaded raw client (TLS
    1.3, session tickets and all): a wait the server's or our side left hanging on bytes
    inside an SSL object fails this test instead of staying rare."""
    for i in range(IN_A_ROW):
        client = raw(tls_server, "/echo")
        try:
            client.send(f"connection {i}")
            assert client.recv_message() == f"connection {i}"
            _scenarios.close_cleanly(client)
        finally:
            client.close()


def test_duplex_websockets(tls_server):
    """The handler receives while a second thread (greenlet) sends on the same TLS socket."""
    n = 500
    errors: list[BaseException] = []
    with wss(tls_server, f"/duplex?n={n}") as ws:

        def send_all() -> None:
            try:
                for i in range(n):
                    ws.send(duplex_message("c", i))
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        sender = threading.Thread(target=send_all, name="client-sender", daemon=True)
        sender.start()
        received = [ws.recv(timeout=timeout(30)) for _ in range(n)]
        summary = ws.recv(timeout=timeout(30))
        sender.join(timeout(30))
        assert not sender.is_alive(), "the client's sender did not finish"
    assert not errors, errors
    assert received == [duplex_message("s", i) for i in range(n)]
    assert summary == "ok", f"the server's receiving side: {summary}"


# -- ping and pong -------------------------------------------------------------------------


def test_ping_pong_websockets(tls_server):
    with wss(tls_server, "/echo") as ws:
        assert ws.ping(b"tls ping").wait(timeout(10)), "no pong"
        ws.send("still open")
        assert ws.recv(timeout=timeout(10)) == "still open"


def test_ping_pong_raw(tls_server):
    client = raw(tls_server, "/echo")
    try:
        client.send_frame(PING, b"tls ping")
        pong = client.recv_frame()
        assert (pong.opcode, pong.payload) == (PONG, b"tls ping")
        _scenarios.close_cleanly(client)
    finally:
        client.close()


def test_server_keepalive_ping_raw(tls_server):
    """The server's keepalive ping (sent while the handler waits in receive) arrives; our
    pong keeps the connection open."""
    cid = new_id()
    client = raw(tls_server, f"/keepalive-quick?id={cid}")
    try:
        for _ in range(3):
            ping = client.recv_frame()
            assert ping.opcode == PING, ping
            client.send_frame(PONG, ping.payload)
        client.send("still open")
        assert client.recv_message() == "still open"
        _scenarios.close_cleanly(client)
    finally:
        client.close()
    _scenarios.assert_handler_ended(tls_server, cid, "end-of-stream", 1000, "")


# -- close codes, both ways -----------------------------------------------------------------

#: A client's Close: 1000 ends the handler's receive loop quietly, 4000 raises ConnectionClosed.
CLIENT_CLOSES = [(1000, "", "end-of-stream"), (4000, "bye", "ConnectionClosed")]
#: The ``/close`` handler's codes and reasons.
SERVER_CLOSES = [(1001, "going away"), (4001, "server bye")]


@pytest.mark.parametrize(("code", "reason", "how"), CLIENT_CLOSES, ids=["1000", "4000"])
def test_client_close_reaches_handler_websockets(tls_server, code, reason, how):
    cid = new_id()
    with wss(tls_server, f"/record?id={cid}") as ws:
        ws.send("hello")
        assert ws.recv(timeout=timeout(10)) == "hello"
        ws.close(code, reason)
        assert ws.close_code == code  # the server echoed our code
    _scenarios.assert_handler_ended(tls_server, cid, how, code, reason)


@pytest.mark.parametrize(("code", "reason", "how"), CLIENT_CLOSES, ids=["1000", "4000"])
def test_client_close_reaches_handler_raw(tls_server, code, reason, how):
    """Our Close is echoed as the last frame, then EOF; the handler saw code and reason."""
    cid = new_id()
    client = raw(tls_server, f"/record?id={cid}")
    try:
        client.send("hello")
        assert client.recv_message() == "hello"
        client.send_close(code, reason)
        echo = client.recv_message()
        assert not isinstance(echo, (str, bytes)), echo
        assert (echo.opcode, echo.close_code, echo.close_reason) == (CLOSE, code, reason)
        assert client.read_until_eof() == b""
    finally:
        client.close()
    _scenarios.assert_handler_ended(tls_server, cid, how, code, reason)


@pytest.mark.parametrize(("code", "reason"), SERVER_CLOSES, ids=["1001", "4001"])
def test_server_close_reaches_client_websockets(tls_server, code, reason):
    path = _scenarios.close_path(code, reason)
    with wss(tls_server, path) as ws, pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=timeout(10))
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (code, reason)


@pytest.mark.parametrize(("code", "reason"), SERVER_CLOSES, ids=["1001", "4001"])
def test_server_close_reaches_client_raw(tls_server, code, reason):
    """The handler's Close frame, our Close back, then EOF: no further frame, no HTTP."""
    client = raw(tls_server, _scenarios.close_path(code, reason))
    try:
        closing = client.recv_message()
        assert not isinstance(closing, (str, bytes)), closing
        assert (closing.opcode, closing.close_code, closing.close_reason) == (CLOSE, code, reason)
        client.send_close(code, reason)
        assert client.read_until_eof() == b""
    finally:
        client.close()


def test_abrupt_disconnect_raw(tls_server):
    """The client drops TCP without a Close frame or TLS close_notify: 1006 for the handler."""
    cid = new_id()
    client = raw(tls_server, f"/record?id={cid}")
    try:
        client.send("hello")
        assert client.recv_message() == "hello"
    finally:
        client.abort()
    rec = wait_state(tls_server, cid, "ended")
    assert (rec["how"], rec["code"]) == ("ConnectionClosed", 1006), rec


# -- Werkzeug's ssl_context="adhoc" -----------------------------------------------------------


@pytest.mark.parametrize("size", [125, 1 << 20], ids=size_id)
def test_adhoc_echo(adhoc_server, size):
    message = payload("binary", size)
    with wss(adhoc_server, "/echo") as ws:
        ws.send(message)
        assert ws.recv(timeout=timeout(30)) == message
    client = raw(adhoc_server, "/echo", early=frame(TEXT, b"pipelined"))
    try:
        assert client.recv_message() == "pipelined"
        client.send(message)
        assert client.recv_message() == message
        _scenarios.close_cleanly(client)
    finally:
        client.close()


def test_adhoc_close_codes(adhoc_server):
    cid = new_id()
    with wss(adhoc_server, f"/record?id={cid}") as ws:
        ws.send("hello")
        assert ws.recv(timeout=timeout(10)) == "hello"
        ws.close(4000, "bye")
    _scenarios.assert_handler_ended(adhoc_server, cid, "ConnectionClosed", 4000, "bye")
    path = _scenarios.close_path(4001, "server bye")
    with wss(adhoc_server, path) as ws, pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=timeout(10))
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "server bye")
