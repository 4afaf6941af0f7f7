"""The middleware in memory: routing, rejections, and a whole upgrade over a socket pair.

The upgrade tests hand the middleware an environ shaped like the Werkzeug dev
server's (``werkzeug.socket`` and a buffered ``wsgi.input`` over it), with the
server end of a socket pair; the test plays the client on the other end.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from wsproto.events import CloseConnection

from tests.conftest import timeout
from tests.core._peer import Peer, mask_frame
from tests.core.test_handshake import KEY
from wsgiws import ConnectionClosed, WebSocket, WebSocketMiddleware

HANDSHAKE = {
    "REQUEST_METHOD": "GET",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/ws",
    "QUERY_STRING": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "SERVER_SOFTWARE": "test",
    "HTTP_HOST": "localhost",
    "HTTP_UPGRADE": "websocket",
    "HTTP_CONNECTION": "Upgrade",
    "HTTP_SEC_WEBSOCKET_KEY": KEY,
    "HTTP_SEC_WEBSOCKET_VERSION": "13",
    "wsgi.url_scheme": "http",
    "wsgi.multithread": True,
}


class Response:
    """Records what a WSGI app did with start_response."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None):  # type: ignore[no-untyped-def]
        self.status, self.headers = status, headers
        return self.body.append

    def call(self, app: Any, environ: dict[str, Any]) -> Response:
        result = app(environ, self.start_response)
        try:
            self.body.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return self


def inner_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "inner")])
    return [b"from the app: ", environ["PATH_INFO"].encode()]


def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


# -- requests that are not ours ----------------------------------------------------


class Streaming:
    """A response iterable whose close() must reach the server."""

    closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    def close(self) -> None:
        self.closed = True


def test_other_requests_pass_through_untouched() -> None:
    body = Streaming()
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> Streaming:
        seen.append(environ)
        start_response("201 Created", [("X-Stream", "yes")])
        return body

    mw = WebSocketMiddleware(app, echo)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/other", "wsgi.input": None}
    response = Response()
    assert mw(environ, response.start_response) is body
    assert seen == [environ]
    assert response.status == "201 Created" and response.headers == [("X-Stream", "yes")]


@pytest.mark.parametrize(
    "environ",
    [
        # A page load at the WebSocket's own path: no WebSocket headers.
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/ws"},
        # A handshake for a path we do not serve.
        {**HANDSHAKE, "PATH_INFO": "/elsewhere"},
        # Another upgrade protocol.
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/ws", "HTTP_UPGRADE": "h2c"},
    ],
)
def test_non_websocket_requests_go_to_the_app(environ: dict[str, Any]) -> None:
    response = Response().call(WebSocketMiddleware(inner_app, echo), dict(environ))
    assert response.status == "200 OK"
    assert b"".join(response.body) == b"from the app: " + environ["PATH_INFO"].encode()


# -- rejections ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        ({"REQUEST_METHOD": "POST"}, "400 Bad Request", "must use GET, not POST"),
        ({"HTTP_SEC_WEBSOCKET_KEY": None}, "400 Bad Request", "missing Sec-WebSocket-Key"),
        ({"HTTP_SEC_WEBSOCKET_KEY": "?"}, "400 Bad Request", "not valid base64"),
        ({"HTTP_UPGRADE": None}, "400 Bad Request", "missing 'Upgrade: websocket'"),
        ({"HTTP_SEC_WEBSOCKET_VERSION": "7"}, "426 Upgrade Required", "Version '7'"),
    ],
)
def test_bad_handshakes_get_a_plain_text_answer(
    change: dict[str, Any], status: str, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {**HANDSHAKE, **change}
    environ = {k: v for k, v in environ.items() if v is not None}
    caplog.set_level(logging.INFO, "wsgiws")
    response = Response().call(WebSocketMiddleware(inner_app, echo), environ)
    assert response.status == status
    body = b"".join(response.body).decode()
    assert text in body and body.endswith("\n") and body.count("\n") == 1
    headers = dict(response.headers)
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Length"] == str(len(body.encode()))
    if status.startswith("426"):
        assert headers["Sec-WebSocket-Version"] == "13"
    assert text in caplog.text


def test_unsupported_server_gets_501_and_a_log_line_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    environ = {**HANDSHAKE, "SERVER_SOFTWARE": "waitress"}
    response = Response().call(WebSocketMiddleware(inner_app, echo), environ)
    assert response.status == "501 Not Implemented"
    body = b"".join(response.body).decode()
    assert "not supported on waitress" in body
    for name in ("werkzeug", "gunicorn", "eventlet.wsgi", "gevent.pywsgi"):
        assert name in body
        assert name in caplog.text
    [record] = [r for r in caplog.records if r.name == "wsgiws"]
    assert record.levelno == logging.ERROR and "waitress" in record.getMessage()


def test_gevent_without_a_socket_gets_501() -> None:
    environ = {**HANDSHAKE, "SERVER_SOFTWARE": "gevent/1.0 Python/3.11", "wsgi.input": object()}
    response = Response().call(WebSocketMiddleware(inner_app, echo), environ)
    assert response.status == "501 Not Implemented"
    assert b"gevent 20.12 or later" in b"".join(response.body)


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        WebSocketMiddleware(inner_app, {"ws": echo})
    with pytest.raises(TypeError):
        WebSocketMiddleware(inner_app, {"/ws": "not callable"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        WebSocketMiddleware(inner_app, 42)  # type: ignore[arg-type]


# -- a whole upgrade over a socket pair ----------------------------------------------


class Upgrade:
    """Runs the middleware on the server end of a socket pair, in a thread."""

    def __init__(self, app: Any, early: bytes = b"", **environ: Any) -> None:
        self.server, client = socket.socketpair()
        self.peer = Peer(client)
        self.reader = reader = self.server.makefile("rb")
        if early:
            # As a server's buffered reader does: the bytes after the
            # request headers are already in the reader, not in the socket.
            client.sendall(early)
            assert reader.peek(len(early))[: len(early)] == early
        self.environ = {
            **HANDSHAKE,
            **environ,
            "werkzeug.socket": self.server,
            "wsgi.input": reader,
        }
        self.response = Response()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(app,))
        self.thread.start()

    def _run(self, app: Any) -> None:
        try:
            self.response.call(app, self.environ)
        except BaseException as exc:  # re-raised by join()
            self.error = exc

    def read_101(self) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.peer.sock.recv(1)
            assert chunk, "EOF before the 101 response"
            data += chunk
        return data

    def join(self) -> Response:
        self.thread.join(timeout(10))
        assert not self.thread.is_alive(), "the middleware did not return"
        if self.error is not None:
            raise self.error
        self.peer.sock.close()
        self.reader.close()
        self.server.close()
        return self.response


def test_upgrade_echo_and_clean_end() -> None:
    up = Upgrade(WebSocketMiddleware(inner_app, echo))
    head = up.read_101()
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
    up.peer.send("hello")
    assert up.peer.receive() == "hello"
    up.peer.close(1000)
    assert up.peer.next_event() == CloseConnection(code=1000, reason="")
    assert up.peer.read_to_eof() == b""
    response = up.join()
    # The outcome is reported to the server (and to outer middleware) as the
    # 101 it was, with an empty body.
    assert response.status == "101 Switching Protocols"
    assert response.body == []
    assert isinstance(up.environ["wsgiws.connection"], WebSocket)


def test_early_frame_in_the_servers_buffer_reaches_the_handler() -> None:
    up = Upgrade(WebSocketMiddleware(inner_app, echo), early=mask_frame(0x1, b"first"))
    up.read_101()
    assert up.peer.receive() == "first"
    up.peer.close()
    up.peer.expect_close()
    up.join()


def test_handler_return_closes_with_1000() -> None:
    def hello(ws: WebSocket) -> None:
        ws.send("hi")

    up = Upgrade(WebSocketMiddleware(inner_app, hello))
    up.read_101()
    assert up.peer.receive() == "hi"
    assert up.peer.expect_close() == CloseConnection(code=1000, reason="")
    assert up.peer.read_to_eof() == b""
    up.join()


def test_handler_exception_closes_with_1011_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(ws: WebSocket) -> None:
        raise RuntimeError("boom")

    up = Upgrade(WebSocketMiddleware(inner_app, broken))
    up.read_101()
    assert up.peer.expect_close().code == 1011
    assert up.peer.read_to_eof() == b""
    up.join()
    records = [r for r in caplog.records if r.name == "wsgiws" and r.levelno >= logging.ERROR]
    assert len(records) == 1
    assert records[0].exc_info is not None and "boom" in str(records[0].exc_info[1])
    assert "1011" in records[0].getMessage()


def test_connection_closed_escaping_the_handler_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def receiver(ws: WebSocket) -> None:
        ws.receive()
        ws.receive()  # raises ConnectionClosed after the normal close

    up = Upgrade(WebSocketMiddleware(inner_app, receiver))
    up.read_101()
    up.peer.close(4000, "bye")
    up.peer.expect_close()
    up.join()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_peer_vanishing_frees_the_handler() -> None:
    ended: list[BaseException] = []

    def waiter(ws: WebSocket) -> None:
        try:
            ws.receive()
        except ConnectionClosed as exc:
            ended.append(exc)

    up = Upgrade(WebSocketMiddleware(inner_app, waiter))
    up.read_101()
    up.peer.sock.shutdown(socket.SHUT_RDWR)
    up.join()
    assert isinstance(ended[0], ConnectionClosed) and ended[0].code == 1006


def test_paths_map_to_handlers_and_subprotocols_are_negotiated() -> None:
    seen: list[tuple[str, str | None]] = []

    def record(ws: WebSocket) -> None:
        seen.append((ws.path, ws.subprotocol))

    mw = WebSocketMiddleware(inner_app, {"/a": record, "/b": record}, subprotocols=["chat"])
    for path in ("/a", "/b"):
        up = Upgrade(mw, PATH_INFO=path, HTTP_SEC_WEBSOCKET_PROTOCOL="chat")
        assert b"Sec-WebSocket-Protocol: chat\r\n" in up.read_101()
        up.peer.expect_close()
        up.join()
    assert seen == [("/a", "chat"), ("/b", "chat")]


def test_paths_are_matched_below_the_mount_point() -> None:
    up = Upgrade(WebSocketMiddleware(inner_app, echo), SCRIPT_NAME="/prefix", PATH_INFO="/ws")
    up.read_101()
    up.peer.close()
    up.peer.expect_close()
    up.join()


def test_composes_with_outer_and_inner_middleware() -> None:
    outer_saw: list[str] = []

    def outer(app: Any) -> Any:
        def wrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            def spy(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                outer_saw.append(status)
                return start_response(status, headers, exc_info)

            return app(environ, spy)

        return wrapped

    def inner_middleware(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["inner.seen"] = True
        return inner_app(environ, start_response)

    app = outer(WebSocketMiddleware(inner_middleware, echo))
    response = Response().call(app, {"REQUEST_METHOD": "GET", "PATH_INFO": "/page"})
    assert response.status == "200 OK"
    up = Upgrade(app)
    up.read_101()
    up.peer.close()
    up.peer.expect_close()
    up.join()
    assert outer_saw == ["200 OK", "101 Switching Protocols"]


def test_handler_stopped_by_the_server_closes_with_1001() -> None:
    def stopped(ws: WebSocket) -> None:
        raise KeyboardInterrupt  # as a server's shutdown or GreenletExit would

    up = Upgrade(WebSocketMiddleware(inner_app, stopped))
    up.read_101()
    assert up.peer.expect_close().code == 1001
    with pytest.raises(KeyboardInterrupt):
        up.join()
    up.peer.sock.close()
    up.reader.close()
    up.server.close()


def test_single_threaded_server_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    import wsgiws._upgrade

    wsgiws._upgrade._warned.clear()
    for _ in range(2):
        up = Upgrade(WebSocketMiddleware(inner_app, echo), **{"wsgi.multithread": False})
        up.read_101()
        up.peer.close()
        up.peer.expect_close()
        up.join()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "single-threaded" in warnings[0].getMessage()


def test_handler_oserror_is_a_handler_error(caplog: pytest.LogCaptureFixture) -> None:
    def broken(ws: WebSocket) -> None:
        open("/nonexistent/wsgiws/file")  # noqa: SIM115 - raises FileNotFoundError

    up = Upgrade(WebSocketMiddleware(inner_app, broken))
    up.read_101()
    assert up.peer.expect_close().code == 1011
    up.join()
    assert [r.levelno for r in caplog.records if r.name == "wsgiws"] == [logging.ERROR]


def test_client_gone_before_the_101_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    called: list[WebSocket] = []
    server, client = socket.socketpair()
    client.close()
    with server, server.makefile("rb") as reader:
        environ = {**HANDSHAKE, "werkzeug.socket": server, "wsgi.input": reader}
        response = Response().call(WebSocketMiddleware(inner_app, called.append), environ)
    assert called == []
    assert response.status == "101 Switching Protocols"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_rejection_body_stays_one_line_whatever_the_request_holds() -> None:
    environ = {**HANDSHAKE, "REQUEST_METHOD": "G\r\nX-Injected: 1\n"}
    response = Response().call(WebSocketMiddleware(inner_app, echo), environ)
    assert response.status == "400 Bad Request"
    body = b"".join(response.body).decode()
    assert body.count("\n") == 1 and body.endswith("\n") and "\r" not in body
    assert "G\\r\\nX-Injected: 1\\n" in body
