"""A second thread (a greenlet on the green servers) sends while the handler receives."""

from __future__ import annotations

import threading

from tests.conftest import timeout

from . import _scenarios
from ._clients import ws_connect
from ._shared import duplex_message
from ._wire import RawClient

N = 1000


def _check_received(received: list[str | bytes]) -> None:
    assert len(received) == N, f"received {len(received)} of {N} messages"
    for i, message in enumerate(received):
        expected = duplex_message("s", i)
        if message != expected:
            got = message[:40] if isinstance(message, (str, bytes)) else message
            raise AssertionError(f"message {i} is not the {i}th sent: got {got!r}...")


def _run_sender(send, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            for i in range(N):
                send(duplex_message("c", i))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="client-sender", daemon=True)
    thread.start()
    return thread


def test_duplex_websockets(server):
    errors: list[BaseException] = []
    with ws_connect(server, f"/duplex?n={N}") as ws:
        thread = _run_sender(ws.send, errors)
        received = [ws.recv(timeout=timeout(30)) for _ in range(N)]
        summary = ws.recv(timeout=timeout(30))
        thread.join(timeout(30))
        assert not thread.is_alive(), "the client's sender did not finish"
    assert not errors, errors
    _check_received(received)
    assert summary == "ok", f"the server's receiving side: {summary}"


def test_duplex_raw(server):
    errors: list[BaseException] = []
    client = RawClient.connect(server.address, f"/duplex?n={N}")
    try:
        thread = _run_sender(client.send, errors)
        received = [client.recv_message() for _ in range(N)]
        summary = client.recv_message()
        thread.join(timeout(30))
        assert not thread.is_alive(), "the client's sender did not finish"
        _scenarios.close_cleanly(client)
    finally:
        client.close()
    assert not errors, errors
    _check_received(received)
    assert summary == "ok", f"the server's receiving side: {summary}"
