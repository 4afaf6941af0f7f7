"""WebSocket bytes the load client builds once per run (RFC 6455), and a few it parses.

Nothing here runs per message: the handshake request, its expected
``Sec-WebSocket-Accept``, and the masked frames (payload, Close) are built
before a measured loop starts, so the loop only sends fixed bytes.
"""

from __future__ import annotations

import base64
import hashlib
import os

__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "GUID",
    "PING",
    "PONG",
    "TEXT",
    "accept_key",
    "client_frame",
    "handshake_request",
    "header_size",
    "mask",
    "new_key",
    "parse_close",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

#: RFC 6455 §1.3: the GUID appended to the key to form the accept value.
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def new_key() -> str:
    """A ``Sec-WebSocket-Key``: 16 random bytes, base64 (RFC 6455 §4.1, item 7)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer ``key`` with (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def handshake_request(host: str, port: int, path: str, key: str) -> bytes:
    """The opening handshake (RFC 6455 §4.1): no Origin, no extension or subprotocol offered.

    Offering no ``Sec-WebSocket-Extensions`` keeps permessage-deflate off on
    every server, so all of them move the same bytes.
    """
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {authority}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode("ascii")


def mask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the 4-byte ``key`` repeated (RFC 6455 §5.3); its own inverse.

    One big-integer XOR: linear time in C, fast enough for 1 MiB, and done
    once per run.
    """
    n = len(payload)
    if n == 0:
        return b""
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def client_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, key: bytes | None = None
) -> bytes:
    """One client frame: masked (RFC 6455 §5.3) with ``key``, or a random 4-byte key."""
    if key is None:
        key = os.urandom(4)
    if len(key) != 4:
        raise ValueError("a masking key is 4 bytes")
    n = len(payload)
    head = bytearray([(0x80 if fin else 0) | opcode])
    # RFC 6455 §5.2: 7-bit length, or 126 + 16 bits, or 127 + 64 bits, the
    # minimal one; the mask bit is set on every client frame.
    if n < 126:
        head.append(0x80 | n)
    elif n < 1 << 16:
        head.append(0x80 | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(0x80 | 127)
        head += n.to_bytes(8, "big")
    return bytes(head) + key + mask(payload, key)


def header_size(length: int) -> int:
    """The size of an unmasked (server) frame header for a payload of ``length`` bytes."""
    return 2 if length < 126 else 4 if length < 1 << 16 else 10


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """The status code (None if absent) and reason of a Close frame (RFC 6455 §5.5.1)."""
    if len(payload) < 2:
        return None, ""
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8", "replace")
