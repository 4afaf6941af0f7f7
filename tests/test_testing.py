"""wsgiws.testing: the in-process test client, against the middleware and a Flask app.

In-memory tier: the client calls the WSGI app itself over a socket pair; no
server, no subprocess. Every wait is bounded by ``timeout(...)``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest

from tests.conftest import timeout
from wsgiws import ConnectionClosed, Endpoint, Reject, WebSocket, WebSocketMiddleware
from wsgiws._servers import ADAPTERS
from wsgiws._servers.inprocess import InProcess
from wsgiws.testing import HandshakeRejected, TestClient, TestWebSocket

StartResponse = Callable[..., Any]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "test_with_client.py"


def load_example() -> ModuleType:
    """examples/test_with_client.py, by its path (``examples`` is also tests/examples)."""
    spec = importlib.util.spec_from_file_location("wsgiws_example_test_with_client", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The how-to's example (docs/howto/testing.rst) runs as part of this module: its
# fixture and its tests, under the names "test_example_*".
_example = load_example()
client = _example.client
for _name, _test in vars(_example).items():
    if _name.startswith("test_"):
        globals()["test_example_" + _name[len("test_") :]] = _test


def site(environ: MutableMapping[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The wrapped plain app: a page at /page, 400 for any other path."""
    if environ["PATH_INFO"] == "/page":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [b"<p>a page</p>"]
    body = f"no such path: {environ['PATH_INFO']}\n".encode()
    start_response(
        "400 Bad Request",
        [("Content-Type", "text/plain; charset=utf-8"), ("X-Site", "plain")],
    )
    return [body]


def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


def connect(client: TestClient, path: str, **kwargs: Any) -> TestWebSocket:
    kwargs.setdefault("timeout", timeout(10))
    return client.connect(path, **kwargs)


def receive(ws: TestWebSocket) -> Any:
    return ws.receive(timeout=timeout(10))


# -- messages --------------------------------------------------------------------


def test_echo_text_and_binary() -> None:
    client = TestClient(WebSocketMiddleware(site, echo, path="/echo"))
    with connect(client, "/echo") as ws:
        ws.send("hello, wsgiws")
        assert receive(ws) == "hello, wsgiws"
        ws.send(b"\x00\x01\xfe\xff")
        assert receive(ws) == b"\x00\x01\xfe\xff"
        ws.send("")
        assert receive(ws) == ""
        ws.send("gruß, 世界")
        assert receive(ws) == "gruß, 世界"
        assert list(ws.extensions) == ["permessage-deflate"]
    assert ws.close_code == 1000
    assert ws.app_response is not None
    assert ws.app_response.status == "101 Switching Protocols"
    assert ws.app_response.body == b""


@pytest.mark.parametrize("compression", [True, False])
def test_echo_of_several_mebibytes(compression: bool) -> None:
    size = 5 * 1024 * 1024
    app = WebSocketMiddleware(site, echo, path="/echo", max_message_size=2 * size)
    binary = os.urandom(size)
    text = "wsgiws é " * (size // 10)
    with connect(TestClient(app), "/echo", compression=compression) as ws:
        assert ws.compressed is compression
        ws.send(binary)
        ws.send(text)
        assert receive(ws) == binary
        assert receive(ws) == text
    assert ws.close_code == 1000


def test_sending_while_the_server_sends_back_cannot_deadlock() -> None:
    # Twenty 1 MiB messages without reading: the handler echoes each at once,
    # filling the client's socket buffer, and only reads on once the client
    # reads. The client reads while it writes, and keeps what it read.
    app = WebSocketMiddleware(site, echo, path="/echo", max_message_size=None)
    chunks = [bytes([n]) * (1024 * 1024) for n in range(20)]
    with connect(TestClient(app), "/echo", compression=False) as ws:
        for chunk in chunks:
            ws.send(chunk)
        assert [receive(ws) for _ in chunks] == chunks


def test_iteration_ends_when_the_server_closes_normally() -> None:
    def count(ws: WebSocket) -> None:
        for n in range(3):
            ws.send(str(n))

    with connect(TestClient(WebSocketMiddleware(site, count)), "/ws") as ws:
        assert list(ws) == ["0", "1", "2"]
    assert ws.close_code == 1000


def test_receive_times_out_and_the_connection_stays_usable() -> None:
    with connect(TestClient(WebSocketMiddleware(site, echo)), "/ws") as ws:
        with pytest.raises(TimeoutError, match=r"within 0\.01s"):
            ws.receive(timeout=0.01)
        ws.send("still here")
        assert receive(ws) == "still here"


def test_ping_waits_for_the_pong() -> None:
    # The server answers pings while its handler reads (or sends); this one
    # does neither until told to.
    listen = threading.Event()

    def handler(ws: WebSocket) -> None:
        listen.wait(timeout(10))
        ws.receive()  # answers the ping while it waits; ends at the client's Close

    with connect(TestClient(WebSocketMiddleware(site, handler)), "/ws") as ws:
        with pytest.raises(TimeoutError, match="no pong"):
            ws.ping(b"first", timeout=0.05)
        listen.set()
        ws.ping(b"are you there?", timeout=timeout(10))
    assert ws.close_code == 1000


def test_the_servers_keepalive_pings_are_answered() -> None:
    # The server pings a silent client every 20 ms and gives up after 0.5 s
    # without an answer; the handler listens for longer than that.
    def patient(ws: WebSocket) -> None:
        assert ws.receive(timeout=timeout(1.5)) is None
        ws.send("still connected")

    app = WebSocketMiddleware(site, patient, ping_interval=0.02, ping_timeout=timeout(0.5))
    with connect(TestClient(app), "/ws") as ws:
        assert receive(ws) == "still connected"
    assert ws.close_code == 1000


# -- the request the handler sees ---------------------------------------------------


def report(ws: WebSocket, **params: Any) -> None:
    """Send back what the handler can learn about the request, as JSON."""
    request = ws.request
    ws.send(
        json.dumps(
            {
                "params": params,
                "path": ws.path,
                "script_name": request.script_name,
                "query": request.GET.mixed(),
                "token": request.headers.get("X-Token"),
                "extra": request.headers.get("X-Extra"),
                "origin": request.headers.get("Origin"),
                "cookies": dict(request.cookies),
                "host": request.host,
                "url": request.url,
                "scheme": request.scheme,
                "multithread": request.environ["wsgi.multithread"],
                "subprotocol": ws.subprotocol,
            }
        )
    )


def test_headers_cookies_query_and_origin_reach_the_handler() -> None:
    client = TestClient(
        WebSocketMiddleware(site, report),
        headers={"X-Token": "client-default", "X-Extra": "a"},
        cookies={"session": "abc", "theme": "dark"},
        origin="https://default.example",
    )
    with connect(
        client,
        "/ws?a=1",
        headers={"X-Token": "t"},
        cookies={"theme": "light"},
        origin="https://example.com",
        query_string="b=2&b=3",
    ) as ws:
        seen = json.loads(receive(ws))
    assert seen["token"] == "t"  # the call's header replaces the client's
    assert seen["extra"] == "a"  # the client's other headers are kept
    assert seen["cookies"] == {"session": "abc", "theme": "light"}
    assert seen["origin"] == "https://example.com"
    assert seen["query"] == {"a": "1", "b": ["2", "3"]}
    assert seen["url"] == "http://localhost/ws?a=1&b=2&b=3"
    assert seen["multithread"] is True
    # The client's own Origin is sent when the call gives none.
    with connect(client, "/ws", query_string={"q": "x y"}) as ws:
        seen = json.loads(receive(ws))
    assert seen["origin"] == "https://default.example"
    assert seen["query"] == {"q": "x y"}


def test_base_url_sets_scheme_host_port_and_mount_point() -> None:
    client = TestClient(WebSocketMiddleware(site, report), base_url="wss://example.com:8443/app/")
    with connect(client, "/ws") as ws:
        seen = json.loads(receive(ws))
    assert seen["scheme"] == "https"
    assert seen["host"] == "example.com:8443"
    assert seen["script_name"] == "/app" and seen["path"] == "/ws"
    assert seen["url"] == "https://example.com:8443/app/ws"


def test_path_parameters_reach_the_handler() -> None:
    app = WebSocketMiddleware(site, {"/chat/{room}": report, "/items/{n:int}/{rest:path}": report})
    client = TestClient(app)
    with connect(client, "/chat/lobby") as ws:
        assert json.loads(receive(ws))["params"] == {"room": "lobby"}
    # The path is percent-decoded as a server decodes it (PEP 3333).
    with connect(client, "/chat/caf%C3%A9") as ws:
        assert json.loads(receive(ws))["params"] == {"room": "café"}
    with connect(client, "/chat/café") as ws:
        assert json.loads(receive(ws))["params"] == {"room": "café"}
    with connect(client, "/items/42/a/b") as ws:
        assert json.loads(receive(ws))["params"] == {"n": 42, "rest": "a/b"}


def test_subprotocol_negotiation() -> None:
    app = WebSocketMiddleware(site, report, subprotocols=["chat.v2", "chat.v1"])
    client = TestClient(app)
    # The server's order of preference wins over the client's.
    with connect(client, "/ws", subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.response_headers["Sec-WebSocket-Protocol"] == "chat.v2"
        assert json.loads(receive(ws))["subprotocol"] == "chat.v2"
    with connect(client, "/ws", subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"
    with connect(client, "/ws", subprotocols=["other"]) as ws:
        assert ws.subprotocol is None
        assert ws.response_headers["Sec-WebSocket-Protocol"] is None
    with connect(client, "/ws") as ws:
        assert ws.subprotocol is None


def test_compression_is_offered_by_default_and_negotiated() -> None:
    def offered(ws: WebSocket) -> None:
        ws.send(ws.environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS", ""))
        ws.send("x" * 100_000)

    app = WebSocketMiddleware(site, {"/on": offered, "/off": Endpoint(offered, compression=None)})
    client = TestClient(app)
    with connect(client, "/on") as ws:
        assert ws.compressed and ws.extensions == ("permessage-deflate",)
        # The offer browsers make.
        assert receive(ws) == "permessage-deflate; client_max_window_bits"
        assert receive(ws) == "x" * 100_000
        assert "permessage-deflate" in (ws.response_headers["Sec-WebSocket-Extensions"] or "")
    # Not offered by the client.
    with connect(client, "/on", compression=False) as ws:
        assert not ws.compressed and ws.extensions == ()
        assert receive(ws) == ""
        assert receive(ws) == "x" * 100_000
    # Offered, declined by the server.
    with connect(client, "/off") as ws:
        assert not ws.compressed
        assert ws.response_headers["Sec-WebSocket-Extensions"] is None
        assert receive(ws).startswith("permessage-deflate")
        assert receive(ws) == "x" * 100_000


# -- rejections --------------------------------------------------------------------


def test_forbidden_origin_is_a_403() -> None:
    client = TestClient(WebSocketMiddleware(site, echo, origins=["https://example.com"]))
    with pytest.raises(HandshakeRejected) as rejected:
        connect(client, "/ws", origin="https://evil.example")
    exc = rejected.value
    assert (exc.status_code, exc.status) == (403, "403 Forbidden")
    assert "https://evil.example" in exc.text and exc.text.endswith("\n")
    assert exc.body == exc.text.encode()
    assert exc.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "403 Forbidden" in str(exc)
    with connect(client, "/ws", origin="https://example.com") as ws:
        ws.send("allowed")
        assert receive(ws) == "allowed"


def test_accept_hook_rejection_carries_status_headers_and_body() -> None:
    def hook(request: Any) -> None:
        if request.cookies.get("session") != "valid":
            raise Reject(401, "log in first", {"WWW-Authenticate": 'Bearer realm="ws"'})

    client = TestClient(WebSocketMiddleware(site, echo, accept=hook))
    with pytest.raises(HandshakeRejected) as rejected:
        connect(client, "/ws", cookies={"session": "expired"})
    exc = rejected.value
    assert exc.status == "401 Unauthorized"
    assert exc.headers["www-authenticate"] == 'Bearer realm="ws"'
    assert exc.text == "log in first\n"
    assert exc.response.status_code == 401
    with connect(client, "/ws", cookies={"session": "valid"}) as ws:
        ws.send("in")
        assert receive(ws) == "in"


def test_an_unrouted_path_gets_the_wrapped_apps_own_answer() -> None:
    client = TestClient(WebSocketMiddleware(site, echo, path="/ws"))
    with pytest.raises(HandshakeRejected) as rejected:
        connect(client, "/elsewhere")
    exc = rejected.value
    assert exc.status == "400 Bad Request"
    assert exc.headers["X-Site"] == "plain"
    assert exc.text == "no such path: /elsewhere\n"


def test_an_app_that_answers_200_did_not_upgrade() -> None:
    client = TestClient(WebSocketMiddleware(site, echo, path="/ws"))
    with pytest.raises(HandshakeRejected, match="did not upgrade /page: it answered 200 OK"):
        connect(client, "/page")


def test_a_bad_handshake_header_from_the_test_is_sent_as_given() -> None:
    client = TestClient(WebSocketMiddleware(site, echo))
    with pytest.raises(HandshakeRejected) as rejected:
        connect(client, "/ws", headers={"Sec-WebSocket-Version": "8"})
    assert rejected.value.status_code == 426
    assert rejected.value.headers["Sec-WebSocket-Version"] == "13"


def test_in_process_adapter_is_not_advertised() -> None:
    assert ADAPTERS[-1] is InProcess and not InProcess.advertised
    from wsgiws._upgrade import _SUPPORTED

    assert "testing" not in _SUPPORTED


# -- closing -----------------------------------------------------------------------


def test_handler_return_closes_with_1000() -> None:
    def hello(ws: WebSocket) -> None:
        ws.send("welcome")  # may arrive in the same read as the 101

    with connect(TestClient(WebSocketMiddleware(site, hello)), "/ws") as ws:
        assert receive(ws) == "welcome"
        with pytest.raises(ConnectionClosed) as closed:
            receive(ws)
        assert closed.value.code == 1000
        with pytest.raises(ConnectionClosed):
            ws.send("too late")
    assert ws.close_code == 1000 and ws.closed


def test_handler_exception_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    def broken(ws: WebSocket) -> None:
        ws.receive()
        raise RuntimeError("handler bug")

    with connect(TestClient(WebSocketMiddleware(site, broken)), "/ws") as ws:
        ws.send("trigger")
        with pytest.raises(ConnectionClosed) as closed:
            list(ws)  # iteration raises on a close code that is not normal
    assert closed.value.code == 1011
    assert ws.close_code == 1011
    assert "handler bug" in caplog.text


def test_handler_close_code_and_reason() -> None:
    def leave(ws: WebSocket) -> None:
        ws.close(4000, "bye")

    ws = connect(TestClient(WebSocketMiddleware(site, leave)), "/ws")
    with pytest.raises(ConnectionClosed) as closed:
        receive(ws)
    ws.close()
    assert (closed.value.code, closed.value.reason) == (4000, "bye")
    assert (ws.close_code, ws.close_reason) == (4000, "bye")


def test_message_too_big_closes_with_1009() -> None:
    app = WebSocketMiddleware(site, echo, max_message_size=10)
    with connect(TestClient(app), "/ws") as ws:
        ws.send("small")
        assert receive(ws) == "small"
        ws.send("x" * 100)
        with pytest.raises(ConnectionClosed) as closed:
            receive(ws)
    assert closed.value.code == 1009 and ws.close_code == 1009


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (4001, "done"), (1001, "going")])
def test_the_handler_sees_the_clients_close_code(code: int, reason: str) -> None:
    seen: list[tuple[int, str]] = []

    def listener(ws: WebSocket) -> None:
        try:
            while ws.receive() is not None:
                pass
            seen.append((ws.close_code or 0, ws.close_reason))
        except ConnectionClosed as exc:
            seen.append((exc.code, exc.reason))

    ws = connect(TestClient(WebSocketMiddleware(site, listener)), "/ws")
    ws.close(code, reason)
    # close() returned after the handler did: no waiting needed here.
    assert seen == [(code, reason)]
    assert ws.close_code == code  # the server echoes the code (RFC 6455 §5.5.1)


def test_close_is_idempotent_and_messages_before_the_close_stay_readable() -> None:
    sent = threading.Event()

    def chatty(ws: WebSocket) -> None:
        ws.send("one")
        ws.send("two")
        sent.set()
        ws.receive()

    ws = connect(TestClient(WebSocketMiddleware(site, chatty)), "/ws")
    assert sent.wait(timeout(10))
    ws.close()
    ws.close()
    assert [receive(ws), receive(ws)] == ["one", "two"]
    with pytest.raises(ConnectionClosed):
        receive(ws)


# -- the application's own failures --------------------------------------------------


def test_an_app_exception_before_the_upgrade_is_raised_by_connect() -> None:
    def buggy(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        raise KeyError("middleware bug")

    with pytest.raises(KeyError, match="middleware bug"):
        connect(TestClient(buggy), "/ws")


def test_an_app_exception_after_the_handler_is_raised_by_close() -> None:
    def outer(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        inner = WebSocketMiddleware(site, echo)
        inner(environ, start_response)
        raise ValueError("outer middleware bug after the 101")

    ws = connect(TestClient(outer), "/ws")
    ws.send("fine")
    assert receive(ws) == "fine"
    with pytest.raises(ValueError, match="after the 101"):
        ws.close()


def test_a_handler_that_does_not_return_is_reported_not_waited_for() -> None:
    release = threading.Event()

    def stuck(ws: WebSocket) -> None:
        try:
            ws.receive()
        finally:
            release.wait(timeout(30))

    ws = connect(TestClient(WebSocketMiddleware(site, stuck)), "/ws", timeout=timeout(0.5))
    try:
        with pytest.raises(TimeoutError, match="did not return"):
            ws.close()
    finally:
        release.set()
        ws._call.join(timeout(10))
    assert not ws._call.thread.is_alive()


def test_an_app_that_never_answers_times_out() -> None:
    release = threading.Event()

    def silent(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        release.wait(timeout(30))
        start_response("204 No Content", [])
        return []

    try:
        with pytest.raises(TimeoutError, match="neither upgraded /silent"):
            TestClient(silent).connect("/silent", timeout=timeout(0.2))
    finally:
        release.set()
        for thread in threading.enumerate():
            if thread.name == "wsgiws.testing /silent":
                thread.join(timeout(10))


# -- many connections ----------------------------------------------------------------


def test_ten_clients_at_once() -> None:
    together = threading.Barrier(10, timeout=timeout(10))

    def room(ws: WebSocket, name: str) -> None:
        together.wait()  # every handler runs at the same time, each in its thread
        for message in ws:
            ws.send(f"{name}: {message!r}")

    client = TestClient(WebSocketMiddleware(site, {"/room/{name}": room}))
    connections = [connect(client, f"/room/{n}") for n in range(10)]
    for n, ws in enumerate(connections):
        ws.send(f"hello {n}")
    for n, ws in enumerate(connections):
        assert receive(ws) == f"{n}: 'hello {n}'"
    for ws in connections:
        ws.close()
        assert ws.close_code == 1000


def test_client_context_closes_what_is_left_open() -> None:
    with TestClient(WebSocketMiddleware(site, echo)) as client:
        left = [connect(client, "/ws") for _ in range(3)]
    assert all(ws.closed and ws.app_response is not None for ws in left)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_nothing_is_left_behind_after_many_connections() -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counting file descriptors needs /proc/self/fd (Linux)")

    def brief(ws: WebSocket) -> None:
        ws.send("bye")

    app = WebSocketMiddleware(site, {"/echo": echo, "/brief": brief}, origins=["https://ok"])
    client = TestClient(app)
    connect(client, "/echo", origin="https://ok").close()  # lazy set-up out of the count
    threads, fds = set(threading.enumerate()), open_fds()
    for _ in range(40):
        with connect(client, "/echo", origin="https://ok") as ws:
            ws.send("x")
            assert receive(ws) == "x"
        with connect(client, "/brief", origin="https://ok") as ws:
            assert receive(ws) == "bye"
        with pytest.raises(HandshakeRejected):
            connect(client, "/echo", origin="https://not-ok")
        with pytest.raises(HandshakeRejected):
            connect(client, "/unknown")
    assert set(threading.enumerate()) <= threads
    assert open_fds() <= fds


# -- a framework -----------------------------------------------------------------------


def test_flask_app_with_wrapped_wsgi_app() -> None:
    flask = pytest.importorskip("flask", reason="Flask is in the test extra")
    app = flask.Flask(__name__)

    @app.get("/hello")
    def hello() -> str:
        return "hello from Flask"

    def shout(ws: WebSocket, room: str) -> None:
        for message in ws:
            ws.send(f"{room}: {str(message).upper()}")

    app.wsgi_app = WebSocketMiddleware(app.wsgi_app, {"/ws/{room}": shout})
    client = TestClient(app)
    with connect(client, "/ws/lobby") as ws:
        ws.send("hi")
        assert receive(ws) == "lobby: HI"
    assert ws.close_code == 1000
    with pytest.raises(HandshakeRejected) as rejected:
        connect(client, "/missing")
    assert rejected.value.status_code == 404  # Flask's own answer
    # Werkzeug's router answers a WebSocket request to an HTTP-only rule with 400.
    with pytest.raises(HandshakeRejected) as rejected:
        connect(client, "/hello")
    assert rejected.value.status_code == 400
    # Flask's test client still serves the app's pages.
    assert app.test_client().get("/hello").get_data(as_text=True) == "hello from Flask"


def test_pytest_does_not_collect_the_client_classes() -> None:
    assert TestClient.__test__ is False and TestWebSocket.__test__ is False
    assert "wsgiws.testing" in sys.modules
