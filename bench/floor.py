"""The floor: the least work Python can do to echo WebSocket messages.

NOT A SERVER TO USE. It validates nothing that an echo does not need (no
Origin, no UTF-8 check, no reserved bits, no close codes, no limits on the
request head beyond a size, no timeouts), answers every request with 101, and
trusts the client to mask. It exists so that the benchmark can show how far
each library is from the cost of the bare protocol on a thread-per-connection
server.

Per connection, one thread and a blocking socket: read the request head up to
the blank line, answer 101 with Sec-WebSocket-Accept (RFC 6455 §4.2.2), then
per frame: read the 2-byte header, the extended length (16 or 64 bits) and the
mask key, ``recv_into`` a reusable buffer for the payload, unmask it with one
``int.from_bytes`` XOR, and send header + payload in one ``sendall``. Every
frame is echoed as it came (same FIN bit and opcode, so a fragmented message
is echoed fragmented); a Ping gets a Pong; a Close is echoed and the socket
closed (RFC 6455 §5.5.1).
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading

#: RFC 6455 §1.3: appended to Sec-WebSocket-Key before hashing.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The largest payload echoed, as the other targets' max message size; a frame
#: that claims more ends the connection (the buffer is allocated to its size).
MAX_PAYLOAD = 4 * 2**20
_MAX_HEAD = 16384


def serve(listener: socket.socket) -> None:
    """Accept connections on ``listener`` forever, one daemon thread each."""
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_connection, args=(conn,), daemon=True).start()


def _connection(sock: socket.socket) -> None:
    try:
        # Header and payload go out in one sendall; without Nagle nothing
        # waits for an ACK (asyncio and websockets' sync server do the same).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        early = _handshake(sock)
        if early is not None:
            _echo(sock, early)
    except OSError:
        pass  # the client went away
    finally:
        sock.close()


def _handshake(sock: socket.socket) -> bytes | None:
    """Answer 101 to the request head; return the bytes read past it (None: no request)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk or len(head) > _MAX_HEAD:
            return None
        head += chunk
    head, _, early = head.partition(b"\r\n\r\n")
    key = b""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    return early


def _echo(sock: socket.socket, early: bytes) -> None:
    """Echo frames until a Close or the end of the stream."""
    buffer = bytearray()  # the payload buffer, grown to the largest frame seen (none while idle)
    pending = memoryview(early)  # bytes read with the request head, consumed first

    def read_into(view: memoryview) -> bool:
        nonlocal pending
        if pending:
            n = min(len(pending), len(view))
            view[:n] = pending[:n]
            pending = pending[n:]
            view = view[n:]
        while view:
            n = sock.recv_into(view)
            if n == 0:
                return False
            view = view[n:]
        return True

    header = memoryview(bytearray(14))
    while True:
        if not read_into(header[:2]):
            return
        first, second = header[0], header[1]
        length = second & 0x7F
        extra = 2 if length == 126 else 8 if length == 127 else 0
        if not read_into(header[2 : 2 + extra + 4]):  # extended length, then the mask key
            return
        if extra:
            length = int.from_bytes(header[2 : 2 + extra], "big")
        if length > MAX_PAYLOAD:
            return
        mask = bytes(header[2 + extra : 6 + extra])
        if length > len(buffer):
            buffer = bytearray(length)
        payload_view = memoryview(buffer)[:length]
        if not read_into(payload_view):
            return
        # RFC 6455 §5.3: XOR with the mask key repeated; as one big integer,
        # the whole payload costs one C-level operation.
        key = (mask * (length // 4 + 1))[:length]
        payload = (int.from_bytes(payload_view, "little") ^ int.from_bytes(key, "little")).to_bytes(
            length, "little"
        )
        opcode = first & 0x0F
        if opcode == 0x9:  # Ping: answer with a Pong carrying the same payload
            first = 0x8A
        elif opcode == 0xA:  # Pong: nothing to do
            continue
        if length < 126:
            out = struct.pack("!BB", first, length)
        elif length < 65536:
            out = struct.pack("!BBH", first, 126, length)
        else:
            out = struct.pack("!BBQ", first, 127, length)
        sock.sendall(out + payload)
        if opcode == 0x8:  # Close: echoed (same code); the server closes the TCP connection first
            return
