"""Testing WebSocket handlers with wsgiws.testing: no server, no port, plain pytest.

Run it from the root of the repository::

    pytest examples/test_with_client.py

The application is defined here to keep the example in one file; in a project
the tests import it from the package instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any, Callable

import pytest
import webob

from wsgiws import ConnectionClosed, Reject, WebSocket, WebSocketMiddleware
from wsgiws.testing import HandshakeRejected, TestClient

# -- the application under test ------------------------------------------------

USERS = {"alice-token": "alice", "bob-token": "bob"}


def website(
    environ: MutableMapping[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """The rest of the site: here, nothing but 404s."""
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"Not Found\n"]


def authenticate(request: webob.Request) -> None:
    """The accept hook: a known token in the X-Token header, or no WebSocket."""
    if request.headers.get("X-Token") not in USERS:
        raise Reject(401, "log in first", {"WWW-Authenticate": 'Bearer realm="rooms"'})


def room(ws: WebSocket, name: str) -> None:
    """Answer each text message, signed with the user and the room; "bye" ends it."""
    user = USERS[ws.request.headers["X-Token"]]
    for message in ws:
        if not isinstance(message, str):
            ws.close(1003, "text messages only")  # RFC 6455 §7.4.1: unacceptable data
            return
        if message == "bye":
            ws.close(4000, f"goodbye, {user}")
            return
        ws.send(f"{user}@{name}: {message}")


application = WebSocketMiddleware(
    website,
    {"/rooms/{name}": room},
    accept=authenticate,
    origins=["https://rooms.example.com", None],  # None: clients that send no Origin
)

# -- the tests -------------------------------------------------------------------


@pytest.fixture
def client() -> Iterator[TestClient]:
    # Every handshake of this client carries alice's token; the block closes
    # any connection a failing test left open.
    with TestClient(application, headers={"X-Token": "alice-token"}) as client:
        yield client


def test_messages_come_back_signed(client: TestClient) -> None:
    with client.connect("/rooms/lobby", origin="https://rooms.example.com") as ws:
        ws.send("hello")
        assert ws.receive(timeout=5) == "alice@lobby: hello"
    assert ws.close_code == 1000  # leaving the block is a clean closing handshake


def test_the_handler_can_end_the_conversation(client: TestClient) -> None:
    with client.connect("/rooms/lobby", headers={"X-Token": "bob-token"}) as ws:
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.receive(timeout=5)
    assert (closed.value.code, closed.value.reason) == (4000, "goodbye, bob")


def test_binary_messages_are_refused(client: TestClient) -> None:
    with client.connect("/rooms/lobby") as ws:
        ws.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as closed:
            ws.receive(timeout=5)
    assert closed.value.code == 1003


def test_strangers_are_refused(client: TestClient) -> None:
    with pytest.raises(HandshakeRejected) as rejected:
        client.connect("/rooms/lobby", headers={"X-Token": "stolen"})
    assert rejected.value.status_code == 401
    assert rejected.value.headers["WWW-Authenticate"] == 'Bearer realm="rooms"'
    assert rejected.value.text == "log in first\n"


def test_other_sites_are_refused(client: TestClient) -> None:
    with pytest.raises(HandshakeRejected) as rejected:
        client.connect("/rooms/lobby", origin="https://evil.example")
    assert rejected.value.status_code == 403


def test_unknown_paths_get_the_sites_answer(client: TestClient) -> None:
    with pytest.raises(HandshakeRejected) as rejected:
        client.connect("/nowhere")
    assert rejected.value.status_code == 404
