"""Clients for the fault and load tests (``test_load.py``): bad connections, and many at once.

Two kinds of client live here:

* :data:`FAULTS`, connections that go wrong in ten different ways (dropped
  before a request, in the middle of one, right after the handshake, in the
  middle of a frame...), each a function of the server's address run on a
  blocking socket; :func:`run_faults` runs many of them, a bounded number at a
  time, in threads of the test process.
* :func:`run_echo_load`: many WebSocket connections held open at once on raw
  asyncio streams with pre-masked frames, each echoing messages that carry
  their connection id, sequence number and a checksum, checked in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
import zlib
from collections import Counter
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from tests.conftest import timeout

from ._wire import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    RawClient,
    accept_for,
    close_payload,
    frame,
    handshake_request,
    mask,
    new_key,
)

Address = tuple[str, int]

# -- faults ----------------------------------------------------------------------------


def _connect(address: Address) -> socket.socket:
    return socket.create_connection(address, timeout=timeout(10))


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _read_to_eof(sock: socket.socket) -> bytes:
    """What the server writes until it closes (or resets) the connection."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def connect_close(address: Address) -> str:
    """Connect, then close at once: no byte sent."""
    _connect(address).close()
    return "closed"


def connect_reset(address: Address) -> str:
    """Connect, then reset at once (SO_LINGER 0)."""
    _reset(_connect(address))
    return "reset"


def half_request_line_fin(address: Address) -> str:
    """Half a request line, then FIN; what the server answers is read until it closes."""
    sock = _connect(address)
    try:
        sock.sendall(b"GET /ec")
        sock.shutdown(socket.SHUT_WR)
        answer = _read_to_eof(sock)
    finally:
        sock.close()
    # Servers differ: gunicorn closes silently; the others take it for an HTTP/0.9
    # request for /ec and answer it (Werkzeug without a status line). Any is fine here.
    if not answer:
        return "silent close"
    if answer.startswith(b"HTTP/"):
        return f"answered {answer.split(b' ', 2)[1].decode()}"
    return "answered without a status line"


def half_headers_reset(address: Address) -> str:
    """A request line and half the handshake's headers, then RST."""
    sock = _connect(address)
    try:
        sock.sendall(handshake_request(f"{address[0]}:{address[1]}", "/echo", new_key())[:60])
    finally:
        _reset(sock)
    return "reset"


#: Defective handshakes, and the status the middleware must answer each with.
_BAD_HANDSHAKES = [
    ({"Sec-WebSocket-Key": "not a key"}, 400),
    ({"Sec-WebSocket-Version": "8"}, 426),
]


def bad_handshake(address: Address, variant: int) -> str:
    """A defective handshake: the answer (400 or 426) is read whole, then we close."""
    extra, status = _BAD_HANDSHAKES[variant % len(_BAD_HANDSHAKES)]
    client = RawClient(_connect(address))
    try:
        host = f"{address[0]}:{address[1]}"
        client.sock.sendall(handshake_request(host, "/echo", new_key(), extra))
        client.read_response_head()
        client.read_body()
    finally:
        client.close()
    assert client.status == status, (client.status, client.headers, bytes(client.buf))
    return f"answered {status}"


def _ws(address: Address) -> RawClient:
    return RawClient.connect(address, "/echo")


def handshake_fin(address: Address) -> str:
    """A valid handshake, then FIN without a Close frame."""
    _ws(address).close()
    return "closed"


def handshake_reset_mid_frame(address: Address) -> str:
    """A valid handshake, half of a 1000-byte frame, then RST."""
    client = _ws(address)
    client.sock.sendall(frame(BINARY, bytes(1000))[:500])
    client.abort(reset=True)
    return "reset"


#: Not a frame a server may accept: RSV bits set without an extension, a
#: reserved opcode, and no mask.
GARBAGE = b"\xff\x7fgarbage, not a WebSocket frame" * 4


def handshake_garbage(address: Address) -> str:
    """A valid handshake, then garbage: the server fails the connection with 1002."""
    client = _ws(address)
    try:
        client.sock.sendall(GARBAGE)
        closing = client.recv_frame()
        assert (closing.opcode, closing.close_code) == (CLOSE, 1002), closing
    finally:
        client.close()
    return "failed with 1002"


def handshake_close_reset(address: Address) -> str:
    """A valid handshake, a Close frame, then RST before the answer is read."""
    client = _ws(address)
    client.send_close(1000)
    client.abort(reset=True)
    return "reset"


def handshake_huge_frame(address: Address) -> str:
    """A valid handshake, a frame header declaring 2**62 bytes and 4 KiB of them, then FIN."""
    client = _ws(address)
    key = b"\x01\x02\x03\x04"
    head = bytes([0x80 | BINARY, 0x80 | 127]) + struct.pack("!Q", 1 << 62) + key
    try:
        client.sock.sendall(head + mask(bytes(4096), key))
    finally:
        client.close()
    return "closed"


@dataclass(frozen=True)
class Fault:
    name: str
    run: Callable[[Address, int], str]


def _plain(run: Callable[[Address], str]) -> Callable[[Address, int], str]:
    return lambda address, _: run(address)


#: Every way a connection goes wrong in the fault test, in rotation.
FAULTS = [
    Fault("connect-close", _plain(connect_close)),
    Fault("connect-reset", _plain(connect_reset)),
    Fault("half-request-line-fin", _plain(half_request_line_fin)),
    Fault("half-headers-reset", _plain(half_headers_reset)),
    Fault("bad-handshake", bad_handshake),
    Fault("handshake-fin", _plain(handshake_fin)),
    Fault("handshake-reset-mid-frame", _plain(handshake_reset_mid_frame)),
    Fault("handshake-garbage", _plain(handshake_garbage)),
    Fault("handshake-close-reset", _plain(handshake_close_reset)),
    Fault("handshake-huge-frame", _plain(handshake_huge_frame)),
]


@dataclass
class FaultReport:
    """What :func:`run_faults` saw: outcomes per fault, and every client-side failure."""

    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


#: The faults that reach the middleware: a handshake, valid or not.
WEBSOCKET_FAULTS = [f for f in FAULTS if f.name.startswith(("bad-handshake", "handshake-"))]


def run_faults(
    address: Address, count: int, concurrency: int, faults: list[Fault] = FAULTS
) -> FaultReport:
    """Run ``count`` faulty connections, ``faults`` in rotation, ``concurrency`` at a time."""

    def one(i: int) -> tuple[str, str | None, str | None]:
        fault = faults[i % len(faults)]
        try:
            return fault.name, fault.run(address, i // len(faults)), None
        except Exception as exc:
            return fault.name, None, f"#{i} {fault.name}: {exc!r}"

    report = FaultReport()
    start = time.monotonic()
    with ThreadPoolExecutor(concurrency, thread_name_prefix="fault") as pool:
        # Tallied here, in this thread, as the results come.
        for name, outcome, failure in pool.map(one, range(count)):
            if failure is not None:
                report.failures.append(failure)
            else:
                assert outcome is not None
                report.outcomes[name, outcome] += 1
    report.seconds = time.monotonic() - start
    return report


# -- many connections, many messages -----------------------------------------------------

_TEXT_UNIT = "load é ✓ 𝄞 ".encode()
#: The bytes of a message that are not filler: ``cccc:ssss:nnnnnn:`` and ``:crc32hex``.
_OVERHEAD = len("0000:0000:000000:") + len(":00000000")


def _frame_length(conn: int, seq: int, rng: random.Random) -> int:
    """The payload length of message ``seq`` of connection ``conn``."""
    if conn % 10 == 0 and seq % 50 == 49:  # 4 big ones on every 10th connection
        return (65535, 65536, 70_000, 65535)[seq // 50 % 4]
    small = rng.randrange(_OVERHEAD, 125)
    return rng.choice((small, small, 125, 126, 127, rng.randrange(128, 1500)))


def _text_filler(size: int) -> bytes:
    """``size`` bytes of UTF-8 text with multi-byte characters."""
    raw = (_TEXT_UNIT * (size // len(_TEXT_UNIT) + 1))[:size]
    raw = raw.decode("utf-8", "ignore").encode()  # no character cut in half
    return raw + b"x" * (size - len(raw))


def load_message(conn: int, seq: int) -> str | bytes:
    """Message ``seq`` of connection ``conn``: self-describing and checkable.

    ``cccc:ssss:nnnnnn:`` (connection, sequence number, filler size) then the
    filler, then its CRC-32 in hex. Frame payloads are 26 to 1500 bytes, often
    right at the 125/126 frame-length boundary, and 65 535 to 70 000 bytes for
    every 50th message of every 10th connection. Text and binary alternate
    (which one starts depends on ``conn``); text carries multi-byte characters.
    """
    rng = random.Random(conn * 100_003 + seq)
    size = _frame_length(conn, seq, rng) - _OVERHEAD
    text = (conn + seq) % 2 == 0
    raw = _text_filler(size) if text else rng.randbytes(size)
    data = f"{conn:04d}:{seq:04d}:{size:06d}:".encode() + raw + f":{zlib.crc32(raw):08x}".encode()
    return data.decode() if text else data


def describe(conn: int, seq: int, got: str | bytes) -> str:
    """Why ``got`` is not message ``seq`` of connection ``conn``: lost/reordered/corrupted."""
    data = got.encode() if isinstance(got, str) else got
    expected = load_message(conn, seq)
    kind = "text" if isinstance(expected, str) else "binary"
    parts = data.split(b":", 3)
    try:
        got_conn, got_seq, size = int(parts[0]), int(parts[1]), int(parts[2])
        raw, crc = parts[3][:size], parts[3][size + 1 :]
    except (IndexError, ValueError):
        return f"conn {conn} message {seq}: unparseable echo {data[:60]!r}"
    if (got_conn, got_seq) != (conn, seq):
        return f"conn {conn} message {seq}: got message {got_seq} of conn {got_conn} instead"
    if crc != f"{zlib.crc32(raw):08x}".encode():
        return f"conn {conn} message {seq}: corrupted (checksum differs)"
    return f"conn {conn} message {seq}: differs (expected {kind}, got {type(got).__name__})"


def _masked_frame(message: str | bytes) -> bytes:
    if isinstance(message, str):
        return frame(TEXT, message.encode())
    return frame(BINARY, message)


class _Conn:
    """One raw WebSocket client connection on asyncio streams."""

    def __init__(self, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.n = n
        self.reader = reader
        self.writer = writer
        #: Echoes received and checked so far.
        self.checked = 0

    @classmethod
    async def open(cls, n: int, address: Address, path: str) -> _Conn:
        reader, writer = await asyncio.open_connection(*address)
        try:
            key = new_key()
            writer.write(handshake_request(f"{address[0]}:{address[1]}", path, key))
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            assert lines[0].split()[1] == "101", f"conn {n}: handshake answered {lines[0]!r}"
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)
            }
            assert headers.get("sec-websocket-accept") == accept_for(key), headers
        except BaseException:
            writer.close()
            raise
        return cls(n, reader, writer)

    async def recv_frame(self) -> tuple[int, bytes]:
        """The next data or Close frame (opcode, payload); pings are answered on the way.

        Every frame the server sends here is whole (FIN): it echoes whole messages.
        """
        while True:
            b0, b1 = await self.reader.readexactly(2)
            assert b0 & 0xF0 == 0x80 and not b1 & 0x80, f"conn {self.n}: frame {b0:#x} {b1:#x}"
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            opcode, payload = b0 & 0x0F, await self.reader.readexactly(n)
            if opcode == PING:  # the server's keepalive: a frame written whole, like ours
                self.writer.write(frame(PONG, payload))
            elif opcode != PONG:
                return opcode, payload

    async def send_all(self, count: int) -> None:
        for seq in range(count):
            self.writer.write(_masked_frame(load_message(self.n, seq)))
            if seq % 16 == 15:
                await self.writer.drain()
        await self.writer.drain()

    async def check_echoes(self, count: int) -> None:
        for seq in range(count):
            opcode, payload = await self.recv_frame()
            assert opcode in (TEXT, BINARY), f"conn {self.n} message {seq}: opcode {opcode:#x}"
            got = payload.decode() if opcode == TEXT else payload
            if got != load_message(self.n, seq):
                raise AssertionError(describe(self.n, seq, got))
            self.checked += 1

    async def echo(self, count: int) -> None:
        await asyncio.gather(self.send_all(count), self.check_echoes(count))

    async def close(self) -> None:
        """Close 1000, the server's Close 1000 back, then EOF."""
        self.writer.write(frame(CLOSE, close_payload(1000)))
        opcode, payload = await self.recv_frame()
        assert (opcode, payload[:2]) == (CLOSE, close_payload(1000)), (self.n, opcode, payload)
        rest = await self.reader.read()
        assert rest == b"", f"conn {self.n}: bytes after the server's Close: {rest[:60]!r}"

    async def abort(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@dataclass
class LoadReport:
    connections: int
    messages: int
    #: The server's ``/stats`` once every handshake was complete, before any message.
    stats_when_open: dict[str, object]
    open_seconds: float
    echo_seconds: float
    close_seconds: float


async def _bounded(coros: list[Awaitable[None]], seconds: float, what: str) -> None:
    try:
        await asyncio.wait_for(asyncio.gather(*coros), timeout(seconds))
    except asyncio.TimeoutError:
        raise AssertionError(f"{what}: not done within {timeout(seconds):.0f}s") from None


async def _echo_all(conns: list[_Conn], messages: int, stall: float) -> None:
    """Every connection echoes ``messages``; fails if no echo at all arrives for
    ``timeout(stall)`` seconds (a lost message), naming the connections still waiting."""
    task = asyncio.ensure_future(asyncio.gather(*(c.echo(messages) for c in conns)))
    limit = timeout(stall)
    last, since = -1, time.monotonic()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=min(1.0, limit))
            if done:
                task.result()
                return
            progress = sum(c.checked for c in conns)
            if progress != last:
                last, since = progress, time.monotonic()
            elif time.monotonic() - since > limit:
                waiting = [f"conn {c.n} waits for message {c.checked}" for c in conns]
                waiting = [w for c, w in zip(conns, waiting) if c.checked < messages]
                raise AssertionError(
                    f"no echo for {limit:.0f}s, {progress} of {len(conns) * messages} "
                    f"checked; {len(waiting)} connections unfinished: {waiting[:10]}"
                )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _echo_load(
    address: Address,
    stats: Callable[[], dict[str, object]],
    connections: int,
    messages: int,
    connect_concurrency: int,
) -> LoadReport:
    conns: dict[int, _Conn] = {}
    gate = asyncio.Semaphore(connect_concurrency)

    async def open_one(n: int) -> None:
        async with gate:
            conns[n] = await _Conn.open(n, address, "/echo")

    try:
        t0 = time.monotonic()
        await _bounded([open_one(n) for n in range(connections)], 60, "opening the connections")
        # Every handshake is complete before the first message leaves.
        stats_when_open = await asyncio.to_thread(stats)
        t1 = time.monotonic()
        await _echo_all(list(conns.values()), messages, stall=30)
        t2 = time.monotonic()
        await _bounded([c.close() for c in conns.values()], 60, "the closing handshakes")
        t3 = time.monotonic()
    finally:
        await asyncio.gather(*(c.abort() for c in conns.values()))
    return LoadReport(connections, messages, stats_when_open, t1 - t0, t2 - t1, t3 - t2)


def run_echo_load(
    address: Address,
    stats: Callable[[], dict[str, object]],
    connections: int,
    messages: int,
    connect_concurrency: int = 50,
) -> LoadReport:
    """Open ``connections`` WebSockets to ``/echo`` (at most ``connect_concurrency`` handshakes
    in flight), call ``stats`` once all are open, then have each echo ``messages`` checked
    messages, then close each cleanly. Raises AssertionError on the first wrong echo."""
    return asyncio.run(_echo_load(address, stats, connections, messages, connect_concurrency))
