"""Server adapters in isolation: detection and taking over buffered bytes."""

from __future__ import annotations

import io
import socket
from typing import Any

import pytest

from wsgiws._concurrency import EVENTLET, GEVENT, THREADS, kit_for
from wsgiws._servers import ADAPTERS, find_adapter
from wsgiws._servers.gunicorn import Gunicorn


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"werkzeug.socket": None}, "werkzeug"),
        ({"gunicorn.socket": None}, "gunicorn"),
        ({"eventlet.input": None}, "eventlet.wsgi"),
        ({"SERVER_SOFTWARE": "gevent/26.9 Python/3.11"}, "gevent.pywsgi"),
        # gunicorn's gevent worker runs gevent code but is gunicorn's server.
        ({"gunicorn.socket": None, "SERVER_SOFTWARE": "gevent/26.9"}, "gunicorn"),
        ({"SERVER_SOFTWARE": "waitress"}, None),
        ({"SERVER_SOFTWARE": "WSGIServer/0.2 CPython/3.11.7"}, None),
        ({}, None),
    ],
)
def test_detection_by_environ_keys(environ: dict[str, Any], name: str | None) -> None:
    adapter = find_adapter(environ)
    assert (adapter.name if adapter else None) == name


def test_every_adapter_has_a_distinct_name() -> None:
    names = [adapter.name for adapter in ADAPTERS]
    assert len(set(names)) == len(names)


class _Reader:
    def __init__(self, unreader: object) -> None:
        self.unreader = unreader


class _Body:
    def __init__(self, unreader: object) -> None:
        self.reader = _Reader(unreader)


class _Unreader27:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def take_buffered(self) -> bytes:
        data, self.data = self.data, b""
        return data


class _Unreader25:
    def __init__(self, data: bytes) -> None:
        self.buf = io.BytesIO(data)


@pytest.mark.parametrize("unreader_type", [_Unreader27, _Unreader25])
def test_gunicorn_read_ahead_is_taken_once(unreader_type: type) -> None:
    unreader = unreader_type(b"early frame")
    environ = {"wsgi.input": _Body(unreader)}
    assert Gunicorn._read_ahead(environ) == b"early frame"
    assert Gunicorn._read_ahead(environ) == b""


def test_gunicorn_with_a_replaced_wsgi_input(caplog: pytest.LogCaptureFixture) -> None:
    assert Gunicorn._read_ahead({"wsgi.input": io.BytesIO()}) == b""
    assert "wsgi.input is a BytesIO" in caplog.text


def test_werkzeug_adapter_takes_the_readers_buffer_without_blocking() -> None:
    server, client = socket.socketpair()
    with server, client, server.makefile("rb") as reader:
        client.sendall(b"frame bytes")
        assert reader.peek(11)[:11] == b"frame bytes"
        adapter = find_adapter({"werkzeug.socket": server})
        assert adapter is not None
        transport = adapter.take({"werkzeug.socket": server, "wsgi.input": reader})
        assert transport.buffered == b"frame bytes"
        assert transport.sock is server and transport.kit is THREADS
        assert server.gettimeout() is None
        # Nothing buffered and nothing in the socket: an empty answer, at once.
        assert adapter.take({"werkzeug.socket": server, "wsgi.input": reader}).buffered == b""


def test_kit_follows_the_socket_class() -> None:
    gevent_socket = pytest.importorskip("gevent.socket")
    with socket.socket() as plain:
        assert kit_for(plain) is THREADS
    with gevent_socket.socket() as green:
        assert kit_for(green) is GEVENT
    # eventlet is not imported into the test process: importing it installs a
    # fork hook that warns whenever a test starts a server subprocess.
    green_type = type("GreenSocket", (), {"__module__": "eventlet.greenio.base"})
    assert kit_for(green_type()) is EVENTLET
    subclass = type("Mine", (green_type,), {"__module__": "myapp"})
    assert kit_for(subclass()) is EVENTLET


@pytest.mark.parametrize(
    ("environ", "warns"),
    [
        ({"werkzeug.socket": None, "wsgi.multithread": True}, None),
        ({"werkzeug.socket": None, "wsgi.multiprocess": True}, None),
        ({"werkzeug.socket": None, "wsgi.multithread": False}, "threaded=True"),
        ({"gunicorn.socket": None, "wsgi.multithread": True}, None),
        ({"gunicorn.socket": None, "wsgi.multithread": False}, "sync worker"),
        ({"eventlet.input": None}, None),
    ],
)
def test_caveats_about_server_configuration(environ: dict[str, Any], warns: str | None) -> None:
    adapter = find_adapter(environ)
    assert adapter is not None
    caveat = adapter.caveat(environ)
    assert (caveat is None) if warns is None else (warns in (caveat or ""))


def test_a_replaced_wsgi_input_is_reported_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    server, client = socket.socketpair()
    with server, client:
        adapter = find_adapter({"werkzeug.socket": server})
        assert adapter is not None
        wrapped = _Wrapper()  # what a middleware replacing wsgi.input may leave
        transport = adapter.take({"werkzeug.socket": server, "wsgi.input": wrapped})
        assert transport.buffered == b""
    assert "wsgi.input is a _Wrapper" in caplog.text
    assert "Put WebSocketMiddleware outside" in caplog.text


class _Wrapper:
    def read(self, size: int = -1) -> bytes:
        raise AssertionError("must not be read: it could block")
