"""Messages of every size, both opcodes, both clients; first frames pipelined with the handshake."""

from __future__ import annotations

import pytest

from . import _scenarios
from ._clients import SIZES, payload, size_id
from ._wire import TEXT, RawClient, frame


@pytest.mark.parametrize("size", SIZES, ids=size_id)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_websockets_client(server, kind, size):
    _scenarios.echo_websockets_client(server, "/echo", payload(kind, size), seconds=60)


@pytest.mark.parametrize("size", SIZES, ids=size_id)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_raw_socket(server, kind, size):
    _scenarios.echo_raw_socket(server, "/echo", payload(kind, size))


def test_pipelined_first_frame(server):
    """The handshake and the first frames leave in one sendall: none may be lost."""
    _scenarios.pipelined_first_frame(server, "/echo")


def test_pipelined_first_frame_only(server):
    """A single early frame, then nothing: the server must not wait for more bytes to echo it."""
    client = RawClient.connect(server.address, "/echo", early=frame(TEXT, b"alone"))
    try:
        assert client.recv_message() == "alone"
        _scenarios.close_cleanly(client)
    finally:
        client.close()
