"""Test WebSocket handlers without a server: an in-process client for any WSGI app.

:class:`TestClient` calls your WSGI application itself, with the environ of a
real RFC 6455 handshake, and plays the browser on the other end of a socket
pair: no server, no listening socket, no port. Everything between the
application and the socket is the code that runs in production: your
middleware and framework, wsgiws's handshake checks, Origin rules, accept hook,
routing, compression and closing handshake::

    from wsgiws.testing import TestClient, HandshakeRejected

    client = TestClient(app)   # any WSGI app with wsgiws inside
    with client.connect("/chat/1", headers={"X-Token": "t"}, cookies={"session": "abc"},
                        subprotocols=["chat.v2", "chat.v1"], origin="https://example.com",
                        query_string="a=1") as ws:   # or the query in the path: "/chat/1?a=1"
        assert ws.subprotocol == "chat.v2"
        ws.send("hello")            # str: a text message, bytes: a binary one
        assert ws.receive(timeout=5) == "hello"
        ws.close(1000)              # or leave the with block: a clean close
    assert ws.close_code == 1000    # the server's close code (and close_reason)

    try:
        client.connect("/private")
    except HandshakeRejected as exc:
        exc.status_code, exc.status, exc.headers, exc.body, exc.text  # the app's HTTP answer

How it runs: :meth:`TestClient.connect` starts the WSGI call in a thread of its
own (the call lasts as long as the handler runs, as on a threaded server), and
the client side runs in the calling thread. A handler therefore runs in an OS
thread: code written for threads, and gevent or eventlet code in a
monkey-patched process, is tested as it runs; code that relies on an
*unpatched* gevent or eventlet hub (greenlet-only primitives) is not the
target. The client is built on wsproto: its frames are masked, and it checks
the ``101`` (``Sec-WebSocket-Accept``, the subprotocol) as a browser does. It
offers permessage-deflate, as browsers do, unless ``compression=False``.

Nothing waits for ever: every wait is bounded by the ``timeout`` given to
:meth:`~TestClient.connect` (default 10 seconds), and a handler that does not
return after the connection closed is reported as an error instead of hanging
the test. An exception raised by the application outside the handler (a bug in
a middleware, say) is raised again in the test, from
:meth:`~TestClient.connect` or :meth:`~TestWebSocket.close`. An exception
raised by the handler itself closes the connection with 1011, as in
production, and is logged on the ``wsgiws`` logger with its traceback (pytest
shows it with the test's captured log).
"""

from __future__ import annotations

import contextlib
import io
import selectors
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Callable, Union
from urllib.parse import quote, unquote_to_bytes, urlencode, urlsplit
from wsgiref.headers import Headers

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.utilities import ProtocolError

from ._exceptions import ConnectionClosed, WebSocketError
from ._protocol import NORMAL_CLOSE_CODES, Data
from ._servers.inprocess import SOCKET_KEY

__all__ = ["AppResponse", "HandshakeRejected", "TestClient", "TestWebSocket"]

#: Request headers: a mapping, or name/value pairs (a name may repeat).
HeadersArg = Union[Mapping[str, str], Iterable[tuple[str, str]]]
#: A WSGI application (PEP 3333): ``app(environ, start_response)``.
WSGIApp = Callable[..., Iterable[bytes]]

#: Seconds every wait of a connection is bounded by, unless ``connect`` says otherwise.
DEFAULT_TIMEOUT = 10.0
#: Bytes asked of the socket per read, and written per send.
_CHUNK = 65536
#: The ``wsgi.url_scheme`` of each scheme ``base_url`` may have.
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
#: PEP 3333: these two request headers have environ keys without ``HTTP_``.
_UNPREFIXED = {"CONTENT_TYPE", "CONTENT_LENGTH"}


@dataclass(frozen=True)
class AppResponse:
    """What the WSGI application returned: its status, headers and body.

    For a connection that was upgraded it is ``101 Switching Protocols`` with
    an empty body, reported once the handler has returned (see
    :attr:`TestWebSocket.app_response`).
    """

    status: str
    headers: Headers = field(default_factory=lambda: Headers([]))
    body: bytes = b""

    @property
    def status_code(self) -> int:
        """The status code, as an ``int``."""
        return int(self.status.split(" ", 1)[0])

    @property
    def text(self) -> str:
        """The body decoded with the charset of its ``Content-Type`` (UTF-8 when none)."""
        charset = "utf-8"
        for part in (self.headers.get("Content-Type") or "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


class HandshakeRejected(WebSocketError):
    """The application answered the handshake with an HTTP response instead of upgrading.

    Raised by :meth:`TestClient.connect` for any answer but ``101``: a
    rejection by wsgiws (400, 426, a forbidden Origin's 403, the accept hook's
    :class:`~wsgiws.Reject`), the application's own answer to a path no
    WebSocket route matches (a 404 from a framework), or a 2xx/3xx from an
    application that does not upgrade that path at all. ``status`` is the
    status line (``"403 Forbidden"``), ``status_code`` its number, ``headers``
    a :class:`wsgiref.headers.Headers` (case-insensitive, ``None`` for a
    missing name), ``body`` the bytes, ``text`` the body decoded, and
    ``response`` all of them as an :class:`AppResponse`.
    """

    def __init__(self, response: AppResponse, path: str) -> None:
        self.response = response
        self.status = response.status
        self.status_code = response.status_code
        self.headers = response.headers
        self.body = response.body
        self.text = response.text
        if 200 <= self.status_code < 400:
            message = (
                f"the app did not upgrade {path}: it answered {self.status} "
                "(is a WebSocket handler routed to this path?)"
            )
        else:
            message = f"the app rejected the WebSocket handshake for {path} with {self.status}"
        first_line = self.text.strip().splitlines()[0] if self.text.strip() else ""
        super().__init__(message + (f": {first_line[:200]}" if first_line else ""))


class _AppCall:
    """The WSGI call, in a thread of its own: the in-process server's side.

    Collects what the application answers and, when the call is over, closes
    the server's end of the socket pair, as a server closes the connection
    after the response; the client then reads EOF.
    """

    def __init__(
        self, app: WSGIApp, environ: dict[str, Any], sock: socket.socket, name: str
    ) -> None:
        self.sock = sock
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.error: BaseException | None = None
        self._body_started = False
        self.thread = threading.Thread(
            target=self._run, args=(app, environ), name=name, daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def _start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        # PEP 3333: with exc_info, a second call replaces the headers unless the
        # body has begun, in which case the error is raised again.
        if exc_info is not None:
            try:
                if self._body_started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        if not isinstance(status, str) or not status[:3].isdigit():
            raise AssertionError(f"start_response() got a malformed status {status!r}")
        self.status = status
        self.headers = [(str(name), str(value)) for name, value in headers]
        return self._write

    def _write(self, data: bytes) -> None:
        self._body_started = self._body_started or bool(data)
        self.body.append(bytes(data))

    def _run(self, app: WSGIApp, environ: dict[str, Any]) -> None:
        try:
            result = app(environ, self._start_response)
            try:
                for chunk in result:
                    self._write(chunk)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if self.status is None:
                raise AssertionError("the WSGI app returned without calling start_response()")
        except BaseException as exc:  # raised again in the test's thread
            self.error = exc
        finally:
            self.sock.close()

    def join(self, seconds: float) -> bool:
        """Wait for the call to end; True when it did."""
        self.thread.join(seconds)
        return not self.thread.is_alive()

    def response(self) -> AppResponse:
        assert self.status is not None
        return AppResponse(self.status, Headers(list(self.headers)), b"".join(self.body))


class TestWebSocket:
    """The client end of one WebSocket connection to the application under test.

    Returned by :meth:`TestClient.connect`; a context manager that closes the
    connection (cleanly, with 1000) when the block ends. Meant to be used from
    one thread at a time.

    Attributes set by the handshake: ``subprotocol`` (the one the server chose,
    or None), ``extensions`` (the names of the negotiated extensions),
    ``compressed`` (whether permessage-deflate was negotiated),
    ``response_headers`` (the headers of the ``101``, a
    :class:`wsgiref.headers.Headers`), ``path`` (what was passed to
    ``connect``). Set once the server closed: ``close_code`` and
    ``close_reason``. Set once the application returned (after :meth:`close`):
    ``app_response``.
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        *,
        sock: socket.socket,
        connection: WSConnection,
        call: _AppCall,
        accepted: AcceptConnection,
        response_headers: Headers,
        path: str,
        timeout: float,
        on_close: Callable[[TestWebSocket], None] | None = None,
    ) -> None:
        self._sock = sock
        self._conn = connection
        self._call = call
        self._timeout = timeout
        self._on_close = on_close
        # Looked up now, not at import: under gevent's or eventlet's
        # monkey-patching it is the green selector, which yields to the hub.
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ)
        self._lock = threading.RLock()
        self._messages: deque[Data] = deque()
        self._text: list[str] = []
        self._binary: list[bytes] = []
        #: Control frames owed to the server while a message is being written:
        #: they go out after it, never inside its frames.
        self._outbox: list[bytes] = []
        self._writing = False
        self._pongs: list[bytes] = []
        self._eof = False
        self._finished = False
        #: The path (and query) passed to :meth:`TestClient.connect`.
        self.path = path
        #: The subprotocol the server chose, or None.
        self.subprotocol: str | None = accepted.subprotocol
        #: The names of the extensions negotiated in the handshake.
        self.extensions: tuple[str, ...] = tuple(
            ext.name for ext in accepted.extensions if isinstance(ext, Extension)
        )
        #: The headers of the server's ``101 Switching Protocols``.
        self.response_headers = response_headers
        #: The code of the server's Close frame (1005 if it had none; 1006 when
        #: the connection ended without one); None while the server has not closed.
        self.close_code: int | None = None
        #: The reason in the server's Close frame.
        self.close_reason = ""
        #: The application's WSGI answer, once it has returned (after :meth:`close`).
        self.app_response: AppResponse | None = None

    @property
    def compressed(self) -> bool:
        """Whether permessage-deflate (RFC 7692) was negotiated."""
        return PerMessageDeflate.name in self.extensions

    @property
    def closed(self) -> bool:
        """True once the server closed the connection, or :meth:`close` was called."""
        return self.close_code is not None or self._finished

    # -- sending ----------------------------------------------------------------

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send one message: text for ``str``, binary for bytes-like data.

        Raises :class:`~wsgiws.ConnectionClosed` if the connection is closed.
        While the server does not read, what it sends meanwhile is read and
        kept for :meth:`receive`, so that a large echo cannot deadlock.
        """
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if isinstance(data, str):
            event: Event = TextMessage(data=data)
        elif isinstance(data, bytes):
            event = BytesMessage(data=data)
        else:
            raise TypeError(f"send() takes str or bytes, not {type(data).__name__}")
        self._send_event(event)

    def ping(self, payload: bytes = b"", timeout: float | None = None) -> None:
        """Send a ping and wait for the server's pong with the same payload.

        Messages that arrive meanwhile are kept for :meth:`receive`. Raises
        :class:`TimeoutError` after ``timeout`` seconds (default: the
        connection's) and :class:`~wsgiws.ConnectionClosed` if the connection
        closes first.
        """
        payload = bytes(payload)
        if len(payload) > 125:
            raise ValueError("a ping payload is at most 125 bytes (RFC 6455 §5.5)")
        deadline = self._deadline(timeout)
        with self._lock:
            seen = len(self._pongs)
            self._send_event(Ping(payload=payload))
            while payload not in self._pongs[seen:]:
                if self.close_code is not None or self._eof:
                    raise self._closed_error()
                if not self._pump(deadline):
                    raise TimeoutError(f"no pong from the server within {timeout}s")

    def _send_event(self, event: Event) -> None:
        with self._lock:
            if self._conn.state is not ConnectionState.OPEN or self._eof or self._finished:
                raise self._closed_error()
            self._write(self._conn.send(event), self._deadline(None))

    def _write(self, data: bytes, deadline: float) -> None:
        """Write ``data`` whole, then the control frames owed, reading meanwhile.

        The server may be blocked writing to us while we write to it: reading
        what it sends (and keeping it for :meth:`receive`) breaks the cycle.
        Raises :class:`~wsgiws.ConnectionClosed` when the server's end is gone.
        """
        view = memoryview(data)
        self._writing = True
        self._selector.modify(self._sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        try:
            while view or self._outbox:
                if not view:
                    view = memoryview(self._outbox.pop(0))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"the server read nothing for {self._timeout}s while the client "
                        "was sending (is the handler receiving?)"
                    )
                for _, mask in self._selector.select(remaining):
                    if mask & selectors.EVENT_WRITE:
                        try:
                            sent = self._sock.send(view[:_CHUNK])
                        except (BlockingIOError, InterruptedError):
                            continue
                        except OSError:  # EPIPE, ECONNRESET: the server's end is closed
                            self._read_to_eof()
                            raise self._closed_error() from None
                        view = view[sent:]
                    if mask & selectors.EVENT_READ and view:
                        self._read_once()
                        if self._eof:
                            raise self._closed_error()
        finally:
            self._writing = False
            if not self._finished:
                self._selector.modify(self._sock, selectors.EVENT_READ)

    # -- receiving --------------------------------------------------------------

    def receive(self, timeout: float | None = None) -> Data:
        """The next message from the server: ``str`` for text, ``bytes`` for binary.

        Waits at most ``timeout`` seconds (default: the connection's), then
        raises :class:`TimeoutError`. Once the server has closed the connection
        (and every message sent before its Close was received), raises
        :class:`~wsgiws.ConnectionClosed` with the server's code and reason.
        Pings from the server are answered while waiting.
        """
        deadline = self._deadline(timeout)
        with self._lock:
            while not self._messages:
                if self.close_code is not None or self._eof or self._finished:
                    raise self._closed_error()
                if not self._pump(deadline):
                    wait = self._timeout if timeout is None else timeout
                    raise TimeoutError(f"no message from the server within {wait}s")
            return self._messages.popleft()

    def __iter__(self) -> Iterator[Data]:
        """The messages until the server closes; ends quietly on 1000, 1001 and 1005.

        Any other close code raises :class:`~wsgiws.ConnectionClosed` (a handler
        that raised closes with 1011). Each wait is bounded as in :meth:`receive`.
        """
        while True:
            try:
                yield self.receive()
            except ConnectionClosed as exc:
                if exc.code in NORMAL_CLOSE_CODES:
                    return
                raise

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self._timeout if timeout is None else timeout)

    def _closed_error(self) -> ConnectionClosed:
        if self.close_code is None:
            self.close_code = 1006  # RFC 6455 §7.1.5: closed without a Close frame
        return ConnectionClosed(self.close_code, self.close_reason)

    def _pump(self, deadline: float) -> bool:
        """Wait until the socket is readable, then read once; False on timeout."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self._selector.select(remaining):
            return False
        self._read_once()
        return True

    def _read_once(self) -> None:
        try:
            data = self._sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # ECONNRESET: the server's end closed with data unread
            data = b""
        self._feed(data)

    def _read_to_eof(self) -> None:
        """Take what the server sent before its end closed (its Close frame, say)."""
        while not self._eof:
            try:
                data = self._sock.recv(_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        if not data:
            self._eof = True
            if self._conn.state is not ConnectionState.CLOSED:
                self._conn.receive_data(None)
        elif self._conn.state is not ConnectionState.CLOSED:
            self._conn.receive_data(data)
        for event in self._conn.events():
            self._handle(event)

    def _handle(self, event: Event) -> None:
        if isinstance(event, TextMessage):
            self._text.append(event.data)
            if event.message_finished:
                self._messages.append("".join(self._text))
                self._text = []
        elif isinstance(event, BytesMessage):
            self._binary.append(bytes(event.data))
            if event.message_finished:
                self._messages.append(b"".join(self._binary))
                self._binary = []
        elif isinstance(event, Ping):
            self._answer(event.response())
        elif isinstance(event, Pong):
            self._pongs.append(bytes(event.payload))
        elif isinstance(event, CloseConnection):
            if self.close_code is not None:
                return  # EOF after the closing handshake: nothing new
            self.close_code, self.close_reason = int(event.code), event.reason or ""
            if self._conn.state is ConnectionState.REMOTE_CLOSING:
                # The server closed first: echo its Close (RFC 6455 §5.5.1).
                self._answer(event.response())
            elif self._conn.state is ConnectionState.OPEN:
                # wsproto could not parse the server's frames: fail the
                # connection with the code it chose (§7.1.7).
                self.close_reason = f"invalid frames from the server: {self.close_reason}"
                self._answer(CloseConnection(code=self.close_code))

    def _answer(self, event: Event) -> None:
        """Send a control frame the protocol requires; a server already gone is no error."""
        try:
            data = self._conn.send(event)
        except ProtocolError:
            return
        self._outbox.append(data)
        if self._writing:
            return  # _write sends it once the message in flight is whole
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            self._write(b"", self._deadline(None))

    # -- closing ----------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and wait for the application to return.

        Sends a Close frame with ``code`` and ``reason`` unless the server
        closed first, waits for the server's Close and for it to close the TCP
        connection (RFC 6455 §7.1.1), then for the WSGI call to return. Every
        wait is bounded by the connection's timeout: a handler that has not
        returned by then raises :class:`TimeoutError`. An exception the
        application raised outside the handler is raised here. Messages the
        server sent before its Close can still be taken with :meth:`receive`.
        Calling it again does nothing.
        """
        if self._finished:
            return
        deadline = self._deadline(None)
        try:
            with self._lock:
                if self._conn.state is ConnectionState.OPEN and not self._eof:
                    with contextlib.suppress(ConnectionClosed):  # the server is gone
                        self._write(
                            self._conn.send(CloseConnection(code=code, reason=reason)), deadline
                        )
                while not self._eof and self._pump(deadline):
                    pass
                if self.close_code is None:
                    self.close_code = 1006  # no Close from the server in time
        finally:
            self._finish()

    def _finish(self) -> None:
        """Close our socket, then join the WSGI call (bounded) and report its outcome."""
        if self._finished:
            return
        self._finished = True
        self._selector.close()
        self._sock.close()
        if self._on_close is not None:
            self._on_close(self)
        call = self._call
        if not call.join(self._timeout):
            raise TimeoutError(
                f"the WebSocket handler for {self.path} did not return within "
                f"{self._timeout}s after the connection closed"
            )
        if call.error is not None:
            raise call.error
        self.app_response = call.response()

    def __enter__(self) -> TestWebSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<TestWebSocket {self.path!r} {state}>"


class TestClient:
    """Open WebSocket connections to a WSGI application, in process.

    ``app`` is any WSGI application with wsgiws inside it: a
    :class:`~wsgiws.WebSocketMiddleware`, or a framework whose WSGI callable
    it wraps (``flask_app.wsgi_app = WebSocketMiddleware(...)``; pass the Flask
    app itself). ``headers``, ``cookies`` and ``origin`` are sent with every
    handshake (``connect``'s own are added, replacing those of the same name).
    ``base_url`` gives the scheme (``http``/``ws`` or ``https``/``wss``, which
    sets ``wsgi.url_scheme``), host and port of the requests, and with a path
    the ``SCRIPT_NAME`` the application is mounted at.

    Used as a context manager, it closes the connections left open when the
    block ends.
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        app: WSGIApp,
        *,
        headers: HeadersArg | None = None,
        cookies: Mapping[str, str] | None = None,
        origin: str | None = None,
        base_url: str = "http://localhost",
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be a WSGI application, not {app!r}")
        base = urlsplit(base_url)
        if base.scheme not in _SCHEMES or not base.hostname:
            raise ValueError(f"base_url must be an http(s):// or ws(s):// URL, not {base_url!r}")
        self.app = app
        self.headers = _pairs(headers)
        self.cookies = dict(cookies or {})
        self.origin = origin
        self.base_url = base_url
        self._base = base
        self._open: set[TestWebSocket] = set()
        self._open_lock = threading.Lock()

    def connect(
        self,
        path: str,
        *,
        headers: HeadersArg | None = None,
        cookies: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] = (),
        origin: str | None = None,
        query_string: str | Mapping[str, str] | None = None,
        compression: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> TestWebSocket:
        """Make the handshake for ``path`` and return the open connection.

        ``path`` starts with ``/`` and may carry a query (``"/chat?a=1"``);
        ``query_string`` (a string, or a mapping to URL-encode) is appended to
        it. ``headers`` are sent with the handshake and replace the client's,
        and the handshake's own, of the same name (a test can send a bad
        ``Sec-WebSocket-Version``); ``cookies`` become one ``Cookie`` header;
        ``origin`` the ``Origin`` header (None: the client's, else none);
        ``subprotocols`` the offer in ``Sec-WebSocket-Protocol``;
        ``compression`` offers permessage-deflate as browsers do. ``timeout``
        bounds the handshake and is the connection's default for every later
        wait.

        Raises :class:`HandshakeRejected` when the application answers with
        anything but ``101 Switching Protocols``, :class:`TimeoutError` when it
        neither upgrades nor answers in time, and whatever the application
        raised if it raised before upgrading.
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', not {path!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        environ, request = self._handshake(
            path,
            headers=headers,
            cookies=cookies,
            subprotocols=subprotocols,
            origin=origin,
            query_string=query_string,
            compression=compression,
        )
        # wsproto writes the request it will check the 101 against: its
        # random key and its extension offer go into the environ (unless the
        # test's own headers replaced them).
        connection = WSConnection(ConnectionType.CLIENT)
        written = _parse_headers(connection.send(request))
        for name in ("Sec-WebSocket-Key", "Sec-WebSocket-Extensions"):
            value = written.get(name)
            if value is not None:
                environ.setdefault("HTTP_" + name.upper().replace("-", "_"), value)

        server, client = socket.socketpair()
        client.setblocking(False)
        environ[SOCKET_KEY] = server
        call = _AppCall(self.app, environ, server, f"wsgiws.testing {path}")
        call.start()
        deadline = time.monotonic() + timeout
        try:
            head, rest = _read_head(client, deadline)
        except TimeoutError:
            client.close()
            raise TimeoutError(
                f"the app neither upgraded {path} nor answered within {timeout}s"
            ) from None
        except BaseException:
            client.close()
            raise
        if head is None:
            # The app answered without upgrading; the call ended, our end is at EOF.
            client.close()
            if not call.join(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(
                    f"the app closed the connection for {path} but did not return within {timeout}s"
                )
            if call.error is not None:
                raise call.error
            raise HandshakeRejected(call.response(), path)
        try:
            connection.receive_data(head + rest)
            events = list(connection.events())
        except ProtocolError as exc:
            events = [RejectConnection()]
            problem: str | None = str(exc)
        else:
            problem = None
        if not events or not isinstance(events[0], AcceptConnection):
            client.close()
            call.join(timeout)
            if call.error is not None:
                raise call.error
            status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            raise RuntimeError(
                f"the app's handshake response for {path} is not a valid 101: "
                f"{problem or status_line}"
            )
        ws = TestWebSocket(
            sock=client,
            connection=connection,
            call=call,
            accepted=events[0],
            response_headers=_parse_headers(head),
            path=path,
            timeout=timeout,
            on_close=self._forget,
        )
        with self._open_lock:
            self._open.add(ws)
        for event in events[1:]:  # frames that came with the 101
            ws._handle(event)
        return ws

    def _forget(self, ws: TestWebSocket) -> None:
        with self._open_lock:
            self._open.discard(ws)

    def close(self) -> None:
        """Close every connection of this client that is still open."""
        with self._open_lock:
            connections = list(self._open)
        for ws in connections:
            ws.close()

    def __enter__(self) -> TestClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _handshake(
        self,
        path: str,
        *,
        headers: HeadersArg | None,
        cookies: Mapping[str, str] | None,
        subprotocols: Sequence[str],
        origin: str | None,
        query_string: str | Mapping[str, str] | None,
        compression: bool,
    ) -> tuple[dict[str, Any], Request]:
        """The PEP 3333 environ of the handshake, and wsproto's view of the same request."""
        if isinstance(subprotocols, str):
            raise TypeError("subprotocols must be a list of names, not a str")
        base = self._base
        target = urlsplit(path)
        query = target.query
        if query_string:
            extra = (
                query_string
                if isinstance(query_string, str)
                else urlencode(list(query_string.items()))
            )
            query = f"{query}&{extra}" if query else extra
        # The request target is ASCII (RFC 3986); the environ holds the
        # percent-decoded path as bytes in a latin-1 str (PEP 3333).
        safe = "/:@!$&'()*+,;=%~-._"
        script_raw = quote(base.path.rstrip("/"), safe=safe)
        path_raw = quote(target.path, safe=safe)
        uri = script_raw + path_raw + (f"?{query}" if query else "")
        scheme = _SCHEMES[base.scheme]
        port = base.port or (443 if scheme == "https" else 80)
        host = base.netloc.rpartition("@")[2]

        handshake: list[tuple[str, str]] = [
            ("Host", host),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
        ]
        if subprotocols:
            handshake.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
        origin = origin if origin is not None else self.origin
        if origin is not None:
            handshake.append(("Origin", origin))
        jar = {**self.cookies, **(cookies or {})}
        if jar:
            handshake.append(("Cookie", "; ".join(f"{k}={v}" for k, v in jar.items())))
        pairs = _merge(_merge(handshake, self.headers), _pairs(headers))

        environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": _wsgi_str(script_raw),
            "PATH_INFO": _wsgi_str(path_raw),
            "QUERY_STRING": query,
            "REQUEST_URI": uri,
            "RAW_URI": uri,
            "SERVER_NAME": base.hostname,
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": "wsgiws.testing",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scheme,
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in pairs:
            key = name.upper().replace("-", "_")
            if key not in _UNPREFIXED:
                key = "HTTP_" + key
            # A repeated header is one comma-separated value (RFC 9110 §5.3),
            # as servers put it in the environ.
            environ[key] = f"{environ[key]}, {value}" if key in environ else value
        request = Request(
            host=host,
            target=uri,
            subprotocols=list(subprotocols),
            extensions=[_BrowserDeflate()] if compression else [],
        )
        return environ, request


class _BrowserDeflate(PerMessageDeflate):
    """permessage-deflate offered as browsers offer it (RFC 7692 §7.1.2.2).

    Chrome, Firefox and Safari send ``permessage-deflate;
    client_max_window_bits``: any window for the server, and the client ready
    for the window size the server picks for it. wsproto's own offer also
    names ``server_max_window_bits=15``; the server then negotiates another
    path than it does with browsers.
    """

    def offer(self) -> str:
        return "client_max_window_bits"


def _pairs(headers: HeadersArg | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(name), str(value)) for name, value in items]


def _merge(base: list[tuple[str, str]], override: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``base`` without the names ``override`` has, then ``override``."""
    names = {name.lower() for name, _ in override}
    return [(n, v) for n, v in base if n.lower() not in names] + override


def _wsgi_str(raw: str) -> str:
    """A percent-encoded path as PEP 3333 wants it: decoded bytes, as latin-1."""
    return unquote_to_bytes(raw).decode("latin-1")


def _read_head(sock: socket.socket, deadline: float) -> tuple[bytes | None, bytes]:
    """Read an HTTP response head from the non-blocking ``sock``.

    Returns the head (through the blank line) and the bytes read past it, or
    None and the bytes read when the other end closed first.
    """
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while True:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                return data[: end + 4], data[end + 4 :]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError("no HTTP response head in time")
            try:
                chunk = sock.recv(_CHUNK)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                return None, data
            data += chunk


def _parse_headers(head: bytes) -> Headers:
    """The headers of a response head, in order."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = []
    for line in lines:
        if not line:
            continue
        name, _, value = line.partition(":")
        pairs.append((name.strip(), value.strip()))
    return Headers(pairs)
