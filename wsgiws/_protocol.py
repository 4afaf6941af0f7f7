"""The WebSocket protocol after the handshake, sans I/O.

:class:`Protocol` turns received bytes into whole messages and turns what the
application wants to send into bytes. It adds what a connection needs on top
of framing: message assembly with a size limit, the answers the protocol
obliges us to give (pong for ping, the echo of a close), and the connection
state below. It never touches a socket, a clock or a lock: the caller feeds it
bytes and writes the bytes it hands back.

Framing, masking and UTF-8 validation come from one of two engines, chosen
once per connection (the same small interface, :class:`_Engine`):

* without extensions, our own :class:`wsgiws._frames.FrameCodec`. wsproto's
  receive and send paths dominated an echo server's profile (issue 5): about
  four copies of a payload on send (~800 us per MiB), a growing buffer, a
  pure-Python unmasking (~820 us per MiB) and a generator and event objects
  per read on receive, and per-frame objects that were a large share of a
  16-byte message's ~45 us round trip. No library does this leaner for a
  blocking server, so it is written here, with wsproto's rules;
* with permessage-deflate negotiated, wsproto through :class:`_WsprotoEngine`:
  our extension (:mod:`wsgiws._deflate`) is built on wsproto's hooks and
  conformance-tested on them, and compressed traffic is bound by zlib anyway.

States and transitions (all of them are made in :meth:`Protocol._to`)::

    OPEN ──we send Close──────────────────────▶ CLOSING
    OPEN ──peer's Close (we echo it)──────────▶ CLOSED
    OPEN ──protocol error (we send Close)─────▶ CLOSED
    OPEN / CLOSING ──EOF, aborted, given up on▶ CLOSED (1006 if no Close came)
    OPEN / CLOSING ──fail() (peer silent)─────▶ CLOSED (keepalive: 1011)
    CLOSING ──peer's Close────────────────────▶ CLOSED

Invariants:

* Data frames are only ever produced in OPEN (RFC 6455 §5.5.1: nothing follows
  a Close frame).
* Exactly one Close frame is produced in the connection's life.
* In CLOSED, :attr:`close_code` is set and never changes again; the transport
  is to be closed, and the server side closes TCP first (§7.1.1).
* After a protocol error the stream can no longer be parsed: we fail the
  connection (§7.1.7) and received bytes are discarded, not parsed. Whole
  messages received before the error are delivered first; the failure (our
  Close) follows once they are taken.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence
from typing import Protocol as _Interface
from typing import Union

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason

from ._frames import FrameCodec, Receiver

__all__ = ["NORMAL_CLOSE_CODES", "Data", "Protocol", "State"]

Data = Union[str, bytes]

#: Close codes that end a connection normally (RFC 6455 §7.4.1): a handler's
#: ``for message in ws`` loop ends quietly on these, and raises on any other.
#: 1005 means the peer sent a Close frame with no code: a clean handshake too.
NORMAL_CLOSE_CODES = frozenset({1000, 1001, 1005})


class State(enum.Enum):
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


_TRANSITIONS = {
    (State.OPEN, State.CLOSING),
    (State.OPEN, State.CLOSED),
    (State.CLOSING, State.CLOSED),
}


class _Engine(_Interface):
    """Framing for one connection: parses into :class:`~wsgiws._frames.Receiver` calls,
    builds the frames to send."""

    max_message_size: int | None

    @property
    def partial_size(self) -> int: ...  # bytes of the message not yet complete
    @property
    def bytes_wanted(self) -> int: ...  # bytes the frame being received still needs, or 0
    def receive(self, data: bytes) -> None: ...
    def discard_data(self) -> None: ...  # we are closing: data frames are checked, not kept
    def frame_message(self, data: Data) -> tuple[bytes, bytes]: ...
    def ping(self, payload: bytes) -> bytes: ...
    def pong(self, payload: bytes) -> bytes: ...
    def close(self, code: int, reason: str = "") -> bytes: ...


class Protocol:
    """One server-side WebSocket connection's protocol state.

    ``max_message_size`` bounds a received message (after any decompression);
    a larger one fails the connection with 1009 (§7.4.1). ``None`` means no
    limit.
    """

    def __init__(
        self,
        *,
        max_message_size: int | None = None,
        extensions: Sequence[Extension] = (),
    ) -> None:
        # ``extensions`` were negotiated in the handshake (permessage-deflate).
        self._engine: _Engine
        if extensions:
            self._engine = _WsprotoEngine(self, extensions, max_message_size)
        else:
            self._engine = FrameCodec(self, max_message_size)
        self.state = State.OPEN
        #: The code and reason that ended the connection (set on entering CLOSED).
        self.close_code: int | None = None
        self.close_reason = ""
        #: Whether the peer's Close frame arrived.
        self.close_received = False
        #: The code and reason of the Close frame we sent, if we sent one.
        self.sent_close: tuple[int, str] | None = None
        self._parse_failed = False
        #: A protocol error found behind messages not yet taken (code, reason).
        self._pending_failure: tuple[int, str] | None = None
        #: How many pongs have been received: keepalive reads it.
        self.pongs_received = 0
        self._outgoing = bytearray()
        self._messages: deque[Data] = deque()
        self._messages_size = 0

    @property
    def max_message_size(self) -> int | None:
        """The limit on a received message in bytes (None: none); may be changed."""
        return self._engine.max_message_size

    @max_message_size.setter
    def max_message_size(self, value: int | None) -> None:
        self._engine.max_message_size = value

    # -- the one place where the state changes -------------------------------

    def _to(self, state: State, code: int | None = None, reason: str = "") -> None:
        if (self.state, state) not in _TRANSITIONS:
            raise AssertionError(f"invalid transition {self.state.name} -> {state.name}")
        self.state = state
        # Out of OPEN, data the peer still sends is discarded (§5.5.1: it may
        # have sent it before it saw our Close).
        self._engine.discard_data()
        if state is State.CLOSED:
            assert code is not None
            self.close_code = code
            self.close_reason = reason

    # -- receiving --------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer; ``b""`` means the peer closed TCP (EOF).

        Whole messages become available from :meth:`next_message`, answers
        (pongs, the echo of a Close, a Close that fails the connection) from
        :meth:`data_to_send`.
        """
        if self.state is State.CLOSED:
            return  # §7.1.7: after failing the connection, input is discarded
        if not data:
            self.fail_pending()  # its Close may still reach a half-closed peer
            self.connection_lost()
            return
        if self._parse_failed:
            return  # a failure is pending (see _on_error): nothing more is parsed
        self._engine.receive(data)

    @property
    def bytes_wanted(self) -> int:
        """How many more bytes the frame being received needs; 0 at a frame boundary or
        when unknown. A reader may ask the socket for that much in one read."""
        return self._engine.bytes_wanted

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    # What the engine reports (wsgiws._frames.Receiver), in stream order.

    def _on_message(self, data: Data) -> None:
        if self.state is State.OPEN:
            self._messages.append(data)
            self._messages_size += len(data)

    def _on_ping(self, payload: bytes) -> None:
        if self.state is State.OPEN:
            self._outgoing += self._engine.pong(payload)  # §5.5.2

    def _on_pong(self, payload: bytes) -> None:
        self.pongs_received += 1

    def _on_too_big(self) -> None:
        if self.state is State.OPEN:
            self._fail(
                1009, f"message larger than {self.max_message_size} bytes", wait_for_peer=True
            )

    def _on_error(self, code: int, reason: str) -> None:
        # §7.1.7: fail the connection, with the engine's code (1002 protocol
        # error, 1007 invalid data, ...). Not at once: the messages that
        # arrived whole before the defect, and the one the application may be
        # answering, come first. The failure happens at the next
        # next_message() that finds no message (or fail_pending()); meanwhile
        # the stream is parsed no further.
        if self.state is State.OPEN:
            self._pending_failure = (code, reason)
            self._parse_failed = True
        else:
            self._fail(code, reason, wait_for_peer=False)

    def _on_close(self, code: int, reason: str) -> None:
        self.close_received = True
        if self.state is State.OPEN:
            # §5.5.1: answer with a Close echoing the peer's code.
            self._outgoing += self._engine.close(code, reason)
            self._to(State.CLOSED, code, reason)
        elif self.state is State.CLOSING:
            assert self.sent_close is not None
            self._to(State.CLOSED, *self.sent_close)

    def _fail(self, code: int, reason: str, *, wait_for_peer: bool) -> None:
        """End the connection on our side with ``code``.

        With ``wait_for_peer`` the stream is still sane (say, a message too
        big): we send Close and wait for the peer's, a normal closing
        handshake. Without it the stream cannot be parsed any more (§7.1.7):
        we send Close if we have not yet, and the connection is CLOSED.
        """
        if self.state is State.OPEN:
            self._outgoing += self._engine.close(code, reason)
            self.sent_close = (code, reason)
            if wait_for_peer:
                self._to(State.CLOSING)
                return
        self._parse_failed = True
        if self.state is not State.CLOSED:
            assert self.sent_close is not None
            self._to(State.CLOSED, *self.sent_close)

    @property
    def failure_pending(self) -> bool:
        """Whether a protocol error was found and the connection not yet failed for it."""
        return self._pending_failure is not None

    def fail_pending(self) -> None:
        """Fail the connection now if a protocol error was found and not yet acted on."""
        pending = self._pending_failure
        if pending is not None:
            self._pending_failure = None
            if self.state is State.OPEN:
                self._fail(*pending, wait_for_peer=False)

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection now (§7.1.7), e.g. when the peer stopped answering pings.

        A Close frame with ``code`` is queued in :meth:`data_to_send` if none was
        sent yet; the connection is CLOSED at once, without waiting for the peer.
        """
        if self.state is not State.CLOSED:
            self._fail(code, reason, wait_for_peer=False)

    def connection_lost(self, code: int = 1006, reason: str = "") -> None:
        """The transport is gone (EOF, reset, aborted, or we gave up waiting): enter CLOSED.

        The code is 1006 (§7.1.5: "considered to be 1006" when no Close frame
        was received) unless the connection is already CLOSED; ``reason``
        says why when we ended the transport ourselves (a send timeout).
        """
        if self.state is not State.CLOSED:
            self._to(State.CLOSED, code, reason)

    def next_message(self) -> Data | None:
        """The oldest whole message received and not yet taken, or None.

        After the last message received before a protocol error, the next call
        fails the connection: the Close is then in :meth:`data_to_send`.
        """
        if not self._messages:
            self.fail_pending()
            return None
        message = self._messages.popleft()
        self._messages_size -= len(message)
        return message

    @property
    def buffered_size(self) -> int:
        """Size of the messages received and not yet taken, plus any partial one."""
        return self._messages_size + self._engine.partial_size

    # -- sending ------------------------------------------------------------------

    @property
    def wants_to_send(self) -> bool:
        """Whether :meth:`data_to_send` has bytes (pongs, a Close)."""
        return bool(self._outgoing)

    def data_to_send(self) -> bytes:
        """Bytes the protocol itself must send (pongs, Close frames); empties the queue."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def frame_message(self, data: Data) -> tuple[bytes, bytes]:
        """One whole message's frame as (header, payload), to be sent in that order.

        ``payload`` is ``data`` itself for bytes (no copy), encoded for str, so
        a large message need not be joined to its header; on a connection with
        permessage-deflate it is the whole frame and ``b""``. Only valid in OPEN.
        """
        assert self.state is State.OPEN
        return self._engine.frame_message(data)

    def send_message(self, data: Data) -> bytes:
        """The frame for one whole message. Only valid in OPEN."""
        header, payload = self.frame_message(data)
        return header + payload

    def send_ping(self, payload: bytes = b"") -> bytes:
        """The frame for a ping. Only valid in OPEN."""
        assert self.state is State.OPEN
        return self._engine.ping(payload)

    def send_close(self, code: int = 1000, reason: str = "") -> bytes:
        """Start the closing handshake: the Close frame to send. Only valid in OPEN."""
        assert self.state is State.OPEN
        data = self._engine.close(code, reason)
        self.sent_close = (code, reason)
        self._to(State.CLOSING)
        return data


class _WsprotoEngine:
    """wsproto's framing behind the :class:`_Engine` interface, for permessage-deflate.

    wsproto hands over a message in pieces as they arrive; they are assembled
    here, within ``max_message_size`` (checked as the pieces come: the
    extension's decompressed size is only known then).
    """

    def __init__(
        self, receiver: Receiver, extensions: Sequence[Extension], max_message_size: int | None
    ) -> None:
        self._receiver = receiver
        self._wsproto = Connection(ConnectionType.SERVER, extensions=list(extensions))
        self.max_message_size = max_message_size
        self._discard = False
        self._fragments: list[str | bytes | bytearray] = []
        self._fragments_size = 0
        #: Whether the text message being assembled is counted in exact bytes.
        self._text_exact = False

    @property
    def partial_size(self) -> int:
        return self._fragments_size

    @property
    def bytes_wanted(self) -> int:
        return 0  # wsproto does not say

    def discard_data(self) -> None:
        self._discard = True
        self._fragments = []
        self._fragments_size = 0

    def receive(self, data: bytes) -> None:
        self._wsproto.receive_data(data)
        receiver = self._receiver
        for event in self._wsproto.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                if not self._discard:
                    self._on_data(event)
            elif isinstance(event, Ping):
                receiver._on_ping(event.payload)
            elif isinstance(event, CloseConnection):
                self._on_close(event)
                break
            elif isinstance(event, Pong):
                receiver._on_pong(event.payload)

    def _on_data(self, event: TextMessage | BytesMessage) -> None:
        data = event.data
        self._fragments.append(data)
        limit = self.max_message_size
        if isinstance(data, str):
            # The limit is in bytes and a character is 1 to 4 of them in UTF-8.
            # Encoding every fragment to count would cost a copy per message,
            # so count characters while even 4 bytes for each one of the whole
            # message stay under the limit, and count exactly past that (the
            # fragments so far once, then each new one).
            if self._text_exact or (
                limit is not None and 4 * (self._fragments_size + len(data)) > limit
            ):
                if not self._text_exact:
                    self._text_exact = True
                    self._fragments_size = sum(
                        len(f.encode("utf-8")) if isinstance(f, str) else len(f)
                        for f in self._fragments[:-1]
                    )
                self._fragments_size += len(data.encode("utf-8"))
            else:
                self._fragments_size += len(data)
        else:
            self._fragments_size += len(data)
        if limit is not None and self._fragments_size > limit:
            self.discard_data()
            self._receiver._on_too_big()
            return
        if event.message_finished:
            if isinstance(event, TextMessage):
                message: Data = "".join(self._fragments)  # type: ignore[arg-type]
            else:
                assert isinstance(event, BytesMessage)
                message = b"".join(self._fragments)  # type: ignore[arg-type]
            self._fragments = []
            self._fragments_size = 0
            self._text_exact = False
            self._receiver._on_message(message)

    def _on_close(self, event: CloseConnection) -> None:
        # wsproto reports a protocol error (bad frame, invalid UTF-8 even
        # mid-fragment, bad close code) as a CloseConnection event that the
        # peer never sent, leaving its own state as it was; a real Close frame
        # moves its state on before the event is yielded.
        code = int(event.code)
        reason = event.reason or ""
        if self._wsproto.state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
            if code == CloseReason.MESSAGE_TOO_BIG and self.max_message_size is not None:
                # Only our permessage-deflate extension fails with 1009, when a
                # message decompresses past the limit; wsproto then says
                # "error in extension". Say what an uncompressed message gets.
                reason = f"message larger than {self.max_message_size} bytes"
            self._receiver._on_error(code, reason)
        else:
            self._receiver._on_close(code, reason)

    def frame_message(self, data: Data) -> tuple[bytes, bytes]:
        if isinstance(data, str):
            return self._wsproto.send(TextMessage(data=data)), b""
        return self._wsproto.send(BytesMessage(data=data)), b""

    def ping(self, payload: bytes) -> bytes:
        return self._wsproto.send(Ping(payload=payload))

    def pong(self, payload: bytes) -> bytes:
        return self._wsproto.send(Pong(payload=payload))

    def close(self, code: int, reason: str = "") -> bytes:
        # wsproto sends no code for NO_STATUS_RCVD, tested by identity: the echo
        # of a Close without a code must be one without a code (§7.1.5).
        close_code: int = CloseReason.NO_STATUS_RCVD if code == 1005 else code
        return self._wsproto.send(CloseConnection(code=close_code, reason=reason))
