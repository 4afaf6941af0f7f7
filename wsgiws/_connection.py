"""A blocking WebSocket connection over a socket the server handed us.

:class:`WebSocket` drives :class:`~wsgiws._protocol.Protocol` with socket I/O.
There is no background thread or greenlet: whoever calls :meth:`receive` does
the reading, in large reads, and answers what the protocol requires (pongs,
the echo of a Close) as it goes. :meth:`send` may run in another thread or
greenlet at the same time; one lock keeps frames whole and in order, and a
send also services incoming control frames when no one is receiving, so pings
are answered and a peer's Close is echoed even by a handler that only sends.

Keepalive runs on the same calls, with no timer thread: while a handler waits
in :meth:`WebSocket.receive` (or calls :meth:`WebSocket.send`), a peer silent
for ``ping_interval`` seconds gets a ping, and one that then stays silent for
``ping_timeout`` more is declared gone: the connection fails with 1011 and
``receive`` raises :class:`~wsgiws.ConnectionClosed` at once.

This module is the one place where socket errors become
:class:`~wsgiws.ConnectionClosed`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import webob
from wsproto.extensions import Extension

from ._concurrency import Kit
from ._exceptions import ConnectionClosed
from ._protocol import NORMAL_CLOSE_CODES, Data, Protocol, State

__all__ = ["WebSocket"]

log = logging.getLogger("wsgiws")

#: Bytes asked of the socket per read. Large enough that a 64 KiB message is
#: one or two reads, small enough to stay below malloc's mmap threshold.
READ_SIZE = 65536
#: The most asked of the socket in one read when the frame being received says
#: it needs more than READ_SIZE (a 1 MiB message in one or two reads, not 16).
MAX_READ_SIZE = 4 * 1024 * 1024
#: From this payload size on, a frame's header and payload are written without
#: being joined first (a copy of the payload); below it one write is cheaper.
_JOIN_LIMIT = 16384
#: ``send(header, MSG_MORE)`` tells Linux the payload follows at once, so the
#: two writes leave as full segments (no Nagle wait on a lone header); where
#: there is no MSG_MORE the two are joined instead.
_MSG_MORE = getattr(socket, "MSG_MORE", 0)
#: How many received-but-untaken bytes a sending-only handler buffers before
#: it stops reading, leaving the rest to TCP flow control.
_BACKLOG_LIMIT = 4 * 1024 * 1024
#: Seconds before a keepalive ping deferred by a send in progress is tried again.
_PING_RETRY = 0.5
#: A send looks for frames that arrived while nobody was receiving (pings, a
#: Close) unless the socket was read this recently: a handler that answers
#: what it receives reads again at once, and a check per send would cost a
#: system call per message.
_SERVICE_INTERVAL = 0.005


class WebSocket:
    """One WebSocket connection, handed to the handler.

    ``receive``/``send``/``close``/``ping`` block the calling thread or greenlet
    only. ``send`` may be called from any thread or greenlet, concurrently with
    ``receive`` in another; at most one ``receive`` runs at a time.

    On gevent or eventlet without monkey-patching, "another thread" means
    another greenlet of the same hub (``gevent.spawn``, ``eventlet.spawn``): the
    socket and locks belong to that hub, and an OS thread must not use them.
    """

    def __init__(
        self,
        sock: socket.socket,
        kit: Kit,
        *,
        request: webob.Request,
        subprotocol: str | None = None,
        max_message_size: int | None = 1024 * 1024,
        close_timeout: float = 5.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        extensions: Sequence[Extension] = (),
    ) -> None:
        self._sock = sock
        self._protocol = Protocol(max_message_size=max_message_size, extensions=extensions)
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        #: When we last received bytes, and when the unanswered keepalive ping
        #: went out (None: none outstanding) with the pong count at that time.
        self._last_heard = time.monotonic()
        #: When the socket was last read.
        self._read_at = float("-inf")
        self._ping_sent_at: float | None = None
        self._pongs_at_ping = 0
        #: Whether the one send allowed after a protocol error was made.
        self._answered_before_failure = False
        #: When :meth:`receive` gives up waiting for the peer's Close.
        self._closing_deadline: float | None = None
        self._send_lock = kit.lock()
        self._read_lock = kit.lock()
        self._wait_readable = kit.waiter(sock)
        self._close_timeout = close_timeout
        self._reported_close = False
        self._write_shut = False
        #: The upgrade request, as a :class:`webob.Request`.
        self.request = request
        #: The subprotocol agreed in the handshake, or None.
        self.subprotocol = subprotocol

    def _start(self, response: bytes, early: bytes) -> None:
        """Write the handshake response, then take the bytes the server read past
        the request headers (early frames). Raises :class:`ConnectionClosed` if the
        client is already gone."""
        with self._send_lock:
            self._sendall(response)
        if early:
            with self._read_lock:
                self._feed(early)

    # -- attributes -------------------------------------------------------------

    @property
    def environ(self) -> Mapping[str, Any]:
        """The WSGI environ of the upgrade request."""
        return self.request.environ  # type: ignore[no-any-return]

    @property
    def path(self) -> str:
        """The request path (``PATH_INFO``)."""
        return self.request.path_info  # type: ignore[no-any-return]

    @property
    def closed(self) -> bool:
        """True once the connection has ended, whoever ended it."""
        return self._protocol.state is State.CLOSED

    @property
    def close_code(self) -> int | None:
        """The close code that ended the connection, or None while it is open."""
        return self._protocol.close_code

    @property
    def close_reason(self) -> str:
        """The close reason that ended the connection ("" while open or when none was given)."""
        return self._protocol.close_reason

    # -- receiving --------------------------------------------------------------

    def receive(self, timeout: float | None = None) -> Data | None:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Returns None when ``timeout`` seconds pass with no whole message, and
        once, as the end of the stream, when the peer closed the connection
        normally (codes 1000, 1001, 1005). Raises :class:`ConnectionClosed` when
        the connection ended any other way, or when called again after that.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._read_lock:
            while True:
                message = self._protocol.next_message()
                if message is not None:
                    return message
                if self._protocol.state is State.CLOSED:
                    self._flush_answers()  # a failure that waited behind messages
                    self._end_of_stream()
                    return None
                now = time.monotonic()
                remaining = None if deadline is None else deadline - now
                if remaining is not None and remaining <= 0:
                    return None
                if self._protocol.state is State.CLOSING:
                    wake = self._closing_wait(now)
                else:
                    wake = self._keepalive(now)
                if self.closed:
                    continue  # the peer stopped answering: report it above
                if wake is not None and (remaining is None or wake < remaining):
                    remaining = wake
                if self._wait_readable(remaining):
                    self._read()

    def __iter__(self) -> Iterator[Data]:
        """Iterate over messages; ends quietly when the peer closes normally."""
        while True:
            message = self.receive()
            if message is None:
                return
            yield message

    def _end_of_stream(self) -> None:
        """Report the end once if it was normal; raise otherwise."""
        code = self._protocol.close_code
        assert code is not None
        normal = code in NORMAL_CLOSE_CODES and self._protocol.close_received
        if normal and not self._reported_close:
            self._reported_close = True
            return
        raise ConnectionClosed(code, self._protocol.close_reason)

    # -- sending ----------------------------------------------------------------

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send one message, whole: text for ``str``, binary for bytes-like data.

        Raises :class:`ConnectionClosed` if the connection has ended or ends
        while sending.
        """
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif not isinstance(data, (str, bytes)):
            raise TypeError(f"send() takes str or bytes, not {type(data).__name__}")
        self._service_incoming()
        with self._send_lock:
            self._ensure_open()
            header, payload = self._protocol.frame_message(data)
            if len(payload) < _JOIN_LIMIT or not _MSG_MORE:
                self._sendall(header + payload)
            else:
                self._sendall(header, _MSG_MORE)
                self._sendall(payload)

    def ping(self, data: bytes = b"") -> None:
        """Send a ping with up to 125 bytes of payload (RFC 6455 §5.5)."""
        if len(data) > 125:
            raise ValueError("a ping payload is at most 125 bytes")
        with self._send_lock:
            self._ensure_open()
            self._sendall(self._protocol.send_ping(bytes(data)))

    def _ensure_open(self) -> None:
        if self._protocol.state is State.OPEN:
            return
        if self._protocol.state is State.CLOSING:
            assert self._protocol.sent_close is not None
            raise ConnectionClosed(*self._protocol.sent_close)
        assert self._protocol.close_code is not None
        raise ConnectionClosed(self._protocol.close_code, self._protocol.close_reason)

    def _closing_wait(self, now: float) -> float | None:
        """Bound the wait for the peer's Close once we sent ours; the caller holds the read lock.

        The protocol may start the closing handshake itself (a message too
        big: 1009) while a handler waits in :meth:`receive`; a peer that never
        answers must not keep that handler forever (§7.1.1 lets us close TCP).
        Returns the seconds left, or None once the connection was given up.
        """
        if self._closing_deadline is None:
            self._closing_deadline = now + self._close_timeout
        left = self._closing_deadline - now
        if left > 0:
            return left
        log.debug("no Close frame from the peer within %.1fs", self._close_timeout)
        self._protocol.connection_lost()
        with self._send_lock:
            self._shut_write_locked()
        return None

    # -- keepalive --------------------------------------------------------------

    def _keepalive(self, now: float) -> float | None:
        """Send a keepalive ping, or fail a peer that ignored one; the caller holds the read lock.

        Returns the seconds until the next keepalive event, or None when there is
        none. Any bytes from the peer prove it alive, a pong or not: pings go only
        to a peer silent for ``ping_interval`` (traffic keeps NATs and proxies
        open by itself), and a busy link is never mistaken for a dead one.
        """
        interval = self._ping_interval
        if interval is None or self._protocol.state is not State.OPEN:
            return None
        sent_at = self._ping_sent_at
        if sent_at is not None:
            if self._protocol.pongs_received > self._pongs_at_ping or self._last_heard > sent_at:
                self._ping_sent_at = sent_at = None  # answered
            elif self._ping_timeout is None:
                return None
            elif now - sent_at >= self._ping_timeout:
                self._peer_gone(now - self._last_heard)
                return None
            else:
                return sent_at + self._ping_timeout - now
        due = self._last_heard + interval - now
        if due > 0:
            return due
        # Never wait for the send lock here: a long send holds it, and the
        # reader must go on reading. A ping deferred is retried soon.
        if not self._send_lock.acquire(False):
            return min(interval, _PING_RETRY)
        try:
            self._sendall(self._protocol.send_ping(b"wsgiws keepalive"))
        except ConnectionClosed:
            return None
        finally:
            self._send_lock.release()
        self._ping_sent_at = now
        self._pongs_at_ping = self._protocol.pongs_received
        return self._ping_timeout

    def _peer_gone(self, silent_for: float) -> None:
        """Fail the connection: the peer answered neither our ping nor anything else.

        The caller holds the read lock. We still send Close 1011 (§7.1.7), but
        only if no send is in progress and only for a short while: a peer that
        is gone does not read, and its full receive window must not block us.
        """
        log.info(
            "WebSocket %s: no answer from the client for %.1fs (ping_interval=%s, "
            "ping_timeout=%s); closing the connection with 1011",
            self.path,
            silent_for,
            self._ping_interval,
            self._ping_timeout,
        )
        self._protocol.fail(1011, "keepalive ping timeout")
        close_frame = self._protocol.data_to_send()
        if self._send_lock.acquire(False):
            try:
                self._sock.settimeout(min(1.0, self._close_timeout))
                self._sock.sendall(close_frame)
            except OSError:
                pass
            finally:
                self._send_lock.release()
        # Whatever another thread is blocked on (a send to a full window) fails now.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    # -- closing ----------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason`` and wait for the peer's answer.

        Waits at most the close timeout for the peer's Close frame, then the
        TCP connection is closed from our side (RFC 6455 §7.1.1). Does nothing
        if the connection is already closed.
        """
        # 1012 (service restart) and 1013 (try again later) are registered
        # with IANA and understood by clients; 1014 (bad gateway) is for
        # gateways, and clients built on wsproto, Autobahn among them, take it
        # for a protocol error.
        if not (
            code == 1000
            or 3000 <= code <= 4999
            or code in (1001, 1002, 1003)
            or 1007 <= code <= 1013
        ):
            raise ValueError(f"{code} is not a close code an endpoint may send (RFC 6455 §7.4)")
        # A protocol error waiting behind messages the handler did not take:
        # the connection fails with its code, not ``code`` (§7.1.7).
        self._protocol.fail_pending()
        self._flush_answers()
        with self._send_lock:
            if self._protocol.state is State.OPEN:
                self._sendall(self._protocol.send_close(code, reason))
        self._await_close()

    def _await_close(self) -> None:
        """Wait (bounded) for the peer's Close, then close TCP from our side.

        If another thread is in :meth:`receive`, that thread reads the peer's
        Close and closes TCP when it comes; this one returns at once.
        """
        if not self._read_lock.acquire(False):
            return
        try:
            deadline = time.monotonic() + self._close_timeout
            while self._protocol.state is State.CLOSING:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._wait_readable(remaining):
                    log.debug("no Close frame from the peer within %.1fs", self._close_timeout)
                    self._protocol.connection_lost()
                    break
                self._read()
        finally:
            self._read_lock.release()
        with self._send_lock:
            self._shut_write_locked()

    def _finish(self, code: int = 1000) -> None:
        """End the connection after the handler returned, closing with ``code`` if still open.

        Completes the closing handshake and closes TCP from our side. If the
        peer's Close never came (it failed the protocol, or went silent), what
        it still sends is drained until it closes too (bounded), so that no
        reset destroys our Close frame in flight. Afterwards the socket is shut
        down both ways: whatever the server writes next fails instead of
        reaching the client.
        """
        try:
            if self._protocol.state is State.OPEN:
                self.close(code)
            else:
                self._await_close()
            if not self._protocol.close_received:
                self._linger()
        except ConnectionClosed:
            pass
        finally:
            with contextlib.suppress(OSError):  # already reset or shut down
                self._sock.shutdown(socket.SHUT_RDWR)

    def _linger(self) -> None:
        """Read and discard until the peer closes TCP, for at most the close timeout."""
        if not self._read_lock.acquire(False):
            return  # a thread the handler left behind is still reading
        try:
            deadline = time.monotonic() + min(self._close_timeout, 2.0)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._wait_readable(remaining):
                    return
                if not self._sock.recv(READ_SIZE):
                    return
        except OSError:
            return
        finally:
            self._read_lock.release()

    # -- the socket choke points ------------------------------------------------

    def _read(self) -> None:
        """One read from the socket, fed to the protocol; answers are written."""
        wanted = self._protocol.bytes_wanted
        size = READ_SIZE if wanted <= READ_SIZE else min(wanted, MAX_READ_SIZE)
        try:
            data = self._sock.recv(size)
        except OSError as exc:
            log.debug("connection lost while reading: %s", exc)
            data = b""
        self._read_at = time.monotonic()
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Feed received bytes to the protocol, write its answers; caller holds the read lock."""
        if data:
            self._last_heard = time.monotonic()
        self._protocol.receive_data(data)
        self._flush_answers()

    def _flush_answers(self) -> None:
        """Write what the protocol must send; shut our side once it is CLOSED."""
        answer = self._protocol.data_to_send()
        if answer or self._protocol.state is State.CLOSED:
            with self._send_lock:
                try:
                    if answer:
                        self._sendall(answer)
                except ConnectionClosed:
                    pass
                if self._protocol.state is State.CLOSED:
                    self._shut_write_locked()

    def _service_incoming(self) -> None:
        """Handle frames that arrived while nobody was receiving (pings, a Close)."""
        if not self._read_lock.acquire(False):
            return  # another thread is receiving: it handles them
        try:
            # A protocol error waits for the handler to answer the peer's last
            # good message: one send goes out, the next one fails the connection.
            if self._protocol.failure_pending and self._answered_before_failure:
                self._protocol.fail_pending()
                self._flush_answers()
            recently_read = time.monotonic() - self._read_at < _SERVICE_INTERVAL
            while (
                not recently_read
                and self._protocol.state is not State.CLOSED
                and self._protocol.buffered_size < _BACKLOG_LIMIT
                and self._wait_readable(0)
            ):
                self._read()
            # The error may have come with this read, or with the receive()
            # whose message this send answers: either way this send is the one.
            if self._protocol.failure_pending:
                self._answered_before_failure = True
            self._keepalive(time.monotonic())
        finally:
            self._read_lock.release()

    def _sendall(self, data: bytes, flags: int = 0) -> None:
        """Write all of ``data``; the caller holds the send lock."""
        try:
            # One send() first: it nearly always takes everything. gevent's
            # sendall() asks the kernel for SO_SNDBUF on every call (a system
            # call per message) to size its chunks; only a rest needs it.
            sent = self._sock.send(data, flags)
            if sent < len(data):
                self._sock.sendall(memoryview(data)[sent:], flags)
        except OSError as exc:
            self._protocol.connection_lost()
            raise ConnectionClosed(
                self._protocol.close_code or 1006, self._protocol.close_reason
            ) from exc

    def _shut_write_locked(self) -> None:
        """Send our FIN once: the server closes the TCP connection first (§7.1.1).

        The caller holds the send lock, so no frame is cut short.
        """
        if self._write_shut:
            return
        self._write_shut = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    # -- context manager ----------------------------------------------------------

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.closed:
            failed = exc is not None and not isinstance(exc, ConnectionClosed)
            with contextlib.suppress(ConnectionClosed):
                self.close(1011 if failed else 1000)

    def __repr__(self) -> str:
        state = self._protocol.state.name
        return f"<WebSocket {self.path!r} {state}>"
