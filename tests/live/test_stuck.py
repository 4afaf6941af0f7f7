"""A client that stops reading never holds a thread or greenlet of the server (issue 11).

The client is a raw socket with a small receive buffer that, after the
handshake, simply never reads, while the handler floods it with 64 KiB
messages (tests/live/apps.py, ``/stuck-*``, with the timeouts of
tests/live/_shared.py), so that the server's sends block for real:

* its send raises ConnectionClosed(1006) once ``send_timeout`` passes, while
  other clients are served meanwhile and afterwards, and its TCP connection
  ends;
* a second thread (a greenlet on the green servers) stuck in ``send`` is
  released by ``close()`` (within ``close_timeout``) or ``abort()`` (at once)
  from the handler's thread;
* keepalive fails such a client (1011) while a second thread's send is stuck,
  and releases that sender too.

The handlers record how long each release took (``/last-close``); each test
prints those figures. The bounds are generous (scaled margins): they fail a
release that hangs or waits for some later timer, not a slow machine.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import pytest

from tests.conftest import timeout

from . import _scenarios
from ._clients import last_close, new_id
from ._harness import wait_for
from ._shared import (
    STUCK_AFTER,
    STUCK_CLOSE_TIMEOUT,
    STUCK_PING_INTERVAL,
    STUCK_PING_TIMEOUT,
    STUCK_SEND_TIMEOUT,
)
from ._wire import RawClient, accept_for, handshake_request, new_key

#: The stuck client's receive buffer (the kernel doubles it, and keeps a minimum).
RCVBUF = 4096
#: How much later than its deadline a release may come: a slow machine's scheduling
#: delay, far less than the one-second tick a stuck send wakes up on by itself.
MARGIN = 0.5


def _connect_not_reading(server: Any, path: str) -> RawClient:
    """A WebSocket client with a small receive buffer (set before connecting, so that
    the window it offers is small): after the handshake the test never reads it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.settimeout(timeout(10))
        sock.connect(server.address)
        if server.ssl_context is not None:  # wss://: the stuck client speaks TLS
            sock = server.ssl_context.wrap_socket(sock, server_hostname=server.host)
        key = new_key()
        sock.sendall(handshake_request(f"{server.host}:{server.port}", path, key))
        client = RawClient(sock)
        client.read_response_head()
        assert client.status == 101, (client.status, client.headers)
        assert client.headers.get("sec-websocket-accept") == accept_for(key), client.headers
    except BaseException:
        sock.close()
        raise
    return client


def _connection_ends(client: RawClient, seconds: float = 15) -> str:
    """Read the stuck client's socket now: it must end, in EOF or a reset, within
    ``timeout(seconds)``, whatever the server had left unsent. Returns ``"eof"`` or
    ``"reset"``."""
    limit = timeout(seconds)
    deadline = time.monotonic() + limit
    client.sock.settimeout(limit)
    read = 0
    try:
        while time.monotonic() < deadline:
            chunk = client.sock.recv(1 << 20)
            if not chunk:
                return "eof"
            read += len(chunk)
    except (ConnectionResetError, ssl.SSLError):  # over TLS a reset may surface as either
        return "reset"
    except socket.timeout:
        pass
    raise AssertionError(
        f"the stuck client's TCP connection did not end within {limit:.1f}s ({read} bytes read)"
    )


def _ended(server: Any, cid: str, seconds: float) -> dict[str, Any]:
    """The handler's record once it has ended; a handler still stuck after
    ``timeout(seconds)`` fails the test with the record as last seen."""
    seen: list[dict[str, Any] | None] = [None]

    def ended() -> dict[str, Any] | None:
        rec = seen[0] = last_close(server, cid)
        return rec if rec is not None and rec["state"] == "ended" else None

    try:
        rec: dict[str, Any] = wait_for(ended, seconds, f"the handler {cid} to end")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; its record: {seen[0]}") from None
    assert rec["sender"] is not None, rec
    return rec


def _figures(server: Any, what: str, **figures: float) -> None:
    shown = ", ".join(f"{name}={value * 1000:.1f}ms" for name, value in figures.items())
    print(f"FIGURES {server.id} {what}: {shown}")


def test_a_client_that_stops_reading_is_aborted_after_send_timeout(server):
    _stalled_reader_is_aborted(server)


def test_a_tls_client_that_stops_reading_is_aborted_after_send_timeout(tls_server):
    """The same over wss://, the server terminating TLS itself."""
    _stalled_reader_is_aborted(tls_server)


def _stalled_reader_is_aborted(server: Any) -> None:
    cid = new_id()
    client = _connect_not_reading(server, f"/stuck-flood?id={cid}")
    try:

        def stuck() -> dict[str, Any] | None:
            rec = last_close(server, cid)
            if rec is None or rec["state"] != "flooding" or rec["sending_since"] is None:
                return None
            return rec if time.time() - rec["sending_since"] >= STUCK_AFTER else None

        wait_for(stuck, 10, f"the flood of /stuck-flood {cid} to be stuck in a send")
        # Meanwhile another client is served (on the green servers: the hub is free).
        _scenarios.echo_raw_socket(server, "/echo", "while another send is stuck")
        echoed_at = time.time()
        rec = _ended(server, cid, STUCK_SEND_TIMEOUT + 10)
        sender = rec["sender"]
        assert (sender["how"], sender["code"]) == ("ConnectionClosed", 1006), rec
        assert sender["reason"].startswith("the client stopped reading"), rec
        assert echoed_at < sender["at"], (
            f"the echo on another connection ended only after the stuck send did: {rec}"
        )
        took = sender["send_took"]
        assert STUCK_SEND_TIMEOUT - 0.01 <= took <= STUCK_SEND_TIMEOUT + timeout(MARGIN), rec
        how = _connection_ends(client)
    finally:
        client.close()
    _scenarios.echo_raw_socket(server, "/echo", "after")
    _figures(server, f"send_timeout={STUCK_SEND_TIMEOUT} (tcp: {how})", stuck_send_raised=took)


@pytest.mark.parametrize("how", ["close", "abort"])
def test_close_or_abort_releases_a_sender_stuck_in_another_thread(server, how):
    _stuck_sender_is_released(server, how)


@pytest.mark.parametrize("how", ["close", "abort"])
def test_close_or_abort_releases_a_sender_stuck_on_a_tls_client(tls_server, how):
    """The same over wss://, the server terminating TLS itself."""
    _stuck_sender_is_released(tls_server, how)


def _stuck_sender_is_released(server: Any, how: str) -> None:
    cid = new_id()
    client = _connect_not_reading(server, f"/stuck-release?id={cid}&how={how}")
    try:
        rec = _ended(server, cid, STUCK_CLOSE_TIMEOUT + 15)
        call, sender = rec["call"], rec["sender"]
        assert call["how"] == how, rec
        assert call["code"] == 1006, rec
        assert (sender["how"], sender["code"]) == ("ConnectionClosed", 1006), rec
        assert sender["reason"] == call["reason"], rec
        limit = (STUCK_CLOSE_TIMEOUT if how == "close" else 0) + timeout(MARGIN)
        assert call["took"] <= limit, f"{how}() took {call['took']:.3f}s: {rec}"
        released = rec["released_after_return"]
        assert released <= timeout(MARGIN), (
            f"the stuck sender was released {released:.3f}s after {how}() returned: {rec}"
        )
        ending = _connection_ends(client)
    finally:
        client.close()
    _figures(
        server,
        f"{how}() (close_timeout={STUCK_CLOSE_TIMEOUT}; tcp: {ending})",
        call_took=call["took"],
        sender_released_after_return=released,
    )


def test_keepalive_fails_a_client_that_neither_reads_nor_answers_while_a_send_is_stuck(
    server,
):
    _silent_client_is_failed_by_keepalive(server)


def test_keepalive_fails_a_silent_tls_client_while_a_send_is_stuck(tls_server):
    """The same over wss://, the server terminating TLS itself."""
    _silent_client_is_failed_by_keepalive(tls_server)


def _silent_client_is_failed_by_keepalive(server: Any) -> None:
    cid = new_id()
    client = _connect_not_reading(server, f"/stuck-keepalive?id={cid}")
    try:
        rec = _ended(server, cid, STUCK_PING_INTERVAL + STUCK_PING_TIMEOUT + 15)
        assert rec["receive"] == {
            "how": "ConnectionClosed",
            "code": 1011,
            "reason": "keepalive ping timeout",
        }, rec
        assert rec["sender"]["how"] == "ConnectionClosed", rec
        failed = rec["failed_after_stuck"]
        keepalive = STUCK_PING_INTERVAL + STUCK_PING_TIMEOUT
        assert failed <= keepalive + timeout(MARGIN), rec
        released = rec["released_after_receive"]
        assert released <= timeout(MARGIN), (
            f"the stuck sender was released {released:.3f}s after receive() raised: {rec}"
        )
        ending = _connection_ends(client)
    finally:
        client.close()
    _figures(
        server,
        f"keepalive {STUCK_PING_INTERVAL}+{STUCK_PING_TIMEOUT} "
        f"(sender: {rec['sender']['code']}; tcp: {ending})",
        receive_raised_after_stuck=failed,
        sender_released_after_receive=released,
    )
