"""Path patterns on every server: parameters reach the handler; unrouted upgrades reach the app."""

from __future__ import annotations

import json

import pytest

from ._clients import ws_connect
from ._wire import new_key


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/rooms/lobby/7", {"name": "lobby", "n": 7, "n_type": "int"}),
        # Percent-encoded UTF-8 in the path: the parameter is the text, not latin-1 mojibake.
        ("/rooms/caf%C3%A9%20au%20lait/0", {"name": "café au lait", "n": 0, "n_type": "int"}),
    ],
)
def test_path_parameters_reach_the_handler(server, path, expected):
    with ws_connect(server, path) as client:
        assert json.loads(client.recv()) == expected
        client.send("and then an echo")
        assert client.recv() == "and then an echo"
    assert client.close_code == 1000


@pytest.mark.parametrize("path", ["/rooms/lobby", "/rooms/lobby/seven", "/rooms/a/1/more"])
def test_an_upgrade_to_an_unrouted_path_is_the_apps_to_answer(server, path):
    """The wrapped app answers as for any request (this one names what it saw); no 101, no 4xx."""
    response = server.get(
        path,
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": new_key(),
            "Sec-WebSocket-Version": "13",
        },
    )
    assert response.status == 200
    assert response.text == f"plain app: GET {path}\n"
