"""Path patterns: ``{name}``, ``{name:int}``, ``{name:path}``; and the middleware's use of them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.test_middleware import HANDSHAKE, Response, Upgrade, inner_app
from wsgiws import Endpoint, WebSocket, WebSocketMiddleware
from wsgiws._routing import Route, Router


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/chat", "/chat", {}),
        ("/chat", "/chat/", None),
        ("/chat/{room}", "/chat/lobby", {"room": "lobby"}),
        ("/chat/{room}", "/chat/caf\u00e9 au lait", {"room": "caf\u00e9 au lait"}),
        ("/chat/{room}", "/chat/", None),
        ("/chat/{room}", "/chat/a/b", None),
        ("/chat/{room}", "/chatroom/a", None),
        ("/chat/{room:str}", "/chat/a.b", {"room": "a.b"}),
        ("/game/{n:int}", "/game/42", {"n": 42}),
        ("/game/{n:int}", "/game/-1", None),
        ("/game/{n:int}", "/game/4x", None),
        ("/files/{rest:path}", "/files/a/b/c.txt", {"rest": "a/b/c.txt"}),
        ("/files/{rest:path}", "/files/", None),
        ("/{a}/x/{b}", "/1/x/2", {"a": "1", "b": "2"}),
        ("/{a}-{b}", "/x-y", {"a": "x", "b": "y"}),
        # Literal parts are literal, not regular expressions.
        ("/v1.0/{x}", "/v1x0/a", None),
        ("/v1.0/{x}", "/v1.0/a", {"x": "a"}),
    ],
)
def test_patterns_match_and_convert(pattern: str, path: str, expected: Any) -> None:
    assert Route.compile(pattern, None).match(path) == expected


@pytest.mark.parametrize(
    ("pattern", "complaint"),
    [
        ("chat/{room}", "must start with '/'"),
        ("/chat/{}", "Python identifier"),
        ("/chat/{1room}", "Python identifier"),
        ("/chat/{room:float}", "unknown converter 'float'"),
        ("/chat/{room}/{room}", "appears twice"),
        ("/chat/{room", "unbalanced brace"),
        ("/chat/room}", "unbalanced brace"),
        ("/chat/}{room}", "unbalanced brace"),
    ],
)
def test_malformed_patterns_are_refused_at_construction(pattern: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        WebSocketMiddleware(inner_app, {pattern: print})


def test_exact_paths_win_then_patterns_in_the_order_given() -> None:
    router = Router([("/{a}", "first"), ("/{b:int}", "second"), ("/lobby", "exact")])
    assert router.match("/lobby") == ("exact", {})
    assert router.match("/7") == ("first", {"a": "7"})
    assert router.match("/7/8") is None
    assert [r.pattern for r in router.routes] == ["/lobby", "/{a}", "/{b:int}"]


def test_the_handler_gets_the_parameters_as_keyword_arguments() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def room(ws: WebSocket, **params: Any) -> None:
        seen.append((ws.path, params))

    mw = WebSocketMiddleware(
        inner_app,
        {"/chat/{room}": room, "/game/{n:int}/{rest:path}": Endpoint(room, compression=None)},
    )
    for path in ("/chat/lobby", "/game/3/a/b"):
        up = Upgrade(mw, PATH_INFO=path)
        up.read_101()
        up.peer.expect_close()
        up.join()
        assert up.environ["wsgiws.path_params"] == seen[-1][1]
    assert seen == [("/chat/lobby", {"room": "lobby"}), ("/game/3/a/b", {"n": 3, "rest": "a/b"})]
    assert set(mw.handlers) == {"/chat/{room}", "/game/{n:int}/{rest:path}"}


def test_parameters_are_the_utf8_text_of_the_path() -> None:
    """PEP 3333's PATH_INFO is latin-1-decoded bytes; the room is what the client typed."""
    seen: list[str] = []
    mw = WebSocketMiddleware(inner_app, {"/chat/{room}": lambda ws, room: seen.append(room)})
    for raw, room in [("/chat/caf\u00c3\u00a9", "caf\u00e9"), ("/chat/\u00ff", "\u00ff")]:
        up = Upgrade(mw, PATH_INFO=raw)
        up.read_101()
        up.peer.expect_close()
        up.join()
        assert seen[-1] == room


def test_an_upgrade_no_route_matches_goes_to_the_app() -> None:
    """The wrapped app answers it as it would any other request (here 200; a framework 404s)."""
    mw = WebSocketMiddleware(inner_app, {"/chat/{room}": print})
    for path in ("/chat", "/chat/a/b", "/elsewhere"):
        response = Response().call(mw, {**HANDSHAKE, "PATH_INFO": path})
        assert response.status == "200 OK"
        assert b"".join(response.body) == b"from the app: " + path.encode()
