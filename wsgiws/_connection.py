"""A blocking WebSocket connection over a socket the server handed us.

:class:`WebSocket` drives :class:`~wsgiws._protocol.Protocol` with socket I/O
(:mod:`wsgiws._stream`: a non-blocking socket, plain or TLS, and explicit
waits). There is no background thread or greenlet: whoever calls
:meth:`receive` does the reading, in large reads, and answers what the
protocol requires (pongs, the echo of a Close) as it goes. :meth:`send` may
run in another thread or greenlet at the same time; one lock keeps frames
whole and in order, and a send also services incoming control frames when no
one is receiving, so pings are answered and a peer's Close is echoed even by a
handler that only sends.

Every wait is bounded by the connection's deadlines, kept sans I/O in
:class:`~wsgiws._deadlines.Deadlines` (keepalive, the closing handshake, a
stuck send); this module only asks it what is due and when the next thing
is, and acts: sends a ping, fails a silent peer with 1011, gives up on a
Close that does not come, aborts a connection whose peer stopped reading.
:meth:`close` and :meth:`abort` work from any thread or greenlet at any time:
a send stuck on a peer that does not read is ended by shutting the socket
down, which wakes every thread waiting on it.

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

from ._concurrency import Kit, Lock
from ._deadlines import Deadlines, Due
from ._exceptions import ConnectionClosed
from ._protocol import NORMAL_CLOSE_CODES, Data, Protocol, State
from ._stream import stream_for

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
#: How many received-but-untaken bytes a sending-only handler buffers before
#: it stops reading, leaving the rest to TCP flow control.
_BACKLOG_LIMIT = 4 * 1024 * 1024
#: A send looks for frames that arrived while nobody was receiving (pings, a
#: Close) unless the socket was read this recently: a handler that answers
#: what it receives reads again at once, and a check per send would cost a
#: system call per message.
_SERVICE_INTERVAL = 0.005
#: The longest we read and discard after our Close when the peer's Close never
#: came (it failed the protocol, or went silent): long enough for what a peer
#: already had in flight and its FIN to arrive on any real network, so that
#: no reset destroys our Close frame; short enough that a peer which keeps
#: sending holds the handler's thread only briefly. close_timeout caps it too.
_LINGER_LIMIT = 2.0
#: The payload of our keepalive pings (RFC 6455 §5.5.2: the pong echoes it).
_KEEPALIVE_PAYLOAD = b"wsgiws keepalive"
#: The close reason of a connection that keepalive failed (with 1011).
_KEEPALIVE_REASON = "keepalive ping timeout"


def _acquire(lock: Lock, seconds: float) -> bool:
    """Take ``lock`` within ``seconds`` (at once if not positive)."""
    if seconds <= 0:
        return lock.acquire(False)
    return lock.acquire(True, seconds)


class WebSocket:
    """One WebSocket connection, handed to the handler.

    ``receive``/``send``/``ping`` block the calling thread or greenlet only.
    ``send`` may be called from any thread or greenlet, concurrently with
    ``receive`` in another; at most one ``receive`` runs at a time. ``close``
    and ``abort`` may be called from any thread or greenlet at any time, even
    while another is blocked in ``send``.

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
        send_timeout: float | None = 20.0,
        extensions: Sequence[Extension] = (),
    ) -> None:
        self._sock = sock
        self._kit = kit
        self._stream = stream_for(sock, kit)
        self._protocol = Protocol(max_message_size=max_message_size, extensions=extensions)
        self._close_timeout = close_timeout
        self._deadlines = Deadlines(
            time.monotonic(),
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            send_timeout=send_timeout,
        )
        #: When the socket was last read.
        self._read_at = float("-inf")
        #: Whether the one send allowed after a protocol error was made.
        self._answered_before_failure = False
        self._send_lock = kit.lock()
        self._read_lock = kit.lock()
        self._reported_close = False
        self._write_shut = False
        #: Set once, when we ended the transport without a closing handshake
        #: (code, reason): whoever holds the read lock next closes the protocol
        #: with it. Written by any thread; one assignment, read without a lock.
        self._aborted: tuple[int, str] | None = None
        #: A Close (code, reason) asked for by a server shutdown while a send was
        #: in progress: the sender writes it after its frame.
        self._close_requested: tuple[int, str] | None = None
        #: The code of a server shutdown: the handler's receive raises it even
        #: though the peer's answer is a normal Close (the handler must stop).
        self._going_away_code: int | None = None
        #: The upgrade request, as a :class:`webob.Request`.
        self.request = request
        #: The subprotocol agreed in the handshake, or None.
        self.subprotocol = subprotocol

    def _start(self, response: bytes, early: bytes) -> None:
        """Write the handshake response, then take the bytes the server read past
        the request headers (early frames). Raises :class:`ConnectionClosed` if the
        client is already gone."""
        with self._send_lock:
            self._write(response)
        if early:
            with self._read_lock:
                self._feed(early, time.monotonic())

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
        return self._aborted is not None or self._protocol.state is State.CLOSED

    @property
    def close_code(self) -> int | None:
        """The close code that ended the connection, or None while it is open."""
        code = self._protocol.close_code
        if code is None and self._aborted is not None:
            return self._aborted[0]
        return code

    @property
    def close_reason(self) -> str:
        """The close reason that ended the connection ("" while open or when none was given)."""
        if self._protocol.close_code is None and self._aborted is not None:
            return self._aborted[1]
        return self._protocol.close_reason

    # -- receiving --------------------------------------------------------------

    def receive(self, timeout: float | None = None) -> Data | None:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Returns None when ``timeout`` seconds pass with no whole message, and
        once, as the end of the stream, when the peer closed the connection
        normally (codes 1000, 1001, 1005). Raises :class:`ConnectionClosed` when
        the connection ended any other way (the server shutting down included:
        1001), or when called again after that.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._read_lock:
            while True:
                message = self._protocol.next_message()
                if message is not None:
                    return message
                if self._aborted is not None:
                    self._protocol.connection_lost(*self._aborted)
                if self._protocol.state is State.CLOSED:
                    self._flush_answers()  # a failure that waited behind messages
                    self._end_of_stream()
                    return None
                now = time.monotonic()
                wait = None
                if deadline is not None:
                    wait = deadline - now
                    if wait <= 0:
                        return None
                wake = self._run_timers(now)
                if self.closed:
                    continue  # the timers ended it: report it above
                if wake is not None and (wait is None or wake < wait):
                    wait = wake
                if self._stream.readable(wait):
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
        normal = (
            code in NORMAL_CLOSE_CODES
            and self._protocol.close_received
            and self._going_away_code is None
        )
        if normal and not self._reported_close:
            self._reported_close = True
            return
        raise ConnectionClosed(code, self._protocol.close_reason)

    # -- sending ----------------------------------------------------------------

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send one message, whole: text for ``str``, binary for bytes-like data.

        Raises :class:`ConnectionClosed` if the connection has ended or ends
        while sending; a peer that takes no byte for ``send_timeout`` seconds
        ends it (1006, the TCP connection aborted).
        """
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif not isinstance(data, (str, bytes)):
            raise TypeError(f"send() takes str or bytes, not {type(data).__name__}")
        self._service_incoming()
        with self._send_lock:
            self._ensure_open()
            header, payload = self._protocol.frame_message(data)
            if len(payload) < _JOIN_LIMIT or not self._stream.corks:
                self._write(header + payload)
            else:
                self._write(header, more=True)
                self._write(payload)
            if self._close_requested is not None or self._protocol.wants_to_send:
                self._after_frame()
        if self._close_requested is not None or self._protocol.wants_to_send:
            self._flush_answers()  # queued by another thread while we held the lock

    def ping(self, data: bytes = b"") -> None:
        """Send a ping with up to 125 bytes of payload (RFC 6455 §5.5)."""
        if len(data) > 125:
            raise ValueError("a ping payload is at most 125 bytes")
        with self._send_lock:
            self._ensure_open()
            self._write(self._protocol.send_ping(bytes(data)))
            self._after_frame()

    def _ensure_open(self) -> None:
        if self._aborted is not None:
            raise ConnectionClosed(*self._aborted)
        if self._protocol.state is State.OPEN:
            return
        if self._protocol.state is State.CLOSING:
            assert self._protocol.sent_close is not None
            raise ConnectionClosed(*self._protocol.sent_close)
        assert self._protocol.close_code is not None
        raise ConnectionClosed(self._protocol.close_code, self._protocol.close_reason)

    def _after_frame(self) -> None:
        """Between two frames: answers a receiver queued, a Close a shutdown asked for.

        The caller holds the send lock. A receiver that found the lock taken
        left its answer queued: it goes out here, after the frame it waited for.
        """
        if self._protocol.wants_to_send:
            self._write(self._protocol.data_to_send())
        if self._close_requested is not None:
            self._send_close_locked(*self._close_requested, wait=False)

    # -- timers -----------------------------------------------------------------

    def _run_timers(self, now: float) -> float | None:
        """Act on the deadlines that have come; the caller holds the read lock.

        Returns the seconds until the next deadline, or None when there is none.
        """
        deadlines = self._deadlines
        if self._protocol.state is not State.OPEN:
            # The protocol may start the closing handshake itself (a message
            # too big: 1009) while a handler waits in receive(); a peer that
            # never answers must not keep that handler forever (§7.1.1).
            deadlines.closing(now)
        while True:
            due = deadlines.due(now)
            if due is None:
                break
            if due is Due.PING:
                self._keepalive_ping(now)
            elif due is Due.KEEPALIVE_TIMEOUT:
                self._peer_gone()
                return None
            elif due is Due.CLOSE_TIMEOUT:
                # §7.1.1: close TCP without the peer's Close (our FIN follows
                # from CLOSED, written as the receive loop reports the end).
                log.debug("no Close frame from the peer within %.1fs", self._close_timeout)
                self._protocol.connection_lost()
                return None
            else:
                self._send_timed_out()
                return None
        at = deadlines.next_at()
        return None if at is None else max(0.0, at - now)

    def _keepalive_ping(self, now: float) -> None:
        """Send the keepalive ping that is due; the caller holds the read lock."""
        # Never wait for the send lock here: a long send holds it, and the
        # reader must go on reading. A ping held up is tried again soon, and
        # Deadlines fails the peer if it cannot go out within ping_timeout.
        if not self._send_lock.acquire(False):
            self._deadlines.ping_held_up(now)
            return
        try:
            if self._protocol.state is State.OPEN and self._aborted is None:
                self._write(self._protocol.send_ping(_KEEPALIVE_PAYLOAD))
                self._after_frame()
        except ConnectionClosed:
            pass
        finally:
            self._send_lock.release()
        self._deadlines.ping_sent(now)

    def _peer_gone(self) -> None:
        """Fail the connection: the peer answered neither our ping nor anything else.

        The caller holds the read lock. We still send Close 1011 (§7.1.7), but
        only if no send is in progress and only what the kernel takes at once:
        a peer that is gone does not read, and its full receive window must not
        block us.
        """
        self._log_peer_gone()
        self._protocol.fail(1011, _KEEPALIVE_REASON)
        if self._send_lock.acquire(False):
            try:
                with contextlib.suppress(OSError):
                    self._stream.send(self._protocol.data_to_send())
            finally:
                self._send_lock.release()
        # Whatever another thread is blocked on (a send to a full window) fails now.
        self._stream.shutdown(socket.SHUT_RDWR)

    def _log_peer_gone(self) -> None:
        deadlines = self._deadlines
        log.info(
            "WebSocket %s: no answer from the client for %.1fs (ping_interval=%s, "
            "ping_timeout=%s); closing the connection with 1011",
            self.path,
            (deadlines.ping_interval or 0) + (deadlines.ping_timeout or 0),
            deadlines.ping_interval,
            deadlines.ping_timeout,
        )

    def _send_timed_out(self) -> None:
        """Abort: no byte could be sent for send_timeout (the peer stopped reading)."""
        if self.closed:
            return  # the sender and a receiver may both see it: one reports it
        seconds = self._deadlines.send_timeout
        log.info(
            "WebSocket %s: the client stopped reading: nothing could be sent to it for "
            "%.1fs (send_timeout=%s); the connection is aborted. Raise send_timeout for "
            "clients on slow links, or send less to slow clients.",
            self.path,
            seconds,
            seconds,
        )
        self._abort(1006, f"the client stopped reading: nothing sent for {seconds}s")

    # -- closing ----------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason`` and wait for the peer's answer.

        Callable from any thread or greenlet. Returns within the close timeout:
        the Close frame is sent (after any frame being sent), the peer's Close
        awaited, then the TCP connection is closed from our side (RFC 6455
        §7.1.1); if the Close frame cannot be sent in that time (a send is
        stuck on a peer that does not read), the connection is aborted
        instead, and a thread blocked in :meth:`send` gets
        :class:`ConnectionClosed`. Does nothing if the connection is already
        closed.
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
        if self.closed:
            return
        deadline = time.monotonic() + self._close_timeout
        # A protocol error waiting behind messages the handler did not take:
        # the connection fails with its code, not ``code`` (§7.1.7).
        self._protocol.fail_pending()
        if not _acquire(self._send_lock, deadline - time.monotonic()):
            self._abort(
                1006,
                f"close(): a send in progress did not finish within close_timeout "
                f"({self._close_timeout}s)",
            )
            return
        try:
            self._send_close_locked(code, reason, until=deadline)
        except ConnectionClosed:
            return
        finally:
            self._send_lock.release()
        self._await_close(deadline)

    def abort(self) -> None:
        """End the connection at once, without a closing handshake.

        Callable from any thread or greenlet; never blocks. The TCP connection
        is reset (unsent data is dropped), every call on the connection then
        raises :class:`ConnectionClosed` (1006), a thread blocked in
        :meth:`send` or :meth:`receive` included. Does nothing if the
        connection is already closed.
        """
        if not self.closed:
            self._abort(1006, "aborted")

    def _going_away(self, code: int, reason: str) -> None:
        """Start the closing handshake for a server shutdown, without waiting.

        The Close frame goes now if no send is in progress and the kernel takes
        it at once; after the frame being sent otherwise. The handler's
        ``receive`` then raises ``ConnectionClosed(code)``.
        """
        self._going_away_code = code
        if self.closed:
            return
        if not self._send_lock.acquire(False):
            self._close_requested = (code, reason)
            if not self._send_lock.acquire(False):
                return  # the sender writes it after its frame
        try:
            self._send_close_locked(code, reason, wait=False)
        except ConnectionClosed:
            pass
        finally:
            self._send_lock.release()

    def _send_close_locked(
        self, code: int, reason: str, *, until: float | None = None, wait: bool = True
    ) -> None:
        """Send our Close if still open, and what the protocol queued before it.

        The caller holds the send lock. Without ``wait`` only what the kernel
        takes at once is sent: a Close that does not fit aborts the connection
        (its peer does not read). Shuts our side once the protocol is CLOSED.
        """
        self._close_requested = None
        data = self._protocol.data_to_send()
        if self._protocol.state is State.OPEN and self._aborted is None:
            data += self._protocol.send_close(code, reason)
            self._deadlines.closing(time.monotonic())
        if data:
            if wait:
                self._write(data, until=until)
            else:
                try:
                    sent = self._stream.send(data)
                except OSError as exc:
                    self._lost(exc)
                if sent < len(data):
                    self._abort(1006, "the client stopped reading: no room for the Close frame")
        if self._protocol.state is State.CLOSED:
            self._shut_write_locked()

    def _await_close(self, deadline: float) -> None:
        """Wait until ``deadline`` for the peer's Close, then close TCP from our side.

        If another thread is in :meth:`receive`, that thread reads the peer's
        Close; this one waits for it to be done, and aborts the connection if
        the Close has not come by ``deadline``.
        """
        if not _acquire(self._read_lock, deadline - time.monotonic()):
            if not self.closed:
                self._abort(1006, f"no Close frame from the client within {self._close_timeout}s")
            return
        try:
            while self._protocol.state is State.CLOSING and self._aborted is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._stream.readable(remaining):
                    log.debug("no Close frame from the peer within %.1fs", self._close_timeout)
                    self._protocol.connection_lost()
                    break
                self._read()
            if self._aborted is not None:
                self._protocol.connection_lost(*self._aborted)
        finally:
            self._read_lock.release()
        self._shut_write(deadline)

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
            if self._protocol.state is State.OPEN and self._aborted is None:
                self.close(code)
            else:
                self._await_close(time.monotonic() + self._close_timeout)
            if not self._protocol.close_received and self._aborted is None:
                self._linger()
        except ConnectionClosed:
            pass
        finally:
            self._stream.shutdown(socket.SHUT_RDWR)
            self._stream.release()

    def _linger(self) -> None:
        """Read and discard until the peer closes TCP, for at most _LINGER_LIMIT."""
        if not self._read_lock.acquire(False):
            return  # a thread the handler left behind is still reading
        try:
            deadline = time.monotonic() + min(self._close_timeout, _LINGER_LIMIT)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._stream.readable(remaining):
                    return
                if self._stream.recv(READ_SIZE) == b"":
                    return
        except OSError:
            return
        finally:
            self._read_lock.release()

    def _abort(self, code: int, reason: str) -> None:
        """End the transport now, from any thread; the connection ends with ``code``.

        Sets the outcome first, then resets the TCP connection, which wakes
        every thread waiting on the socket: a sender raises, a receiver reads
        EOF and reports ``code``. If no thread is receiving, the protocol is
        closed here.
        """
        if self._aborted is None and self._protocol.state is not State.CLOSED:
            self._aborted = (code, reason)
        self._stream.abort()
        if self._read_lock.acquire(False):
            try:
                if self._aborted is not None:
                    self._protocol.connection_lost(*self._aborted)
            finally:
                self._read_lock.release()

    # -- the socket choke points ------------------------------------------------

    def _read(self) -> None:
        """One read from the socket, fed to the protocol; answers are written."""
        wanted = self._protocol.bytes_wanted
        size = READ_SIZE if wanted <= READ_SIZE else min(wanted, MAX_READ_SIZE)
        data: bytes | None
        try:
            data = self._stream.recv(size)
        except OSError as exc:
            log.debug("connection lost while reading: %s", exc)
            data = b""
        now = self._read_at = time.monotonic()
        if data is not None:  # None: a TLS record not yet whole
            self._feed(data, now)

    def _feed(self, data: bytes, now: float) -> None:
        """Feed received bytes to the protocol, write its answers; caller holds the read lock."""
        if data:
            self._deadlines.heard(now)
        elif self._aborted is not None:
            self._protocol.connection_lost(*self._aborted)
        self._protocol.receive_data(data)
        self._flush_answers()

    def _flush_answers(self) -> None:
        """Write what the protocol must send (and a Close a shutdown asked for);
        shut our side once the protocol is CLOSED.

        Never waits for a send in progress (a stuck one would stop the reader,
        and keepalive with it): its sender writes what is queued after its
        frame, and looks again after releasing the lock, so nothing is left.
        """
        protocol = self._protocol
        if (
            not protocol.wants_to_send
            and self._close_requested is None
            and (protocol.state is not State.CLOSED or self._write_shut)
        ):
            return
        if not self._send_lock.acquire(False):
            return
        try:
            self._after_frame()
        except ConnectionClosed:
            pass
        finally:
            if protocol.state is State.CLOSED:
                self._shut_write_locked()
            self._send_lock.release()

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
                and self._stream.readable(0)
            ):
                self._read()
            # The error may have come with this read, or with the receive()
            # whose message this send answers: either way this send is the one.
            if self._protocol.failure_pending:
                self._answered_before_failure = True
            if self._aborted is not None:
                self._protocol.connection_lost(*self._aborted)
            if not self.closed:
                self._run_timers(time.monotonic())
        finally:
            self._read_lock.release()

    def _write(self, data: bytes, *, more: bool = False, until: float | None = None) -> None:
        """Write all of ``data``; the caller holds the send lock.

        Raises :class:`ConnectionClosed` when the connection ends first: the
        peer is gone, another thread closed or aborted it, or no byte could be
        sent for ``send_timeout`` (the connection is then aborted: 1006). With
        ``until``, a write unfinished by then aborts the connection too.
        """
        try:
            sent = self._stream.send(data, more)
            if sent < len(data):
                self._write_rest(memoryview(data), sent, more, until)
        except OSError as exc:
            self._lost(exc)

    def _write_rest(self, view: memoryview, sent: int, more: bool, until: float | None) -> None:
        """The slow path of :meth:`_write`: wait for room, within the deadlines.

        The wait ends at the send timeout or at keepalive's verdict, and the
        sender acts on either itself: a receiver may be waiting elsewhere, or
        none may exist (a handler that only sends). Another thread's close()
        or abort() wakes it by shutting the socket down.
        """
        stream = self._stream
        deadlines = self._deadlines
        try:
            while sent < len(view):
                if self._aborted is not None:
                    raise ConnectionClosed(*self._aborted)
                now = time.monotonic()
                deadlines.send_blocked(now)
                due = deadlines.due(now)
                if due is Due.SEND_TIMEOUT:
                    self._send_timed_out()
                    raise self._closed_error()
                if due is Due.KEEPALIVE_TIMEOUT:
                    if not self.closed:
                        self._log_peer_gone()
                        # No Close frame: one is half sent.
                        self._abort(1011, _KEEPALIVE_REASON)
                    raise self._closed_error()
                if until is not None and now >= until:
                    self._abort(
                        1006, "the client stopped reading: the Close frame could not be sent"
                    )
                    raise self._closed_error()
                wait = None
                give_up_at = deadlines.give_up_at()
                if give_up_at is not None:
                    wait = give_up_at - now
                if until is not None and (wait is None or until - now < wait):
                    wait = until - now
                if stream.writable(None if wait is None else max(0.0, wait)):
                    n = stream.send(view[sent:], more)
                    if n:
                        sent += n
                        deadlines.send_progressed(time.monotonic())
        finally:
            view.release()

    def _lost(self, exc: OSError) -> None:
        """The socket failed while sending: the connection is over. Raises ConnectionClosed."""
        if self._aborted is None and self._protocol.state is not State.CLOSED:
            self._aborted = (1006, "")
        raise self._closed_error() from exc

    def _closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(self.close_code or 1006, self.close_reason)

    def _shut_write(self, deadline: float) -> None:
        """Send our FIN, waiting for a send in progress until ``deadline``."""
        if self._write_shut:
            return
        if _acquire(self._send_lock, deadline - time.monotonic()):
            try:
                self._shut_write_locked()
            finally:
                self._send_lock.release()
        else:
            self._abort(1006, "a send in progress did not finish")

    def _shut_write_locked(self) -> None:
        """Send our FIN once: the server closes the TCP connection first (§7.1.1).

        The caller holds the send lock, so no frame is cut short.
        """
        if self._write_shut:
            return
        self._write_shut = True
        self._stream.shutdown(socket.SHUT_WR)

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
        state = "CLOSED" if self.closed else self._protocol.state.name
        return f"<WebSocket {self.path!r} {state}>"
