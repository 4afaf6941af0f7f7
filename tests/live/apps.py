"""The WSGI application every live server runs by default (``tests.live.apps:app``).

A plain WSGI app (``/health``, ``/hello``, ``/last-close``, and a fallback that
names the path it saw) wrapped by :class:`WebSocketMiddleware` with the test
handlers below, and by :func:`~tests.live._instrument.instrument` (``/stats``).
State the tests read over HTTP lives in this process (gunicorn runs one
worker), or in the state directory the harness shares between the workers of
``gunicorn-sync``.

This module is imported after the launcher (or gunicorn's worker) may have
monkey-patched the process, so ``threading`` here may be green; on the
unpatched green servers it is not, and the handlers start greenlets instead
(:func:`~tests.live._instrument.spawn`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import webob

from wsgiws import Accept, ConnectionClosed, Endpoint, Reject, WebSocket, WebSocketMiddleware

from ._instrument import Record, instrument, sleep, spawn
from ._shared import (
    STUCK_AFTER,
    STUCK_CLOSE_TIMEOUT,
    STUCK_PING_INTERVAL,
    STUCK_PING_TIMEOUT,
    STUCK_SEND_TIMEOUT,
    duplex_message,
)

# What users do: let the library's log lines reach the server's output.
logging.basicConfig(
    level=logging.INFO,
    stream=sys.stderr,
    format="%(levelname)s:%(name)s:%(message)s",
)


def _query(environ: dict[str, Any]) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _ws_query(ws: WebSocket) -> dict[str, str]:
    return _query(ws.environ)  # type: ignore[arg-type]


# -- WebSocket handlers ---------------------------------------------------------


@contextmanager
def _recording_end(rec: Record, ws: WebSocket) -> Iterator[None]:
    """Record in ``rec`` how the handler's body ended: ConnectionClosed (kept quiet), or
    another exception (re-raised); then, in any case, ``state="ended"``."""
    try:
        yield
    except ConnectionClosed as exc:
        rec.update(how="ConnectionClosed", code=exc.code, reason=exc.reason)
    except BaseException as exc:
        rec.update(how=type(exc).__name__, detail=str(exc))
        raise
    finally:
        # One update, saved once (gunicorn-sync): a reader that sees "ended" sees the rest.
        rec.update(closed=ws.closed, ended_at=time.time(), state="ended")


def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


def fail(ws: WebSocket) -> None:
    marker = _ws_query(ws).get("marker", "boom")
    raise RuntimeError(f"handler failed on purpose: {marker}")


def close(ws: WebSocket) -> None:
    """Close at once with ``?code=&reason=``."""
    q = _ws_query(ws)
    ws.close(int(q.get("code", "1000")), q.get("reason", ""))


def record(ws: WebSocket) -> None:
    """Echo, and record how the connection ended under ``?id=``."""
    rec = Record(_ws_query(ws)["id"], state="open", pid=os.getpid())
    with _recording_end(rec, ws):
        while True:
            rec["state"] = "receiving"
            message = ws.receive()
            if message is None:
                rec.update(how="end-of-stream", code=ws.close_code, reason=ws.close_reason)
                break
            rec["state"] = "sending"
            ws.send(message)


def duplex(ws: WebSocket) -> None:
    """A second thread (greenlet) sends ``?n=`` messages while this one receives ``n``.

    Then sends one summary text: ``"ok"`` or what went wrong on the receiving
    side (lost, reordered, corrupted messages).
    """
    n = int(_ws_query(ws).get("n", "1000"))
    errors: list[str] = []

    def sender() -> None:
        try:
            for i in range(n):
                ws.send(duplex_message("s", i))
        except Exception as exc:
            errors.append(f"sender: {exc!r}")

    join = spawn(sender, "duplex-sender")
    received = 0
    try:
        for i in range(n):
            message = ws.receive()
            if message is None:
                errors.append(f"connection ended after {i} messages")
                break
            received += 1
            if message != duplex_message("c", i):
                errors.append(f"message {i} differs: crc {zlib.crc32(_b(message)):08x}")
                break
    finally:
        join()
    ws.send("ok" if not errors else "; ".join(errors))
    for _ in ws:  # wait for the client's close
        pass


def push(ws: WebSocket) -> None:
    """Only send (server push), never receive, until the connection ends; record how (``?id=``)."""
    rec = Record(_ws_query(ws)["id"], state="pushing", sent=0)
    with _recording_end(rec, ws):
        while True:
            ws.send(f"push {rec['sent']}")
            rec["sent"] += 1
            sleep(0.002)


def whoami(ws: WebSocket) -> None:
    """Send what the accept hook stored and the subprotocol, then echo."""
    ws.send(json.dumps({"user": ws.environ.get("test.user"), "subprotocol": ws.subprotocol}))
    echo(ws)


def room(ws: WebSocket, name: str, n: int) -> None:
    """``/rooms/{name}/{n:int}``: send the path parameters as the handler got them, then echo."""
    ws.send(json.dumps({"name": name, "n": n, "n_type": type(n).__name__}))
    echo(ws)


def authenticate(request: webob.Request) -> Accept:
    """The accept hook of ``/auth``: ``?token=secret`` or 401; ``?proto=`` picks the subprotocol."""
    if request.GET.get("token") != "secret":
        raise Reject(401, "a token is needed", {"WWW-Authenticate": 'Token realm="test"'})
    request.environ["test.user"] = "ada"
    return Accept(subprotocol=request.GET.get("proto"), headers={"X-Test-User": "ada"})


def _b(message: str | bytes) -> bytes:
    return message.encode() if isinstance(message, str) else message


# -- a client that stops reading (tests/live/test_stuck.py) ----------------------------------

#: The message of the floods: 64 KiB, so that a few sends fill every buffer.
_FLOOD = b"x" * 65536


class _Flood:
    """Sends 64 KiB messages on ``ws`` until a send raises, and records it in ``rec``.

    ``rec["sending_since"]`` is when the send in progress began (wall clock, for the
    test; None between sends), ``rec["sender"]`` how the last send ended, how long it
    took, and when (wall clock). :attr:`since` and :attr:`ended` are the start of the
    last send and its end on the monotonic clock.
    """

    def __init__(self, ws: WebSocket, rec: Record) -> None:
        self.ws = ws
        self.rec = rec
        self.since: float | None = None
        self.ended: float | None = None
        rec.update(sent=0, sending_since=None, sender=None)

    def stuck(self) -> bool:
        """A send has been in progress for STUCK_AFTER seconds."""
        since = self.since
        return since is not None and time.monotonic() - since >= STUCK_AFTER

    def run(self) -> None:
        rec = self.rec
        outcome: dict[str, Any] = {"how": "?"}
        try:
            while True:
                self.since = time.monotonic()
                rec["sending_since"] = time.time()
                self.ws.send(_FLOOD)
                rec.update(sent=rec["sent"] + 1, sending_since=None)
        except ConnectionClosed as exc:
            outcome = {"how": "ConnectionClosed", "code": exc.code, "reason": exc.reason}
        except BaseException as exc:
            outcome = {"how": type(exc).__name__, "detail": str(exc)}
            raise
        finally:
            self.ended = time.monotonic()
            assert self.since is not None
            took = self.ended - self.since
            rec["sender"] = {**outcome, "send_took": took, "at": time.time()}

    def wait_stuck(self, seconds: float = 10.0) -> bool:
        """Wait (green-aware) until a send is stuck; False if none is after ``seconds``."""
        deadline = time.monotonic() + seconds
        while not self.stuck():
            if self.ended is not None or time.monotonic() > deadline:
                return False
            sleep(0.01)
        return True


def stuck_flood(ws: WebSocket) -> None:
    """Send 64 KiB messages to a client that does not read until a send raises
    (``send_timeout``); record how under ``?id=``."""
    rec = Record(_ws_query(ws)["id"], state="flooding")
    try:
        _Flood(ws, rec).run()
    finally:
        rec["state"] = "ended"


def stuck_release(ws: WebSocket) -> None:
    """A second thread (greenlet) floods; once its send is stuck this one calls
    ``ws.close()`` or ``ws.abort()`` (``?how=``); record how long that call took and how
    soon after it returned the sender was released (``?id=``)."""
    q = _ws_query(ws)
    rec = Record(q["id"], state="flooding", call=None)
    flood = _Flood(ws, rec)
    join = spawn(flood.run, "stuck-sender")
    returned = None
    try:
        if not flood.wait_stuck():
            rec["call"] = {"how": "the flood never got stuck"}
            ws.abort()
            return
        called = time.monotonic()
        if q["how"] == "close":
            ws.close()
        else:
            ws.abort()
        returned = time.monotonic()
        rec["call"] = {
            "how": q["how"],
            "took": returned - called,
            "code": ws.close_code,
            "reason": ws.close_reason,
        }
    finally:
        join()
        if returned is not None and flood.ended is not None:
            rec["released_after_return"] = flood.ended - returned
        rec["state"] = "ended"


def stuck_keepalive(ws: WebSocket) -> None:
    """A second thread (greenlet) floods a client that neither reads nor sends while this
    one waits in ``receive()``: keepalive must end both; record how (``?id=``)."""
    rec = Record(_ws_query(ws)["id"], state="flooding", receive=None)
    flood = _Flood(ws, rec)
    join = spawn(flood.run, "stuck-sender")
    received_at = None
    try:
        message = ws.receive()
        rec["receive"] = {"how": "returned", "message": repr(message)[:60]}
    except ConnectionClosed as exc:
        received_at = time.monotonic()
        rec["receive"] = {"how": "ConnectionClosed", "code": exc.code, "reason": exc.reason}
    finally:
        if received_at is None:
            ws.abort()  # do not leave the sender stuck for ever: the test fails anyway
        join()
        if received_at is not None and flood.ended is not None and flood.since is not None:
            rec.update(
                failed_after_stuck=received_at - flood.since,
                released_after_receive=flood.ended - received_at,
            )
        rec["state"] = "ended"


HANDLERS = {
    "/echo": echo,
    "/fail": fail,
    "/close": close,
    "/record": record,
    "/duplex": duplex,
    "/push": push,
    # Protocol options per path (tests/live/test_options.py).
    "/strict": Endpoint(echo, origins=["https://app.example", "https://*.app.example"]),
    "/auth": Endpoint(whoami, accept=authenticate, subprotocols=["one", "two"]),
    "/keepalive-quick": Endpoint(record, ping_interval=0.2, ping_timeout=0.4),
    "/plain": Endpoint(echo, compression=None),
    # Path parameters (tests/live/test_routing.py).
    "/rooms/{name}/{n:int}": room,
    # A client that stops reading (tests/live/test_stuck.py).
    "/stuck-flood": Endpoint(
        stuck_flood, send_timeout=STUCK_SEND_TIMEOUT, ping_interval=None, compression=None
    ),
    "/stuck-release": Endpoint(
        stuck_release,
        send_timeout=None,
        close_timeout=STUCK_CLOSE_TIMEOUT,
        ping_interval=None,
        compression=None,
    ),
    "/stuck-keepalive": Endpoint(
        stuck_keepalive,
        send_timeout=None,
        ping_interval=STUCK_PING_INTERVAL,
        ping_timeout=STUCK_PING_TIMEOUT,
        close_timeout=STUCK_CLOSE_TIMEOUT,
        compression=None,
    ),
}


# -- the plain WSGI app -----------------------------------------------------------


def _respond(start_response: Any, status: str, body: str | bytes, ctype: str) -> list[bytes]:
    data = body.encode() if isinstance(body, str) else body
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(data)))])
    return [data]


def plain_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path = environ.get("PATH_INFO") or "/"
    if path == "/health":
        return _respond(start_response, "200 OK", "ok\n", "text/plain")
    if path == "/hello":
        return _respond(start_response, "200 OK", "hello from the app\n", "text/plain")
    if path == "/last-close":
        rec = Record.find(_query(environ).get("id", ""))
        if rec is None:
            return _respond(start_response, "404 Not Found", "null", "application/json")
        return _respond(start_response, "200 OK", json.dumps(rec), "application/json")
    body = f"plain app: {environ.get('REQUEST_METHOD')} {path}\n"
    return _respond(start_response, "200 OK", body, "text/plain")


ws_app = WebSocketMiddleware(plain_app, HANDLERS, max_message_size=None)
# A second middleware in front, with a short close timeout, for the test of a
# client that never answers our Close (the first one keeps the default, 5 s).
ws_app = WebSocketMiddleware(ws_app, {"/close-quick": close}, close_timeout=1.0)
app = instrument(ws_app)
