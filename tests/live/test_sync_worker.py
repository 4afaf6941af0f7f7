"""gunicorn's sync worker (``-k sync --workers 2 --timeout 30``): the basics work there.

The sync worker hands over ``gunicorn.socket`` like the others, but serves one
connection per worker process at a time, and its arbiter kills a worker that
has not reported in for ``--timeout`` seconds, open WebSocket or not. That is
why ``gunicorn-sync`` is not among the servers every live test runs on
(``SUPPORTED``): those tests assume any number of connections at once (20
WebSockets together; HTTP requests to ``/stats`` and ``/last-close`` while
WebSockets are open), which two sync workers cannot give. The tests here keep
at most one WebSocket open at a time and make no HTTP request while one is
open, so they would hold with a single worker too; the second worker answers
the fixture's ``/stats`` while the first one finishes, and every worker keeps
its request count and the ``/record`` outcomes in a directory both share.

The fixture still checks every test's log slice for errors, and that the
workers are the same processes afterwards: a worker killed by the timeout
("WORKER TIMEOUT", "Booting worker") fails the test.
"""

from __future__ import annotations

import re

import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from tests.conftest import timeout

from . import _scenarios
from ._clients import SIZES as ALL_SIZES
from ._clients import new_id, payload, size_id, ws_connect
from ._harness import (
    SYNC_TIMEOUT,
    SYNC_TIMEOUT_SECONDS,
    SYNC_WORKERS,
    LiveServer,
    ServerUnavailable,
    error_lines,
    wait_for,
)
from ._shared import duplex_message
from ._wire import CLOSE, RawClient

#: Up to 1 MiB: every frame-length encoding and its edges.
SIZES = [size for size in ALL_SIZES if size <= 1 << 20]

#: The library's warning, once per worker process, on its first WebSocket.
CAVEAT = "WARNING:wsgiws:gunicorn's sync worker holds one connection per worker"


@pytest.mark.parametrize("size", SIZES, ids=size_id)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_websockets_client(sync_server, kind, size):
    _scenarios.echo_websockets_client(sync_server, "/echo", payload(kind, size), seconds=30)


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_raw_socket_1mib(sync_server, kind):
    _scenarios.echo_raw_socket(sync_server, "/echo", payload(kind, 1 << 20))


def test_pipelined_first_frame(sync_server):
    """The handshake and the first frames in one sendall: gunicorn's parser read them too."""
    _scenarios.pipelined_first_frame(sync_server, "/echo")


def test_client_close_4000_reaches_handler_websockets(sync_server):
    _scenarios.client_close_reaches_handler_websockets(sync_server, new_id())


def test_client_close_4000_raw(sync_server):
    _scenarios.client_close_reaches_handler_raw(sync_server, new_id())


@pytest.mark.parametrize(("code", "reason"), _scenarios.SERVER_CLOSES)
def test_server_close_code_reaches_client(sync_server, code, reason):
    _scenarios.server_close_reaches_client(sync_server, code, reason, ConnectionClosedError)


def test_server_normal_close_reaches_client(sync_server):
    _scenarios.server_close_reaches_client(sync_server, 1000, "done", ConnectionClosedOK)


@pytest.mark.parametrize(("code", "reason"), _scenarios.SERVER_CLOSES_RAW)
def test_nothing_after_server_close_then_eof(sync_server, code, reason):
    """After the server's Close frame: no frame, no HTTP response from gunicorn, then EOF."""
    _scenarios.server_close_then_eof(sync_server, _scenarios.close_path(code, reason), code, reason)


def test_nothing_after_close_when_client_never_answers(sync_server):
    """The close timeout (1 s on this path) ends it: the Close frame, then EOF, nothing else."""
    _scenarios.nothing_after_unanswered_close(sync_server)


def test_duplex_second_thread_sends(sync_server):
    """A sync worker runs the handler in its one thread; the handler may start another."""
    n = 200
    with ws_connect(sync_server, f"/duplex?n={n}") as ws:
        for i in range(n):
            ws.send(duplex_message("c", i))
        received = [ws.recv(timeout=timeout(30)) for _ in range(n)]
        assert ws.recv(timeout=timeout(30)) == "ok"
    assert received == [duplex_message("s", i) for i in range(n)]


def test_http_routes_answer_after_websocket(sync_server):
    with ws_connect(sync_server, "/echo") as ws:
        ws.send("x")
        assert ws.recv(timeout=timeout(10)) == "x"
    for _ in range(2 * SYNC_WORKERS):  # whichever worker takes them
        resp = sync_server.get("/hello")
        assert (resp.status, resp.text) == (200, "hello from the app\n")
    resp = sync_server.get("/echo")
    assert (resp.status, resp.text) == (200, "plain app: GET /echo\n")


def test_caveat_logged_once_per_worker(sync_server):
    """The library warns about the sync worker's limits: once per worker process, no more."""
    with ws_connect(sync_server, "/echo") as ws:
        ws.send("x")
        assert ws.recv(timeout=timeout(10)) == "x"
    sync_server.settle()
    count = sync_server.server.log_since(0).count(CAVEAT)
    assert 1 <= count <= SYNC_WORKERS, sync_server.server.log_since(0)[-3000:]


#: What gunicorn logs when its arbiter aborts a sync worker in the middle of a
#: request: the library re-raises the worker's SystemExit after closing with 1001.
_ABORT_LINES = [
    re.compile(p)
    for p in (
        r"\[CRITICAL\] WORKER TIMEOUT \(pid:\d+\)",
        r"\[ERROR\] Error handling request GET /echo$",
        r"^Traceback \(most recent call last\):$",
        r"^SystemExit: 1$",
        r'"GET /echo HTTP/1\.1" 500 ',
        r"\[INFO\] Worker exiting \(pid: \d+\)$",
        r"\[INFO\] Booting worker with pid: \d+$",
    )
]


def test_worker_timeout_ends_websocket_with_1001(tmp_path):
    """The known caveat, as it shows: after --timeout the arbiter aborts the worker, and
    the client gets a Close frame with 1001 (going away), then EOF; a new worker serves on."""
    server = LiveServer(SYNC_TIMEOUT, tmp_path / "server.log")
    try:
        server.start()
    except ServerUnavailable as exc:
        server.stop()
        pytest.skip(f"{SYNC_TIMEOUT} cannot run here: {exc}")
    try:
        mark = server.mark()
        client = RawClient.connect(server.address, "/echo")
        try:
            client.send("hi")
            assert client.recv_message() == "hi"
            # The handler now waits in receive(); nothing reports to the arbiter.
            closing = client.recv_message()
            assert not isinstance(closing, (str, bytes)), closing
            assert (closing.opcode, closing.close_code) == (CLOSE, 1001)
            client.send_close(1001)
            assert client.read_until_eof(seconds=30) == b""
        finally:
            client.close()
        booted = "Booting worker with pid"
        wait_for(
            lambda: server.log_since(mark).count(booted) == 1,
            SYNC_TIMEOUT_SECONDS + 20,
            "the arbiter to boot a new worker",
        )
        resp = server.get("/hello")
        assert (resp.status, resp.text) == (200, "hello from the app\n")
        log = server.log_since(mark)
        assert "WORKER TIMEOUT" in log, log
        unexpected = [
            line for line in error_lines(log) if not any(p.search(line) for p in _ABORT_LINES)
        ]
        assert not unexpected, log
    finally:
        server.stop()
