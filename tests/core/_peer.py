"""A WebSocket client peer for the in-memory tier, driven by hand.

wsproto in client mode frames (and masks) what the tests send; raw bytes go
through :meth:`Peer.send_raw` for inputs wsproto would refuse to produce.
"""

from __future__ import annotations

import socket
from typing import Union

from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    TextMessage,
)

from tests.conftest import timeout

Data = Union[str, bytes]


def mask_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """One masked client frame, built by hand (RFC 6455 §5.2)."""
    mask = b"\x37\xfa\x21\x3d"
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Peer:
    """The client end of a socketpair, speaking WebSocket through wsproto."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(timeout(10))
        self.ws = Connection(ConnectionType.CLIENT)
        self.eof = False
        self._events: list[Event] = []
        self._parts: list[Data] = []

    def send(self, data: Data) -> None:
        event: Message[str] | Message[bytes] = (
            TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        )
        self.sock.sendall(self.ws.send(event))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def ping(self, payload: bytes = b"") -> None:
        self.sock.sendall(self.ws.send(Ping(payload=payload)))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.sock.sendall(self.ws.send(CloseConnection(code=code, reason=reason)))

    def next_event(self) -> Event:
        """The next event from the server; fails the test if none comes in time."""
        while not self._events:
            data = self.sock.recv(1 << 20)
            if not data:
                self.eof = True
                raise AssertionError("EOF from the server while waiting for an event")
            self.ws.receive_data(data)
            self._events.extend(self.ws.events())
        return self._events.pop(0)

    def receive(self) -> Data:
        """The next whole message; control frames in between are answered or skipped."""
        while True:
            event = self.next_event()
            if isinstance(event, Message):
                self._parts.append(event.data)
                if event.message_finished:
                    parts, self._parts = self._parts, []
                    if isinstance(event, TextMessage):
                        return "".join(parts)  # type: ignore[arg-type]
                    return b"".join(parts)  # type: ignore[arg-type]
            elif isinstance(event, (Ping, Pong)):
                continue
            else:
                raise AssertionError(f"expected a message, got {event!r}")

    def expect_close(self) -> CloseConnection:
        """Wait for the server's Close frame; answer it if the server started."""
        while True:
            event = self.next_event()
            if isinstance(event, CloseConnection):
                if self.ws.state.name == "REMOTE_CLOSING":
                    self.sock.sendall(self.ws.send(event.response()))
                return event

    def read_to_eof(self) -> bytes:
        """Everything the server still sends, until it closes TCP."""
        chunks = []
        while True:
            data = self.sock.recv(1 << 20)
            if not data:
                self.eof = True
                return b"".join(chunks)
            chunks.append(data)
