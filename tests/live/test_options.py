"""Protocol options on every server: Origin allow-list (403), the accept hook (its own status,
or the subprotocol and headers it chose), keepalive against a client that stops answering, and
compression negotiated and used on the wire."""

from __future__ import annotations

import json
import socket
import zlib

import pytest

from tests.conftest import timeout

from ._clients import new_id, ws_connect
from ._scenarios import assert_handler_ended, close_cleanly
from ._wire import CLOSE, PING, TEXT, RawClient, frame, new_key
from ._wire import handshake_request as handshake


def _request(server, path: str, extra: dict[str, str]) -> RawClient:
    """Send a handshake; the client with the response head read (any status)."""
    sock = socket.create_connection(server.address, timeout=timeout(10))
    client = RawClient(sock)
    sock.sendall(handshake(f"{server.host}:{server.port}", path, new_key(), extra))
    client.read_response_head()
    return client


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "https://app.example.evil.example", "null", None]
)
def test_a_forbidden_origin_gets_403(server, origin):
    extra = {} if origin is None else {"Origin": origin}
    client = _request(server, "/strict", extra)
    try:
        assert client.status == 403
        client.read_body()
        text = bytes(client.buf).decode()
        assert "is not allowed to open a WebSocket here" in text
    finally:
        client.close()


@pytest.mark.parametrize("origin", ["https://app.example", "https://a.b.app.example"])
def test_an_allowed_origin_is_upgraded(server, origin):
    client = RawClient.connect(server.address, "/strict", extra={"Origin": origin})
    try:
        client.send("hello")
        assert client.recv_message() == "hello"
        close_cleanly(client)
    finally:
        client.close()


def test_the_accept_hook_rejects_with_its_status_body_and_headers(server):
    client = _request(server, "/auth", {})
    try:
        assert client.status == 401
        assert client.headers["www-authenticate"] == 'Token realm="test"'
        client.read_body()
        assert bytes(client.buf).decode() == "a token is needed\n"
    finally:
        client.close()


def test_the_accept_hook_chooses_the_subprotocol_and_adds_headers(server):
    with ws_connect(server, "/auth?token=secret&proto=two", subprotocols=["one", "two"]) as ws:
        assert ws.subprotocol == "two"
        assert ws.response.headers["X-Test-User"] == "ada"
        assert json.loads(ws.recv()) == {"user": "ada", "subprotocol": "two"}
        ws.send("after the hook")
        assert ws.recv() == "after the hook"


def test_a_client_that_stops_answering_gets_1011_and_the_handler_ends(server):
    """The raw client never answers the keepalive ping: Close 1011 follows, then EOF, and the
    handler blocked in receive() gets ConnectionClosed(1011)."""
    cid = new_id()
    client = RawClient.connect(server.address, f"/keepalive-quick?id={cid}")
    try:
        ping = client.recv_frame()
        assert ping.opcode == PING
        closing = client.recv_frame()
        assert (closing.opcode, closing.close_code) == (CLOSE, 1011)
        assert closing.close_reason == "keepalive ping timeout"
        assert client.read_until_eof() == b""
    finally:
        client.close()
    assert_handler_ended(server, cid, "ConnectionClosed", 1011, "keepalive ping timeout")


def test_a_client_that_answers_pings_stays_connected(server):
    cid = new_id()
    # The websockets client answers pings by itself; sleep past several ping timeouts.
    with ws_connect(server, f"/keepalive-quick?id={cid}") as ws:
        for i in range(4):
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.5)
            ws.send(f"still here {i}")
            assert ws.recv() == f"still here {i}"


OFFER = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_compression_is_negotiated_and_used_on_the_wire(server):
    message = ("the same words again and again " * 4000).encode()  # ~120 KiB
    client = RawClient.connect(server.address, "/echo", extra=OFFER)
    try:
        agreed = client.headers["sec-websocket-extensions"]
        assert agreed.startswith("permessage-deflate")
        compressed = _deflate(message)
        assert len(compressed) < len(message) // 20
        # rsv1 set on the first (and only) frame: a compressed message.
        raw = bytearray(frame(TEXT, compressed))
        raw[0] |= 0x40
        client.sock.sendall(bytes(raw))
        reply = client.recv_frame()
        assert reply.opcode == TEXT and reply.rsv & 0x4, reply
        assert len(reply.payload) < len(message) // 20
        decompressor = zlib.decompressobj(wbits=-15)
        assert decompressor.decompress(reply.payload + b"\x00\x00\xff\xff") == message
        close_cleanly(client)
    finally:
        client.close()


def test_compression_can_be_off_for_a_path(server):
    client = RawClient.connect(server.address, "/plain", extra=OFFER)
    try:
        assert "sec-websocket-extensions" not in client.headers
        client.send("plain")
        reply = client.recv_frame()
        assert (reply.opcode, reply.rsv, reply.payload) == (TEXT, 0, b"plain")
        close_cleanly(client)
    finally:
        client.close()
