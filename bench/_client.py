"""The benchmark's load client: plain sockets, pre-built frames, lean loops.

It must not be the bottleneck, so nothing protocol-shaped runs per message
beyond what RFC 6455 needs of a client reading an echo: the handshake request
and every client frame (the payload, masked once with a random key as §5.3
requires; the Close) are built before a run and sent as the same bytes each
time; echoes are read with ``recv_into`` into one preallocated buffer per
connection and parsed in place. The first echo of each connection and the last
are compared with the payload byte for byte; the ones in between have their
opcode and length checked.

Sockets stay in blocking mode with kernel timeouts (``SO_RCVTIMEO``,
``SO_SNDTIMEO``) rather than Python's ``settimeout``, which would add a
``poll`` system call before every ``recv`` and ``send``: every wait is still
bounded, at ``max_seconds`` plus :data:`IO_MARGIN`.

The workloads (the orchestrator imports these names):

* :func:`roundtrips`: W1-W3, one connection, one message at a time;
* :func:`concurrent`: W4, many connections, one message in flight on each;
* :func:`handshakes`: W5, open, handshake, close, one after another;
* :func:`idle`: W6, connections held open while the caller measures the server.

Any protocol failure raises :class:`BenchError` naming the workload, the
endpoint and what was seen. Loopback only: :func:`loopback_only`.

CPU figures are :func:`time.process_time` (user + system of the whole
process): run nothing else in the client's process during a measurement.
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Callable

from ._frames import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    accept_key,
    client_frame,
    handshake_request,
    header_size,
    new_key,
    parse_close,
)

__all__ = [
    "BenchError",
    "Endpoint",
    "Sample",
    "concurrent",
    "handshakes",
    "idle",
    "loopback_only",
    "roundtrips",
]

#: Seconds added to a workload's ``max_seconds`` to bound any single wait
#: (connect, a read, a write, a closing handshake). On loopback a healthy
#: server answers in milliseconds; this only decides how soon a stall fails.
IO_MARGIN = 5.0

#: Seconds the client waits, after sending its Close, for the server's Close
#: and then for the server to close the TCP connection (RFC 6455 §7.1.1).
#: On loopback a server does both within milliseconds.
CLOSE_GRACE = 1.0

#: Largest handshake response accepted, in bytes.
MAX_RESPONSE = 16 * 1024

#: Socket buffer size asked for when the payload is large (W2, W3), so that a
#: whole echo fits in flight. Linux caps it at net.core.[rw]mem_max.
LARGE_BUFFER = 4 * 1024 * 1024

_LOOPBACK = {"127.0.0.1": socket.AF_INET, "localhost": socket.AF_INET, "::1": socket.AF_INET6}
_NORMAL_CLOSE = client_frame(CLOSE, (1000).to_bytes(2, "big"))
_RST_LINGER = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class Endpoint:
    """A WebSocket echo endpoint on this machine: ``ws://host:port/path``."""

    host: str
    port: int
    path: str = "/echo"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{self.path}"


@dataclass(frozen=True)
class Sample:
    """One measured run of a workload.

    ``messages``: echoes completed (W1-W4), connections opened and closed
    (W5), connections held (W6). ``payload_bytes``: payload bytes sent one
    way, each echoed back in full. ``wall``: seconds of
    :func:`time.perf_counter` around the measured loop only; ``client_cpu``:
    seconds of this process's CPU (user + system) over the same span.
    ``notes``: how the server's side of the closing handshakes deviated
    from RFC 6455, if it did (never a reason for the run to fail).
    """

    messages: int
    payload_bytes: int
    wall: float
    client_cpu: float
    #: How the closing handshakes deviated from RFC 6455 §7.1.1, if they did:
    #: e.g. "3 of 1000 closing handshakes: the server closed TCP without
    #: answering our Close (the client sees 1006)". Empty when all were clean.
    notes: tuple[str, ...] = ()


class _Closings:
    """How the closing handshakes of a run went where they deviate from RFC 6455 §7.1.1."""

    def __init__(self) -> None:
        self.total = 0
        self.seen: dict[str, int] = {}
        self.samples: dict[str, bytes] = {}

    def note(self, what: str, data: bytes | bytearray = b"") -> None:
        self.seen[what] = self.seen.get(what, 0) + 1
        if data and what not in self.samples:
            self.samples[what] = bytes(data[:60])

    def notes(self) -> tuple[str, ...]:
        return tuple(
            f"{count} of {self.total} closing handshakes: the server {what}"
            + (f" ({self.samples[what]!r}...)" if what in self.samples else "")
            for what, count in self.seen.items()
        )


class BenchError(Exception):
    """A protocol failure: bad handshake, wrong echo, unexpected Close or EOF, a timeout."""


def loopback_only(ep: Endpoint) -> None:
    """Raise ValueError unless ``ep`` is on the loopback interface.

    The benchmark loads a server as hard as it can: never point it at another
    machine.
    """
    if ep.host not in _LOOPBACK:
        raise ValueError(
            f"the benchmark client connects to loopback only (127.0.0.1, ::1, localhost), "
            f"not {ep.host!r}"
        )


class _Run:
    """What one workload run shares: the endpoint, the pre-built bytes, the bounds."""

    def __init__(
        self,
        ep: Endpoint,
        workload: str,
        max_seconds: float,
        payload: bytes = b"",
        text: bool = False,
    ) -> None:
        loopback_only(ep)
        if not ep.path.startswith("/") or any(c in ep.path for c in " \r\n\t"):
            raise ValueError(f"not a request path: {ep.path!r}")
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, not {max_seconds!r}")
        self.ep = ep
        self.workload = workload
        self.closings = _Closings()
        self.family = _LOOPBACK[ep.host]
        # "localhost" could resolve to ::1 first; the servers listen on 127.0.0.1.
        host = "127.0.0.1" if ep.host == "localhost" else ep.host
        self.address: tuple[str, int] = (host, ep.port)
        self.io_timeout = max_seconds + IO_MARGIN
        key = new_key()
        self.request = handshake_request(ep.host, ep.port, ep.path, key)
        self.accept = accept_key(key).encode("ascii")
        if text:
            payload.decode("utf-8")  # a text message must be UTF-8 (RFC 6455 §5.6)
        self.payload = payload
        self.payload_view = memoryview(payload)
        self.length = len(payload)
        self.opcode = TEXT if text else BINARY
        # Built once: the same masked bytes go out for every message.
        self.frame = client_frame(self.opcode, payload)
        # Room for a whole echo plus whatever follows it in the same reads.
        self.capacity = header_size(self.length) + self.length + 64 * 1024
        self.sockbuf = LARGE_BUFFER if self.length >= 64 * 1024 else 0

    def fail(self, what: str) -> BenchError:
        return BenchError(f"{self.workload} on {self.ep}: {what}")

    @contextlib.contextmanager
    def phase(self, what: str | Callable[[], str]) -> Iterator[None]:
        """Turn socket errors during ``what`` into a :class:`BenchError` that says so.

        ``what`` may be a callable, called on failure (to say how far it got).
        """
        try:
            yield
        except (BlockingIOError, socket.timeout, OSError) as exc:
            name = what() if callable(what) else what
            if not isinstance(exc, (BlockingIOError, socket.timeout)):
                raise self.fail(f"{type(exc).__name__} during {name}: {exc}") from exc
            # SO_RCVTIMEO / SO_SNDTIMEO expired (EAGAIN), or connect timed out.
            raise self.fail(
                f"timed out during {name}: the server sent nothing for max_seconds "
                f"+ {IO_MARGIN:g} s"
            ) from exc

    def connect(self, limit: float | None = None) -> socket.socket:
        """A connected TCP socket, each wait on it bounded by ``limit`` (default: io_timeout)."""
        limit = self.io_timeout if limit is None else min(limit, self.io_timeout)
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            sock.settimeout(limit)
            sock.connect(self.address)
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Kernel timeouts on a blocking socket: bounded waits, no extra poll().
            seconds = int(limit)
            tv = struct.pack("ll", seconds, int((limit - seconds) * 1e6))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
            if self.sockbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sockbuf)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.sockbuf)
        except BaseException:
            sock.close()
            raise
        return sock

    def handshake(self, sock: socket.socket) -> bytes:
        """Send the request, check the 101 response; return the bytes read past it."""
        sock.sendall(self.request)
        return self.response(sock)

    def response(self, sock: socket.socket) -> bytes:
        """Read and check the handshake response; return the bytes read past it."""
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                raise self.fail(f"EOF during the handshake; the server sent {data[:300]!r}")
            data += chunk
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(data) > MAX_RESPONSE:
                raise self.fail(f"no end to the handshake response after {len(data)} bytes")
        lines = data[:end].split(b"\r\n")
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or status[1] != b"101":
            raise self.fail(f"handshake answered {lines[0]!r}, not 101; {data[:300]!r}")
        # RFC 6455 §4.2.2 (checked by the client per §4.1): Upgrade, Connection,
        # and the accept value derived from our key.
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"upgrade", b"").lower() != b"websocket":
            raise self.fail(f"101 without Upgrade: websocket: {data[:end]!r}")
        tokens = [t.strip() for t in headers.get(b"connection", b"").lower().split(b",")]
        if b"upgrade" not in tokens:
            raise self.fail(f"101 without Connection: Upgrade: {data[:end]!r}")
        if headers.get(b"sec-websocket-accept") != self.accept:
            raise self.fail(
                f"Sec-WebSocket-Accept is {headers.get(b'sec-websocket-accept')!r}, "
                f"expected {self.accept!r}"
            )
        if b"sec-websocket-extensions" in headers:
            raise self.fail(
                "the server chose an extension although none was offered: "
                f"{headers[b'sec-websocket-extensions']!r}"
            )
        return data[end + 4 :]

    def open(self, capacity: int | None = None) -> _Conn:
        sock = self.connect()
        try:
            early = self.handshake(sock)
        except BaseException:
            sock.close()
            raise
        return _Conn(self, sock, early, self.capacity if capacity is None else capacity)


class _Conn:
    """One client connection and its read buffer, parsed in place."""

    __slots__ = (
        "buf",
        "close_code",
        "closing",
        "end",
        "first",
        "fragment",
        "inflight",
        "run",
        "sock",
        "start",
        "view",
    )

    def __init__(self, run: _Run, sock: socket.socket, early: bytes, capacity: int) -> None:
        self.run = run
        self.sock = sock
        capacity = max(capacity, len(early) + 4096)
        self.buf = bytearray(capacity)
        self.view = memoryview(self.buf)
        # Bytes read past the handshake response are the start of the frame stream.
        self.buf[: len(early)] = early
        self.start = 0
        self.end = len(early)
        self.first = True  # the next echo is this connection's first: check it in full
        self.fragment = -1  # payload bytes so far of a fragmented echo; -1: none under way
        self.inflight = 0
        self.closing = False
        self.close_code: tuple[int | None, str] | None = None

    def parse(self, verify: bool) -> int:
        """Consume the whole frames in the buffer; return how many echoes they completed.

        Control frames are handled here (a ping answered, a pong ignored, a
        Close is an error unless we are closing). An echo's opcode and length
        are always checked; with ``verify`` its payload is compared with what
        was sent. A fragmented echo (RFC 6455 §5.4) counts once, at its last
        frame; its fragments are checked against the payload at their offset.
        """
        buf = self.buf
        p = self.start
        end = self.end
        run = self.run
        # Once our Close is out, data frames still arriving are skipped unchecked.
        limit = (1 << 63) if self.closing else run.length
        frag = self.fragment
        done = 0
        need = 0
        while True:
            avail = end - p
            if avail < 2:
                need = 2
                break
            b0 = buf[p]
            n = buf[p + 1]
            if n & 0x80:
                raise run.fail("a masked frame from the server (RFC 6455 §5.1 forbids it)")
            h = 2
            if n == 126:
                if avail < 4:
                    need = 4
                    break
                n = buf[p + 2] << 8 | buf[p + 3]
                h = 4
            elif n == 127:
                if avail < 10:
                    need = 10
                    break
                n = int.from_bytes(buf[p + 2 : p + 10], "big")
                h = 10
            if b0 & 0x70:
                raise run.fail(f"RSV bits set (first byte {b0:#04x}); no extension was negotiated")
            opcode = b0 & 0x0F
            if opcode & 0x08:
                if n > 125 or not b0 & 0x80:
                    raise run.fail(f"a malformed control frame (opcode {opcode:#x}, length {n})")
            elif (n if frag < 0 else frag + n) > limit:
                # Fail before waiting for (or making room for) a payload we did not send.
                raise run.fail(f"an echo of {max(frag, 0) + n} bytes or more; sent {limit}")
            if avail < h + n:
                need = h + n
                break
            q = p + h
            p = q + n
            if opcode & 0x08:
                self._control(opcode, q, n)
                if self.close_code is not None:
                    # RFC 6455 §5.5.1: nothing follows a Close. Some servers send
                    # a stray HTTP response after it (flask-sock on Werkzeug):
                    # not frames, so not parsed.
                    break  # what follows stays in the buffer, for finish_close to note
                continue
            if opcode:
                if frag >= 0:
                    raise run.fail("a new data frame inside a fragmented echo (RFC 6455 §5.4)")
                if opcode != run.opcode and not self.closing:
                    raise run.fail(f"an echo with opcode {opcode:#x}; sent {run.opcode:#x}")
                offset = 0
            elif frag < 0:
                raise run.fail("a continuation frame with no message under way")
            else:
                offset = frag
            if verify and n and not buf.startswith(run.payload_view[offset : offset + n], q):
                raise run.fail(
                    f"the echo differs from the payload sent (in bytes {offset}..{offset + n} "
                    f"of the message: {bytes(buf[q : q + min(n, 40)])!r}...)"
                )
            if b0 & 0x80:
                if offset + n != limit and not self.closing:
                    raise run.fail(f"an echo of {offset + n} bytes; sent {limit}")
                frag = -1
                done += 1
            else:
                frag = offset + n
        self.fragment = frag
        if p == end:
            p = end = 0
        elif p + need > len(buf):
            # The frame under way does not fit after p: move it to the front.
            if need > len(buf):
                raise run.fail(f"a frame of {need} bytes, larger than any echo or control frame")
            buf[: end - p] = buf[p:end]
            end -= p
            p = 0
        self.start = p
        self.end = end
        return done

    def _control(self, opcode: int, q: int, n: int) -> None:
        payload = bytes(self.buf[q : q + n])
        if opcode == PING:
            # RFC 6455 §5.5.2-3: answer with a pong carrying the ping's payload, masked.
            self.sock.sendall(client_frame(PONG, payload))
        elif opcode == CLOSE:
            code, reason = parse_close(payload)
            if not self.closing:
                raise self.run.fail(f"the server sent Close, code {code}, reason {reason!r}")
            self.close_code = (code, reason)
        elif opcode != PONG:
            raise self.run.fail(f"a frame with the reserved opcode {opcode:#x}")

    def fill(self) -> None:
        """One read into the buffer; EOF is an error (the server hung up mid-run)."""
        n = self.sock.recv_into(self.view[self.end :])
        if not n:
            what = "the server's Close" if self.closing else "an echo"
            raise self.run.fail(f"EOF while waiting for {what}")
        self.end += n

    def read(self, verify: bool) -> None:
        """Block until the echo of the one message in flight is complete."""
        parse = self.parse
        fill = self.fill
        while True:
            done = parse(verify)
            if done:
                if done > 1:
                    raise self.run.fail(f"{done} messages arrived where one echo was due")
                self.first = False
                return
            fill()

    def send_close(self) -> None:
        self.closing = True
        self.sock.sendall(_NORMAL_CLOSE)

    def finish_close(self, deadline: float) -> None:
        """After :meth:`send_close`: read the server's Close, then wait for its EOF.

        RFC 6455 §7.1.1: the server closes the TCP connection first, so the
        TIME_WAIT state stays on its side; the client "SHOULD wait for the
        server to close the connection but MAY close the connection at any time
        after sending and receiving a Close message". Here it waits until
        ``deadline`` (:func:`time.perf_counter`), then closes it itself.

        Nothing here fails the run: the measurement is over (or, for W5, the
        connection was upgraded), and how a server ends a connection is a fact
        to report, not a reason to have no figures. What deviates from §7.1.1
        (no Close in answer, another code, bytes after the Close, TCP left
        open) is counted in ``run.closings`` and ends up in ``Sample.notes``.
        """
        closings = self.run.closings
        closings.total += 1
        try:
            while self.close_code is None:
                try:
                    self.parse(False)
                except BenchError:
                    # Not frames: flask-sock on Werkzeug can write its stray HTTP
                    # response before simple-websocket's Close.
                    closings.note(
                        "wrote bytes that are not frames where its Close was due",
                        self.buf[self.start : self.end],
                    )
                    self.start = self.end = 0
                    while self._read_by(deadline, eof_expected=True):
                        self.end = 0
                    return
                if self.close_code is None and not self._read_by(deadline):
                    return
            code, reason = self.close_code
            if code not in (1000, None):
                closings.note(f"answered our Close 1000 with {code} {reason!r}")
            trailing = bytes(self.buf[self.start : self.end])
            self.start = self.end = 0
            while self._read_by(deadline, eof_expected=True):
                if len(trailing) < 60:
                    trailing += self.buf[: self.end]
                self.end = 0
            if trailing:
                closings.note("wrote bytes after its Close", trailing)
        finally:
            self.sock.close()

    def _read_by(self, deadline: float, eof_expected: bool = False) -> bool:
        """One read before ``deadline``; False (noted unless expected) at EOF or the deadline."""
        closings = self.run.closings
        self.sock.settimeout(max(deadline - time.perf_counter(), 0.0))
        try:
            n = self.sock.recv_into(self.view[self.end :])
        except (socket.timeout, BlockingIOError):
            if eof_expected:
                closings.note(
                    f"kept the TCP connection open {CLOSE_GRACE:g} s after its Close "
                    "(the client then closed it)"
                )
            else:
                closings.note(f"did not answer our Close within {CLOSE_GRACE:g} s")
            return False
        except ConnectionResetError:
            n = 0
        if n:
            self.end += n
            return True
        if not eof_expected:
            closings.note("closed TCP without answering our Close (the client sees 1006)")
        return False

    def close(self) -> None:
        self.send_close()
        self.finish_close(time.perf_counter() + CLOSE_GRACE)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
        self.sock.close()


def roundtrips(
    ep: Endpoint,
    *,
    payload: bytes,
    text: bool,
    max_messages: int,
    max_seconds: float,
    warmup: int = 50,
) -> Sample:
    """W1-W3: one connection, one message at a time, each echo read whole before the next.

    ``warmup`` round trips first, unmeasured; then until ``max_messages``
    echoes or ``max_seconds``, whichever comes first (the clock is read once
    per message); then a clean closing handshake, unmeasured.
    """
    if max_messages < 1:
        raise ValueError("max_messages must be at least 1")
    kind = "text" if text else "binary"
    run = _Run(ep, f"round trips ({len(payload)} B {kind})", max_seconds, payload, text)
    with run.phase("the handshake"):
        conn = run.open()
    try:
        with run.phase("the warm-up"):
            for _ in range(warmup):
                conn.sock.sendall(run.frame)
                conn.read(conn.first)
        with run.phase("the measured loop"):
            send = conn.sock.sendall
            read = conn.read
            frame = run.frame
            clock = time.perf_counter
            count = 0
            first = conn.first
            cpu0 = time.process_time()
            t0 = clock()
            deadline = t0 + max_seconds
            while True:
                count += 1
                last = count >= max_messages or clock() >= deadline
                send(frame)
                read(last or first)  # the last echo, and the first when warmup == 0
                first = False
                if last:
                    break
            wall = clock() - t0
            cpu = time.process_time() - cpu0
        with run.phase("the closing handshake"):
            conn.close()
    except BaseException:
        conn.abort()
        raise
    return Sample(count, count * run.length, wall, cpu, run.closings.notes())


def concurrent(
    ep: Endpoint,
    *,
    connections: int,
    payload: bytes,
    text: bool,
    max_messages: int,
    max_seconds: float,
) -> Sample:
    """W4: ``connections`` connections, each with exactly one message in flight.

    The connections are opened first and each does one unmeasured round trip
    (which checks its first echo). Then every connection sends; an epoll loop
    sends the next message on a connection as soon as its echo is whole, until
    ``max_messages`` have been sent or ``max_seconds`` have passed; the echoes
    still in flight are then drained (each connection's last echo is checked
    in full) and counted. Only completed echoes count. The closing handshakes
    come after the measurement.
    """
    if connections < 1 or max_messages < 1:
        raise ValueError("connections and max_messages must be at least 1")
    kind = "text" if text else "binary"
    workload = f"{connections} concurrent connections ({len(payload)} B {kind})"
    run = _Run(ep, workload, max_seconds, payload, text)
    conns: list[_Conn] = []
    selector = selectors.DefaultSelector()
    try:
        with run.phase(lambda: f"the handshakes ({len(conns)} connections open)"):
            for _ in range(connections):
                conns.append(run.open())
        with run.phase("the warm-up round trips"):
            for conn in conns:
                conn.sock.sendall(run.frame)
            for conn in conns:
                conn.read(True)
        for conn in conns:
            selector.register(conn.sock, selectors.EVENT_READ, conn)
        with run.phase("the measured loop"):
            select = selector.select
            frame = run.frame
            clock = time.perf_counter
            sent = 0
            completed = 0
            stopping = False
            cpu0 = time.process_time()
            t0 = clock()
            deadline = t0 + max_seconds
            for conn in conns[:max_messages]:
                conn.sock.sendall(frame)
                conn.inflight = 1
                sent += 1
            while completed < sent:
                now = clock()
                if not stopping and now >= deadline:
                    stopping = True
                    deadline = now + run.io_timeout  # now the bound of the drain
                events = select(max(deadline - now, 0.0))
                if not events and clock() >= deadline and stopping:
                    raise run.fail(
                        f"{sent - completed} echoes still missing {run.io_timeout:.1f} s "
                        "after the end of the run"
                    )
                for key, _ in events:
                    conn = key.data
                    conn.fill()
                    # No more messages on this connection after this echo: check it in full.
                    last = stopping or sent >= max_messages
                    done = conn.parse(last)
                    if done:
                        if done > conn.inflight:
                            raise run.fail(f"{done} messages arrived where one echo was due")
                        completed += done
                        conn.inflight = 0
                        if not last:
                            conn.sock.sendall(frame)
                            conn.inflight = 1
                            sent += 1
            wall = clock() - t0
            cpu = time.process_time() - cpu0
        selector.close()
        with run.phase("the closing handshakes"):
            for conn in conns:
                conn.send_close()
            # One grace for all: they close at the same time.
            deadline = time.perf_counter() + CLOSE_GRACE
            while conns:
                conns[-1].finish_close(deadline)
                conns.pop()
    except BaseException:
        selector.close()
        for conn in conns:
            conn.abort()
        raise
    return Sample(completed, completed * run.length, wall, cpu, run.closings.notes())


def handshakes(ep: Endpoint, *, max_connections: int, max_seconds: float) -> Sample:
    """W5: connect, handshake, Close 1000, the server's Close, its EOF; one after another.

    Until ``max_connections`` are done or ``max_seconds`` have passed. The
    server closes TCP first (RFC 6455 §7.1.1), so TIME_WAIT stays on its side.
    """
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    run = _Run(ep, "handshakes", max_seconds)
    clock = time.perf_counter
    count = 0
    with run.phase("the measured loop"):
        cpu0 = time.process_time()
        t0 = clock()
        deadline = t0 + max_seconds
        while count < max_connections:
            conn = run.open(4096)
            try:
                conn.close()
            except BaseException:
                conn.abort()
                raise
            count += 1
            if clock() >= deadline:
                break
        wall = clock() - t0
        cpu = time.process_time() - cpu0
    return Sample(count, 0, wall, cpu, run.closings.notes())


@contextlib.contextmanager
def idle(ep: Endpoint, *, connections: int, max_seconds: float) -> Iterator[int]:
    """W6: open ``connections`` WebSocket connections and hold them while the block runs.

    Handshakes go out in small batches (a batch's requests are sent, then its
    responses read), all within ``max_seconds``; the block gets the number
    open. On exit every connection is reset (SO_LINGER 0): no closing
    handshake, no TIME_WAIT, the ephemeral ports free at once.

    Nothing reads the connections while they are held, so a server's keepalive
    pings go unanswered: wsgiws and websockets ping after 20 s of silence and
    give up 20 s later. Measure within that.
    """
    if connections < 1:
        raise ValueError("connections must be at least 1")
    run = _Run(ep, f"{connections} idle connections", max_seconds)
    _ensure_files(run, connections + 64)
    socks: list[socket.socket] = []
    upgraded = 0

    def progress() -> str:
        return f"the handshakes ({upgraded} of {connections} connections open)"

    try:
        deadline = time.perf_counter() + max_seconds
        while len(socks) < connections:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise run.fail(f"only {upgraded} connections open after {max_seconds} s")
            with run.phase(progress):
                # A few handshakes in flight at once, far below any listen backlog.
                batch = min(32, connections - len(socks))
                for _ in range(batch):
                    socks.append(run.connect(left + IO_MARGIN))
                    socks[-1].sendall(run.request)
                for sock in socks[-batch:]:
                    run.response(sock)
                    upgraded += 1
        yield len(socks)
    finally:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
            sock.close()


def _ensure_files(run: _Run, needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE towards the hard limit if ``needed`` descriptors exceed it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise run.fail(f"needs {needed} file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
