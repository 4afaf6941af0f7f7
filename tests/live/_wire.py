"""WebSocket on the wire, by hand: a raw-socket client for the live tests.

Frames are built and read here without any WebSocket library, so the tests
see exactly the bytes the server writes (and nothing it should not write).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import ssl
import struct
from dataclasses import dataclass

from tests.conftest import timeout

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` (fast for 16 MiB payloads)."""
    n = len(payload)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        n, "little"
    )


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, masked: bool = True) -> bytes:
    """One frame (RFC 6455 §5.2), masked as a client's must be."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + mask(payload, key)


def close_payload(code: int | None = None, reason: str = "") -> bytes:
    if code is None:
        return b""
    return struct.pack("!H", code) + reason.encode("utf-8")


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def handshake_request(host: str, path: str, key: str, extra: dict[str, str] | None = None) -> bytes:
    headers = {
        "Host": host,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        **(extra or {}),
    }
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes
    rsv: int = 0
    masked: bool = False

    @property
    def close_code(self) -> int | None:
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8")


class RawClient:
    """A WebSocket client on a plain socket, every byte by hand."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(timeout(30))
        self.buf = bytearray()
        self.status = 0
        self.headers: dict[str, str] = {}

    @classmethod
    def connect(
        cls,
        address: tuple[str, int],
        path: str,
        *,
        early: bytes = b"",
        extra: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> RawClient:
        """Connect and complete the handshake; ``early`` bytes go in the same ``sendall``.

        With ``ssl_context``, over TLS (wss://): the handshake and ``early`` then leave in
        one TLS write, one record if they fit in 16 KiB.
        """
        sock = socket.create_connection(address, timeout=timeout(10))
        try:
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=address[0])
        except BaseException:
            sock.close()
            raise
        client = cls(sock)
        try:
            key = new_key()
            host = f"{address[0]}:{address[1]}"
            sock.sendall(handshake_request(host, path, key, extra) + early)
            client.read_response_head()
            if client.status != 101:
                client.read_body()
            assert client.status == 101, (
                f"handshake answered {client.status}: {client.headers}; body {bytes(client.buf)!r}"
            )
            assert client.headers.get("sec-websocket-accept") == accept_for(key), client.headers
        except BaseException:
            sock.close()
            raise
        return client

    # -- reading ------------------------------------------------------------------------

    def _fill(self, what: str) -> None:
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise AssertionError(f"no data from the server in time while reading {what}") from None
        if not data:
            raise EOFError(f"EOF from the server while reading {what}")
        self.buf += data

    def _take(self, n: int, what: str) -> bytes:
        while len(self.buf) < n:
            self._fill(what)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_response_head(self) -> None:
        while b"\r\n\r\n" not in self.buf:
            self._fill("the handshake response")
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def read_body(self) -> None:
        """Read a non-101 response's body (by Content-Length) into the buffer."""
        length = int(self.headers.get("content-length", "0"))
        with contextlib.suppress(EOFError):
            while len(self.buf) < length:
                self._fill("the response body")

    def recv_frame(self) -> Frame:
        b0, b1 = self._take(2, "a frame header")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2, "a frame length"))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8, "a frame length"))[0]
        key = self._take(4, "a mask key") if b1 & 0x80 else None
        payload = self._take(n, "a frame payload")
        if key is not None:
            payload = mask(payload, key)
        return Frame(bool(b0 & 0x80), b0 & 0x0F, payload, (b0 >> 4) & 0x7, key is not None)

    def recv_message(self) -> str | bytes | Frame:
        """The next message (fragments joined); a Close frame is returned as the Frame."""
        parts: list[bytes] = []
        opcode = None
        while True:
            f = self.recv_frame()
            assert not f.masked, "the server masked a frame"
            assert f.rsv == 0, f"RSV bits set: {f}"
            if f.opcode == CLOSE:
                assert opcode is None, "Close in the middle of a fragmented message"
                return f
            if f.opcode == PING:
                self.send_frame(PONG, f.payload)
                continue
            if f.opcode == PONG:
                continue
            if opcode is None:
                assert f.opcode in (TEXT, BINARY), f"unexpected first frame {f.opcode:#x}"
                opcode = f.opcode
            else:
                assert f.opcode == CONT, f"expected a continuation, got {f.opcode:#x}"
            parts.append(f.payload)
            if f.fin:
                data = b"".join(parts)
                return data.decode("utf-8") if opcode == TEXT else data

    def read_until_eof(self, seconds: float = 15) -> bytes:
        """Everything the server writes until it closes TCP, within ``timeout(seconds)``."""
        self.sock.settimeout(timeout(seconds))
        data = bytes(self.buf)
        self.buf.clear()
        while True:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError(
                    f"the server did not close the TCP connection within {timeout(seconds)}s; "
                    f"got {data[:200]!r}"
                ) from None
            except ConnectionResetError:
                raise AssertionError(
                    f"the connection was reset instead of closed; got {data[:200]!r} before"
                ) from None
            if not chunk:
                return data
            data += chunk

    # -- writing ------------------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes = b"", *, fin: bool = True) -> None:
        self.sock.sendall(frame(opcode, payload, fin=fin))

    def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.send_frame(TEXT, message.encode("utf-8"))
        else:
            self.send_frame(BINARY, message)

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        self.send_frame(CLOSE, close_payload(code, reason))

    def close(self) -> None:
        self.sock.close()

    def abort(self, reset: bool = False) -> None:
        """Drop the TCP connection without a Close frame: FIN, or RST with ``reset``."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
