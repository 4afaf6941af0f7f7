"""The WebSocket protocol after the handshake, sans I/O.

:class:`Protocol` turns received bytes into whole messages and turns what the
application wants to send into bytes. Framing, masking and UTF-8 validation are
``wsproto``'s; this module adds what a connection needs on top of it: message
assembly with a size limit, the answers the protocol obliges us to give (pong
for ping, the echo of a close), and the connection state below. It never
touches a socket, a clock or a lock: the caller feeds it bytes and writes the
bytes it hands back.

States and transitions (all of them are made in :meth:`Protocol._to`)::

    OPEN ──we send Close──────────────────────▶ CLOSING
    OPEN ──peer's Close (we echo it)──────────▶ CLOSED
    OPEN ──protocol error (we send Close)─────▶ CLOSED
    OPEN / CLOSING ──EOF, or given up on──────▶ CLOSED (1006 if no Close came)
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
        self._wsproto = Connection(ConnectionType.SERVER, extensions=list(extensions))
        self.max_message_size = max_message_size
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
        self._fragments: list[str | bytes | bytearray] = []
        self._fragments_size = 0
        #: Whether the text message being assembled is counted in exact bytes.
        self._text_exact = False

    # -- the one place where the state changes -------------------------------

    def _to(self, state: State, code: int | None = None, reason: str = "") -> None:
        if (self.state, state) not in _TRANSITIONS:
            raise AssertionError(f"invalid transition {self.state.name} -> {state.name}")
        self.state = state
        if state is State.CLOSED:
            assert code is not None
            self.close_code = code
            self.close_reason = reason
            self._fragments.clear()

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
            return  # a failure is pending (see _on_close): nothing more is parsed
        self._wsproto.receive_data(data)
        for event in self._wsproto.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                self._on_data(event)
            elif isinstance(event, Ping):
                if self.state is State.OPEN:
                    self._outgoing += self._wsproto.send(event.response())
            elif isinstance(event, CloseConnection):
                self._on_close(event)
                break
            elif isinstance(event, Pong):
                self.pongs_received += 1
            if self.closed:
                break

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    def _on_data(self, event: TextMessage | BytesMessage) -> None:
        if self.state is not State.OPEN:
            return  # we sent Close; the peer's late data is discarded
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
            self._fail(
                CloseReason.MESSAGE_TOO_BIG,
                f"message larger than {limit} bytes",
                wait_for_peer=True,
            )
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
            self._messages.append(message)
            self._messages_size += len(message)

    def _on_close(self, event: CloseConnection) -> None:
        # wsproto reports a protocol error (bad frame, invalid UTF-8 even
        # mid-fragment, bad close code) as a CloseConnection event that the
        # peer never sent, leaving its own state as it was; a real Close frame
        # moves its state on before the event is yielded.
        if self._wsproto.state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
            # §7.1.7: fail the connection, with the code wsproto chose
            # (1002 protocol error, 1007 invalid data, ...). Not at once: the
            # messages that arrived whole before the defect, and the one the
            # application may be answering, come first. The failure happens at
            # the next next_message() that finds no message (or fail_pending());
            # meanwhile the stream is parsed no further.
            reason = event.reason or ""
            if event.code == CloseReason.MESSAGE_TOO_BIG and self.max_message_size is not None:
                # Only our permessage-deflate extension fails with 1009, when a
                # message decompresses past the limit; wsproto then says
                # "error in extension". Say what an uncompressed message gets.
                reason = f"message larger than {self.max_message_size} bytes"
            if self.state is State.OPEN:
                self._pending_failure = (event.code, reason)
                self._parse_failed = True
            else:
                self._fail(event.code, reason, wait_for_peer=False)
            return
        self.close_received = True
        if self.state is State.OPEN:
            # §5.5.1: answer with a Close echoing the peer's code.
            self._outgoing += self._wsproto.send(event.response())
            self._to(State.CLOSED, event.code, event.reason or "")
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
            self._outgoing += self._wsproto.send(CloseConnection(code=code, reason=reason))
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

    def connection_lost(self) -> None:
        """The transport is gone (EOF, reset, or we gave up waiting): enter CLOSED.

        The code is 1006 unless a closing handshake already decided it
        (§7.1.5: "considered to be 1006" when no Close frame was received).
        """
        if self.state is not State.CLOSED:
            self._to(State.CLOSED, CloseReason.ABNORMAL_CLOSURE)

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
        return self._messages_size + self._fragments_size

    # -- sending ------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes the protocol itself must send (pongs, Close frames); empties the queue."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def send_message(self, data: Data) -> bytes:
        """The frame for one whole message. Only valid in OPEN."""
        assert self.state is State.OPEN
        if isinstance(data, str):
            return self._wsproto.send(TextMessage(data=data))
        return self._wsproto.send(BytesMessage(data=data))

    def send_ping(self, payload: bytes = b"") -> bytes:
        """The frame for a ping. Only valid in OPEN."""
        assert self.state is State.OPEN
        return self._wsproto.send(Ping(payload=payload))

    def send_close(self, code: int = 1000, reason: str = "") -> bytes:
        """Start the closing handshake: the Close frame to send. Only valid in OPEN."""
        assert self.state is State.OPEN
        data = self._wsproto.send(CloseConnection(code=code, reason=reason))
        self.sent_close = (code, reason)
        self._to(State.CLOSING)
        return data
