"""The registry of open connections, ``wsgiws.shutdown()``, and the gunicorn worker watcher.

Fake connections stand in for :class:`~wsgiws.WebSocket` here (the live tier,
tests/live/test_shutdown.py, runs the real thing on every server).
"""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest

import wsgiws
from wsgiws import _shutdown
from wsgiws._concurrency import THREADS
from wsgiws._servers import _base
from wsgiws._servers import gunicorn as gunicorn_adapter


class Adapter(_base.ServerAdapter):
    name = "test"


class FakeWebSocket:
    """Answers _going_away the way a client that echoes the Close would, or never."""

    def __init__(self, *, answers: bool = True, close_timeout: float = 5.0) -> None:
        self._kit = THREADS
        self._close_timeout = close_timeout
        self.answers = answers
        self.closed = False
        self.going_away: list[tuple[int, str]] = []
        self.aborted = False

    def _going_away(self, code: int, reason: str) -> None:
        self.going_away.append((code, reason))
        if self.answers:
            # The handler's receive sees the echo; serve() finishes and untracks.
            def finish() -> None:
                time.sleep(0.05)
                self.closed = True
                _shutdown.untrack(self)  # type: ignore[arg-type]

            threading.Thread(target=finish).start()

    def abort(self) -> None:
        self.aborted = True
        self.closed = True


@pytest.fixture(autouse=True)
def empty_registry() -> Iterator[None]:
    assert not _shutdown.open_connections()
    yield
    _shutdown._refs.clear()


def track(ws: FakeWebSocket) -> None:
    _shutdown.track(ws, Adapter(), {})  # type: ignore[arg-type]


def test_it_is_public() -> None:
    assert wsgiws.shutdown is _shutdown.shutdown


def test_nothing_open_returns_at_once() -> None:
    start = time.monotonic()
    wsgiws.shutdown()
    assert time.monotonic() - start < 0.01


def test_the_registry_holds_connections_weakly() -> None:
    ws = FakeWebSocket()
    track(ws)
    assert _shutdown.open_connections() == [ws]
    del ws
    gc.collect()
    assert _shutdown.open_connections() == []


def test_untrack_forgets_and_tolerates_strangers() -> None:
    ws, other = FakeWebSocket(), FakeWebSocket()
    track(ws)
    _shutdown.untrack(other)  # type: ignore[arg-type]
    _shutdown.untrack(ws)  # type: ignore[arg-type]
    assert _shutdown.open_connections() == []


def test_every_connection_gets_1001_and_shutdown_waits_for_them() -> None:
    sockets = [FakeWebSocket() for _ in range(3)]
    for ws in sockets:
        track(ws)
    start = time.monotonic()
    wsgiws.shutdown()
    assert time.monotonic() - start < 1
    for ws in sockets:
        assert ws.going_away == [(1001, "server shutting down")]
        assert ws.closed and not ws.aborted
    assert _shutdown.open_connections() == []


def test_code_and_reason_are_the_callers() -> None:
    ws = FakeWebSocket()
    track(ws)
    wsgiws.shutdown(1012, "restarting")
    assert ws.going_away == [(1012, "restarting")]


def test_connections_that_do_not_answer_are_aborted_at_the_timeout() -> None:
    quick, silent = FakeWebSocket(), FakeWebSocket(answers=False, close_timeout=0.3)
    track(quick)
    track(silent)
    start = time.monotonic()
    wsgiws.shutdown(timeout=0.3)
    assert 0.3 <= time.monotonic() - start < 1
    assert silent.aborted and not quick.aborted


def test_the_default_timeout_is_the_largest_close_timeout() -> None:
    a = FakeWebSocket(answers=False, close_timeout=0.1)
    b = FakeWebSocket(answers=False, close_timeout=0.4)
    track(a)
    track(b)
    start = time.monotonic()
    wsgiws.shutdown()
    assert 0.4 <= time.monotonic() - start < 1.2
    assert a.aborted and b.aborted


def test_one_broken_connection_spares_no_other() -> None:
    broken, fine = FakeWebSocket(), FakeWebSocket()

    def explode(code: int, reason: str) -> None:
        raise OSError("broken")

    broken._going_away = explode  # type: ignore[method-assign]
    track(broken)
    track(fine)
    wsgiws.shutdown(timeout=0.2)
    assert fine.going_away and fine.closed
    assert broken.aborted


def test_at_exit_sends_the_close_frames_without_waiting() -> None:
    ws = FakeWebSocket(answers=False)
    track(ws)
    start = time.monotonic()
    _shutdown._at_exit()
    assert time.monotonic() - start < 0.05
    assert ws.going_away == [(1001, "server shutting down")]


# -- the gunicorn watcher ---------------------------------------------------------------------


class Kit:
    """The threads kit, counting spawns."""

    def __init__(self) -> None:
        self.spawned = 0

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def spawn(self, function: Callable[[], object]) -> None:
        self.spawned += 1
        threading.Thread(target=function, daemon=True).start()


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A gunicorn worker object whose handle_exit is this process's SIGTERM handler."""
    from gunicorn.workers.base import Worker

    class Cfg:
        graceful_timeout = 5

    w = object.__new__(Worker)
    w.alive = True
    w.cfg = Cfg()
    monkeypatch.setattr(gunicorn_adapter, "_watching", None)
    monkeypatch.setattr(gunicorn_adapter, "WATCH_INTERVAL", 0.01)
    previous = signal.signal(signal.SIGTERM, w.handle_exit)
    try:
        yield w
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_watcher_calls_on_stop_when_the_worker_stops(worker: Any) -> None:
    kit, stops = Kit(), []
    adapter = gunicorn_adapter.Gunicorn()
    adapter.watch({}, kit, stops.append, lambda: True)  # type: ignore[arg-type]
    adapter.watch({}, kit, stops.append, lambda: True)  # type: ignore[arg-type]
    assert kit.spawned == 1  # one watcher per process
    time.sleep(0.05)
    assert stops == []
    worker.handle_exit(signal.SIGTERM, None)  # what SIGTERM does
    deadline = time.monotonic() + 2
    while not stops and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stops == [4.0]  # 80% of the graceful timeout


def test_an_idle_watcher_ends_and_the_next_takeover_starts_another(worker: Any) -> None:
    kit, busy = Kit(), [True]
    adapter = gunicorn_adapter.Gunicorn()
    adapter.watch({}, kit, lambda timeout: None, lambda: busy[0])  # type: ignore[arg-type]
    busy[0] = False
    deadline = time.monotonic() + 2
    while gunicorn_adapter._watching is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gunicorn_adapter._watching is None
    busy[0] = True
    adapter.watch({}, kit, lambda timeout: None, lambda: busy[0])  # type: ignore[arg-type]
    assert kit.spawned == 2


def test_no_watcher_when_sigterm_is_not_a_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gunicorn_adapter, "_watching", None)
    kit = Kit()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        gunicorn_adapter.Gunicorn().watch({}, kit, lambda timeout: None, lambda: True)  # type: ignore[arg-type]
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert kit.spawned == 0
