"""Messages of every size, both opcodes, both clients; first frames pipelined with the handshake."""

from __future__ import annotations

import pytest

from tests.conftest import timeout

from ._clients import SIZES, payload, ws_connect
from ._wire import BINARY, CLOSE, TEXT, RawClient, frame


def _size_id(size: int) -> str:
    return f"{size >> 20}MiB" if size >= 1 << 20 else str(size)


@pytest.mark.parametrize("size", SIZES, ids=_size_id)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_websockets_client(server, kind, size):
    message = payload(kind, size)
    with ws_connect(server, "/echo") as ws:
        ws.send(message)
        echoed = ws.recv(timeout=timeout(60))
        assert type(echoed) is type(message)
        assert len(echoed) == len(message)
        assert echoed == message


@pytest.mark.parametrize("size", SIZES, ids=_size_id)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_raw_socket(server, kind, size):
    message = payload(kind, size)
    client = RawClient.connect(server.address, "/echo")
    try:
        client.send(message)
        echoed = client.recv_message()
        assert type(echoed) is type(message)
        assert len(echoed) == len(message)
        assert echoed == message
        client.send_close(1000)
        closing = client.recv_message()
        assert not isinstance(closing, (str, bytes))
        assert closing.opcode == CLOSE and closing.close_code == 1000
        assert client.read_until_eof() == b""
    finally:
        client.close()


def test_pipelined_first_frame(server):
    """The handshake and the first frames leave in one sendall: none may be lost."""
    early = frame(TEXT, "pipelined é".encode()) + frame(BINARY, b"\x00\xff" * 100)
    client = RawClient.connect(server.address, "/echo", early=early)
    try:
        assert client.recv_message() == "pipelined é"
        assert client.recv_message() == b"\x00\xff" * 100
        client.send("after")
        assert client.recv_message() == "after"
        client.send_close(1000)
        assert client.recv_message().close_code == 1000
        assert client.read_until_eof() == b""
    finally:
        client.close()


def test_pipelined_first_frame_only(server):
    """A single early frame, then nothing: the server must not wait for more bytes to echo it."""
    client = RawClient.connect(server.address, "/echo", early=frame(TEXT, b"alone"))
    try:
        assert client.recv_message() == "alone"
        client.send_close(1000)
        assert client.recv_message().close_code == 1000
        assert client.read_until_eof() == b""
    finally:
        client.close()
