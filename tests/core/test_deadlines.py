"""The connection's timers, sans I/O, on a fake clock: every rule of wsgiws._deadlines."""

from __future__ import annotations

from wsgiws._deadlines import PING_RETRY, Deadlines, Due


def timers(
    *,
    ping_interval: float | None = 10.0,
    ping_timeout: float | None = 5.0,
    close_timeout: float = 3.0,
    send_timeout: float | None = 20.0,
) -> Deadlines:
    return Deadlines(
        100.0,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        send_timeout=send_timeout,
    )


def test_a_silent_peer_gets_a_ping_after_the_interval() -> None:
    d = timers()
    assert d.due(109.9) is None
    assert d.next_at() == 110.0
    assert d.due(110.0) is Due.PING


def test_bytes_from_the_peer_put_the_ping_off() -> None:
    d = timers()
    d.heard(105.0)
    assert d.due(110.0) is None
    assert d.due(115.0) is Due.PING


def test_an_unanswered_ping_fails_the_peer_after_ping_timeout() -> None:
    d = timers()
    d.ping_sent(110.0)
    assert d.due(114.9) is None
    assert d.next_at() == 115.0
    assert d.due(115.0) is Due.KEEPALIVE_TIMEOUT


def test_any_bytes_answer_the_ping() -> None:
    d = timers()
    d.ping_sent(110.0)
    d.heard(112.0)  # a pong, or any message
    assert d.due(115.0) is None
    assert d.due(122.0) is Due.PING


def test_a_ping_held_up_by_a_send_fails_the_peer_from_when_it_was_due() -> None:
    """A send stuck on a peer that does not read must not shield it from keepalive."""
    d = timers()
    now = 110.0
    while d.due(now) is Due.PING:  # the send lock is taken every time
        d.ping_held_up(now)
        now = d.next_at()  # type: ignore[assignment]
        assert now <= 115.0
    assert d.next_at() == 115.0
    assert d.due(115.0) is Due.KEEPALIVE_TIMEOUT


def test_a_held_up_ping_is_tried_again_after_the_retry_delay() -> None:
    d = timers()
    d.ping_held_up(110.0)
    assert d.due(110.0 + PING_RETRY / 2) is None
    assert d.next_at() == 110.0 + PING_RETRY
    assert d.due(110.0 + PING_RETRY) is Due.PING
    d.ping_sent(110.0 + PING_RETRY)
    assert d.next_at() == 110.0 + PING_RETRY + 5.0


def test_without_ping_timeout_pings_go_out_but_nobody_fails() -> None:
    d = timers(ping_timeout=None)
    assert d.due(110.0) is Due.PING
    d.ping_sent(110.0)
    assert d.due(10_000.0) is None  # one outstanding ping; no timeout
    d.heard(10_000.0)
    assert d.due(10_010.0) is Due.PING
    d.ping_held_up(10_010.0)
    assert d.due(10_000_000.0) is Due.PING  # held up for ever: never a failure


def test_without_ping_interval_there_is_no_keepalive() -> None:
    d = timers(ping_interval=None)
    assert d.due(1e9) is None
    assert d.next_at() is None


def test_closing_ends_keepalive_and_bounds_the_wait_for_the_peers_close() -> None:
    d = timers()
    d.ping_sent(110.0)
    d.closing(112.0)
    d.closing(113.0)  # a second Close changes nothing
    assert d.due(114.9) is None  # the ping's deadline (115) no longer counts
    assert d.next_at() == 115.0
    assert d.due(115.0) is Due.CLOSE_TIMEOUT
    assert d.due(1e9) is Due.CLOSE_TIMEOUT


def test_a_send_with_no_progress_for_send_timeout_times_out() -> None:
    d = timers(ping_interval=None)
    d.send_blocked(101.0)
    d.send_blocked(110.0)  # still the same stall: the first time counts
    assert d.due(120.9) is None
    assert d.next_at() == 121.0
    assert d.due(121.0) is Due.SEND_TIMEOUT


def test_progress_restarts_the_send_clock_and_proves_the_peer_alive() -> None:
    d = timers()
    d.send_blocked(101.0)
    d.send_progressed(118.0)  # the peer's TCP took bytes: a slow reader, not a dead one
    assert d.due(121.0) is None
    assert d.due(127.9) is None  # heard at 118: the ping is due at 128, not 110
    assert d.due(128.0) is Due.PING
    d.send_blocked(128.0)
    assert d.next_at() == 128.0  # the ping comes first; the send times out at 148
    d.ping_held_up(128.0)
    assert d.due(133.0) is Due.KEEPALIVE_TIMEOUT  # 118 + 10 + 5: before the send timeout


def test_progress_without_a_stall_changes_nothing() -> None:
    d = timers()
    d.send_progressed(105.0)  # a send that never waited proves nothing
    assert d.due(110.0) is Due.PING


def test_without_send_timeout_a_stalled_send_never_times_out() -> None:
    d = timers(ping_interval=None, send_timeout=None)
    d.send_blocked(101.0)
    assert d.due(1e9) is None
    assert d.next_at() is None


def test_a_send_timeout_wins_a_tie_with_keepalive_and_with_closing() -> None:
    """When two deadlines have passed, the abort comes first: no ping for a dead connection."""
    d = timers(ping_interval=10.0, ping_timeout=5.0, send_timeout=20.0)
    d.ping_sent(110.0)  # keepalive fails at 115
    d.send_blocked(95.0)  # the send times out at 115
    assert d.next_at() == 115.0
    assert d.due(115.0) is Due.SEND_TIMEOUT
    d.closing(112.0)  # the close times out at 115 too
    assert d.due(116.0) is Due.SEND_TIMEOUT
    d.send_progressed(116.0)
    assert d.due(116.0) is Due.CLOSE_TIMEOUT
