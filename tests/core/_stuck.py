"""Scenarios of a peer that stops reading, run in an interpreter of their own per kit.

Run as ``python -m tests.core._stuck KIT SCENARIO SCALE``: KIT is ``threads``,
``gevent`` or ``eventlet`` (unpatched: the sockets are the green library's
own, as an unpatched green server hands them over), SCENARIO one of
:data:`SCENARIOS`, SCALE the test suite's timeout factor. It prints one line,
``OK`` and figures, or raises. A separate interpreter because importing
eventlet into the test process makes every later fork warn (see
test_concurrency.py).

Each scenario floods a WebSocket whose peer (a TCP socket on loopback with a
small receive buffer) never reads, so that the server's sends block for real.
"""

from __future__ import annotations

import socket
import sys
import time
import warnings
from typing import Any, Callable

import webob

from wsgiws import ConnectionClosed, WebSocket
from wsgiws._concurrency import EVENTLET, GEVENT, THREADS, Kit

#: One message of the floods: large enough to fill small buffers in a few sends.
CHUNK = b"x" * 65536


def _socket_module(kit_name: str) -> Any:
    if kit_name == "gevent":
        import gevent.socket

        return gevent.socket
    if kit_name == "eventlet":
        with warnings.catch_warnings():  # "Eventlet is deprecated": known, not ours
            warnings.simplefilter("ignore")
            import eventlet.green.socket

        return eventlet.green.socket
    return socket


def _kit(kit_name: str) -> Kit:
    return {"threads": THREADS, "gevent": GEVENT, "eventlet": EVENTLET}[kit_name]


def _pair(kit_name: str) -> tuple[Any, socket.socket]:
    """(server socket of the kit's class, client socket that will not read)."""
    module = _socket_module(kit_name)
    listener = module.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = module.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    listener.close()
    return server, client


class Scenario:
    def __init__(self, kit_name: str, scale: float, **options: Any) -> None:
        self.kit = _kit(kit_name)
        self.scale = scale
        self.server, self.client = _pair(kit_name)
        self.ws = WebSocket(self.server, self.kit, request=webob.Request.blank("/stuck"), **options)

    def spawn(self, function: Callable[[], object]) -> dict[str, Any]:
        """Run ``function`` beside us; the dict gets its outcome."""
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["value"] = function()
            except BaseException as exc:
                result["error"] = exc
            result["done_at"] = time.monotonic()

        self.kit.spawn(run)
        return result

    def flood(self) -> None:
        while True:
            self.ws.send(CHUNK)

    def wait_until(self, condition: Callable[[], bool], what: str, seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds * self.scale
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.kit.sleep(0.005)

    def stuck(self) -> bool:
        """True once a send has waited for room for a while with no progress.

        (Right after the buffers fill, the kernel still frees a little room now
        and then, as it compacts the receive queue: the send is not stuck yet.)
        """
        since = self.ws._deadlines._send_stuck_since
        return since is not None and time.monotonic() - since > 0.2

    def closed_with(self, result: dict[str, Any]) -> ConnectionClosed:
        error = result.get("error")
        if not isinstance(error, ConnectionClosed):
            raise AssertionError(f"expected ConnectionClosed, got {result!r}")
        return error

    def end(self) -> None:
        self.ws._finish()
        self.server.close()
        self.client.close()


def send_timeout(kit_name: str, scale: float) -> str:
    """A flood to a peer that never reads fails with 1006 after send_timeout; so does receive."""
    s = Scenario(kit_name, scale, send_timeout=0.3, ping_interval=None)
    receiver = s.spawn(s.ws.receive)
    start = time.monotonic()
    try:
        s.flood()
    except ConnectionClosed as exc:
        elapsed = time.monotonic() - start
        assert exc.code == 1006, exc
        assert "stopped reading" in exc.reason, exc
    s.wait_until(lambda: "done_at" in receiver, "the receiver to be released")
    assert s.closed_with(receiver).code == 1006
    assert s.ws.closed and s.ws.close_code == 1006
    try:
        s.ws.send("more")
    except ConnectionClosed as exc:
        assert exc.code == 1006
    else:
        raise AssertionError("a send after the abort went through")
    s.end()
    return f"OK send failed after {elapsed:.2f}s (send_timeout 0.3)"


def _release(kit_name: str, scale: float, how: str) -> str:
    close_timeout = 0.5
    s = Scenario(
        kit_name, scale, send_timeout=None, ping_interval=None, close_timeout=close_timeout
    )
    flooder = s.spawn(s.flood)
    s.wait_until(s.stuck, "a send to block")
    start = time.monotonic()
    if how == "close":
        s.ws.close(1001, "bye")
    else:
        s.ws.abort()
    returned = time.monotonic() - start
    s.wait_until(lambda: "done_at" in flooder, "the stuck send to be released", 5)
    released = flooder["done_at"] - start
    error = s.closed_with(flooder)
    assert error.code == 1006, error
    assert s.ws.closed
    if how == "close":
        assert returned < close_timeout + 2 * scale, returned
    # Promptly: the stuck send is woken by the socket's shutdown, not by a
    # timer of its own (it has none: send_timeout and keepalive are off).
    assert released - returned < 0.5 * scale, (returned, released)
    s.end()
    return f"OK {how}() returned after {returned:.3f}s, the stuck send raised after {released:.3f}s"


def close_releases_a_stuck_send(kit_name: str, scale: float) -> str:
    """close() from another thread returns within close_timeout and releases the sender."""
    return _release(kit_name, scale, "close")


def abort_releases_a_stuck_send(kit_name: str, scale: float) -> str:
    """abort() from another thread returns at once and releases the sender."""
    return _release(kit_name, scale, "abort")


def keepalive_with_a_blocked_writer(kit_name: str, scale: float) -> str:
    """A receiver's keepalive fails a silent peer while another thread is stuck in send."""
    s = Scenario(kit_name, scale, send_timeout=None, ping_interval=0.2, ping_timeout=0.3)
    flooder = s.spawn(s.flood)
    s.wait_until(s.stuck, "a send to block")
    start = time.monotonic()
    try:
        while True:
            s.ws.receive()
    except ConnectionClosed as exc:
        failed = time.monotonic() - start
        assert exc.code == 1011, exc
    s.wait_until(lambda: "done_at" in flooder, "the stuck send to be released", 5)
    assert s.closed_with(flooder).code == 1011
    s.end()
    return f"OK keepalive failed the peer {failed:.2f}s after the send blocked"


def keepalive_of_a_handler_that_only_sends(kit_name: str, scale: float) -> str:
    """Without send_timeout, keepalive still ends a send stuck with nobody receiving."""
    s = Scenario(kit_name, scale, send_timeout=None, ping_interval=0.2, ping_timeout=0.3)
    start = time.monotonic()
    try:
        s.flood()
    except ConnectionClosed as exc:
        failed = time.monotonic() - start
        assert exc.code == 1011, exc
    s.end()
    return f"OK keepalive ended the stuck send after {failed:.2f}s"


SCENARIOS: dict[str, Callable[[str, float], str]] = {
    f.__name__: f  # type: ignore[misc]
    for f in (
        send_timeout,
        close_releases_a_stuck_send,
        abort_releases_a_stuck_send,
        keepalive_with_a_blocked_writer,
        keepalive_of_a_handler_that_only_sends,
    )
}


if __name__ == "__main__":
    kit_name, scenario, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
    print(SCENARIOS[scenario](kit_name, scale))
