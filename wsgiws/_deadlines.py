"""The connection's timers, sans I/O: keepalive, the closing handshake, a stuck send.

:class:`Deadlines` never reads a clock: every call is given ``now`` (seconds on
any monotonic scale), so that its rules are tested with a fake clock. The
blocking connection tells it what happened (bytes heard, a ping sent, our
Close sent, a send blocked or progressing) and asks two questions: which
:class:`Due` action has come (:meth:`Deadlines.due`), and when the next one
comes (:meth:`Deadlines.next_at`), so that no wait outlasts it.

The rules, each decided here and nowhere else:

* **Keepalive.** A peer silent for ``ping_interval`` gets a ping (any bytes
  from it prove it alive, a pong or not: traffic keeps NATs and proxies open by
  itself, and a busy link is never mistaken for a dead one). The peer fails
  (:attr:`Due.KEEPALIVE_TIMEOUT`) when the ping's answer has not come
  ``ping_timeout`` after the ping went out, *or* after it fell due when it
  could not be sent at all: a send stuck on a peer that does not read holds
  the connection's send lock, and such a peer must not escape keepalive by
  keeping us from pinging it. A ping held up that way is tried again every
  :data:`PING_RETRY` seconds.
* **Closing.** Once our Close frame is sent, the peer's has ``close_timeout``
  to come (:attr:`Due.CLOSE_TIMEOUT`); RFC 6455 §7.1.1 then lets the server
  close TCP without it.
* **Sending.** A send that could hand no byte to the kernel for
  ``send_timeout`` seconds (:attr:`Due.SEND_TIMEOUT`) means the peer stopped
  reading: a Close frame cannot reach it either, so the connection is aborted.
  The clock restarts with every byte the kernel takes, so a slow reader that
  does read is never cut.
"""

from __future__ import annotations

import enum

__all__ = ["PING_RETRY", "Deadlines", "Due"]

#: Seconds before a keepalive ping held up by a send in progress is tried again.
PING_RETRY = 0.5


class Due(enum.Enum):
    """What the connection must do now."""

    #: Send a keepalive ping (if a send is in progress, say so with
    #: :meth:`Deadlines.ping_held_up`).
    PING = "ping"
    #: The peer answered neither our ping nor anything else: fail with 1011.
    KEEPALIVE_TIMEOUT = "keepalive timeout"
    #: The peer's Close did not come within ``close_timeout``: close TCP (1006).
    CLOSE_TIMEOUT = "close timeout"
    #: No byte could be sent for ``send_timeout``: abort the connection (1006).
    SEND_TIMEOUT = "send timeout"


class Deadlines:
    """The timers of one connection. ``None`` turns a timer off.

    ``now`` is when the connection opened. ``keepalive`` is False once the
    connection is no longer open for messages (keepalive is over then).
    """

    __slots__ = (
        "_closing_since",
        "_heard_at",
        "_ping_held_until",
        "_ping_sent_at",
        "_send_stuck_since",
        "close_timeout",
        "keepalive",
        "ping_interval",
        "ping_timeout",
        "send_timeout",
    )

    def __init__(
        self,
        now: float,
        *,
        ping_interval: float | None,
        ping_timeout: float | None,
        close_timeout: float,
        send_timeout: float | None,
    ) -> None:
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.send_timeout = send_timeout
        self.keepalive = ping_interval is not None
        self._heard_at = now
        #: When the unanswered keepalive ping went out (None: none outstanding).
        self._ping_sent_at: float | None = None
        #: A ping held up by a send: not to be tried again before then.
        self._ping_held_until: float | None = None
        self._closing_since: float | None = None
        self._send_stuck_since: float | None = None

    # -- what happened ----------------------------------------------------------

    def heard(self, now: float) -> None:
        """Bytes came from the peer: it is alive, and any outstanding ping is answered."""
        self._heard_at = now
        self._ping_sent_at = None
        self._ping_held_until = None

    def ping_sent(self, now: float) -> None:
        self._ping_sent_at = now
        self._ping_held_until = None

    def ping_held_up(self, now: float) -> None:
        """The ping that is due could not be sent (a send holds the connection)."""
        self._ping_held_until = now + PING_RETRY

    def closing(self, now: float) -> None:
        """Our Close frame is sent (or the protocol sent one itself): keepalive ends,
        the wait for the peer's Close begins. Later calls change nothing."""
        self.keepalive = False
        if self._closing_since is None:
            self._closing_since = now

    def send_blocked(self, now: float) -> None:
        """A send found the kernel's buffer full. Later calls keep the first time."""
        if self._send_stuck_since is None:
            self._send_stuck_since = now

    def send_progressed(self, now: float) -> None:
        """The kernel took bytes after a send had found its buffer full.

        The peer's TCP acknowledged what we had sent, so the peer is alive (as
        if heard: a slow reader of a large message is not failed by
        keepalive while its ping waits behind that message), and the send
        clock stops.
        """
        if self._send_stuck_since is not None:
            self._send_stuck_since = None
            self.heard(now)

    # -- what to do -------------------------------------------------------------

    def due(self, now: float) -> Due | None:
        """The most severe action that has come at ``now``; None if none has."""
        at = self._send_timeout_at()
        if at is not None and now >= at:
            return Due.SEND_TIMEOUT
        at = self._close_timeout_at()
        if at is not None and now >= at:
            return Due.CLOSE_TIMEOUT
        at = self._keepalive_timeout_at()
        if at is not None and now >= at:
            return Due.KEEPALIVE_TIMEOUT
        at = self._ping_at()
        if at is not None and now >= at:
            return Due.PING
        return None

    def give_up_at(self) -> float | None:
        """When a send that waits for room must give up at the latest (None: never).

        Its own timeout, or keepalive's verdict on a peer silent meanwhile: the
        send holds the connection's send lock, so the ping cannot go out.
        """
        return _earliest(self._send_timeout_at(), self._keepalive_timeout_at())

    def next_at(self) -> float | None:
        """When the next action comes (it may have come already); None: never."""
        return _earliest(
            self._send_timeout_at(),
            self._close_timeout_at(),
            self._keepalive_timeout_at(),
            self._ping_at(),
        )

    # -- each rule's deadline, in one place ----------------------------------------

    def _send_timeout_at(self) -> float | None:
        if self.send_timeout is None or self._send_stuck_since is None:
            return None
        return self._send_stuck_since + self.send_timeout

    def _close_timeout_at(self) -> float | None:
        if self._closing_since is None:
            return None
        return self._closing_since + self.close_timeout

    def _keepalive_timeout_at(self) -> float | None:
        # ping_timeout after the ping went out, or after it fell due if a
        # send held it up.
        if not self.keepalive or self.ping_interval is None or self.ping_timeout is None:
            return None
        sent = self._ping_sent_at
        base = self._heard_at + self.ping_interval if sent is None else sent
        return base + self.ping_timeout

    def _ping_at(self) -> float | None:
        if not self.keepalive or self.ping_interval is None or self._ping_sent_at is not None:
            return None  # one ping outstanding at a time
        ping_at = self._heard_at + self.ping_interval
        held = self._ping_held_until
        return ping_at if held is None or held < ping_at else held


def _earliest(*times: float | None) -> float | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None
