"""Property-based tests of the blocking connection over real TCP sockets.

A handler thread runs ``for m in ws: ws.send(m)`` on a
:class:`wsgiws._connection.WebSocket` (threads kit) as the middleware would,
while the test, as the client, writes a generated stream (valid, with one
defect, or damaged) in random pieces, then closes its sending side, goes
silent, or resets the connection. The reference decoder
(:func:`tests._strategies.frame_oracle`) says how the connection must end.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace

import webob
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests._strategies import (
    CLOSE,
    Outcome,
    Verdict,
    chunkings,
    defective_streams,
    describe_sent,
    frame_oracle,
    mutated_streams,
    parse_server_frames,
    valid_streams,
)
from tests.conftest import timeout
from wsgiws import ConnectionClosed, WebSocket
from wsgiws._concurrency import THREADS

CLOSE_TIMEOUT = timeout(0.5)
#: Past the close timeout, how long a handler may take to finish before it counts as hung.
SLACK = timeout(10)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, int | None]:
    kind = draw(st.sampled_from(["valid", "defective", "damaged"]))
    if kind == "valid":
        stream = draw(valid_streams(big=False))
        return stream.data, draw(st.none() | st.just(stream.largest))
    if kind == "defective":
        defective = draw(defective_streams())
        return defective.stream.data, defective.limit
    return draw(mutated_streams())


@contextmanager
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    try:
        yield server, client
    finally:
        with suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # frees a handler still waiting, if any
        server.close()
        client.close()


class Handler(threading.Thread):
    """The middleware's part: run the echo handler, then finish the connection."""

    def __init__(self, ws: WebSocket) -> None:
        super().__init__(daemon=True)
        self.ws = ws
        self.error: BaseException | None = None

    def run(self) -> None:
        code = 1000
        try:
            for message in self.ws:
                self.ws.send(message)
        except ConnectionClosed:
            pass
        except BaseException as exc:
            self.error = exc
            code = 1011
        finally:
            try:
                self.ws._finish(code)
            except BaseException as exc:
                self.error = self.error or exc


def read_to_eof(sock: socket.socket) -> bytes:
    sock.settimeout(CLOSE_TIMEOUT + SLACK)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"the server did not close TCP; got {data[:200]!r}") from None
        if not chunk:
            return data
        data += chunk


def matches(outcome: Outcome, wire: bytes) -> bool:
    """Whether what the server wrote fits ``outcome``: echoes of a prefix of its
    messages, exactly its control frames, and nothing after its Close."""
    frames, rest = parse_server_frames(wire)
    assert rest == b"", f"a partial frame before EOF: {rest[:50]!r}"
    data = [p for op, p in frames if op < 8]
    control = [(op, p) for op, p in frames if op >= 8]
    echoed = [m.encode() if isinstance(m, str) else m for m in outcome.messages[: len(data)]]
    if frames and frames[-1][0] != CLOSE and outcome.sent_close is not None:
        return False
    return data == echoed and describe_sent(control) == list(outcome.sent)


@settings(max_examples=80)
@given(
    stream=streams(),
    ending=st.sampled_from(["eof", "silent", "reset"]),
    data=st.data(),
)
def test_handler_finishes_and_the_peer_sees_the_right_end(
    stream: tuple[bytes, int | None], ending: str, data: st.DataObject
) -> None:
    """Whatever the client sends, the handler finishes within the close timeout plus
    slack, raising nothing but ConnectionClosed, and (unless the client reset) the client
    reads well-formed frames: echoes, a pong per ping, then the Close the oracle expects
    (or none, after EOF on an open connection), then EOF."""
    raw, limit = stream
    if ending == "silent":
        # A silent client is only ended by the server when the server closes.
        # (From CLOSING, after our 1009, the close timeout ends it: finding 3, fixed.)
        states = {o.state for o in frame_oracle(raw, limit).outcomes}
        if "OPEN" in states:
            event("silent -> eof (the connection stays open)")
            ending = "eof"
    event(ending)
    verdict = frame_oracle(raw, limit, eof=ending == "eof")
    if ending == "silent":  # CLOSING gives up after the close timeout: 1006
        verdict = Verdict(
            tuple(
                replace(o, state="CLOSED", close_code=1006) if o.state == "CLOSING" else o
                for o in verdict.outcomes
            ),
            verdict.by_segmentation,
        )
    with tcp_pair() as (server, client):
        ws = WebSocket(
            server,
            THREADS,
            request=webob.Request.blank("/ws"),
            max_message_size=limit,
            close_timeout=CLOSE_TIMEOUT,
        )
        handler = Handler(ws)
        handler.start()
        with suppress(OSError):  # the server may close first, on a defect
            for chunk in data.draw(chunkings(raw), label="writes"):
                client.sendall(chunk)
        if ending == "reset":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            wire = None
        else:
            if ending == "eof":
                with suppress(OSError):
                    client.shutdown(socket.SHUT_WR)
            try:
                wire = read_to_eof(client)
            except ConnectionResetError:
                raise AssertionError("the server reset the connection") from None
            client.close()
        handler.join(CLOSE_TIMEOUT + SLACK)
        assert not handler.is_alive(), "the handler did not finish"
        assert handler.error is None, repr(handler.error)
        assert ws.closed
        if wire is None:
            return
        fitting = [o for o in verdict.outcomes if matches(o, wire)]
        assert fitting, f"{parse_server_frames(wire)[0]} fits none of {verdict.outcomes}"
        assert ws.close_code in {o.close_code for o in fitting}


def test_silent_peer_after_1009_does_not_hang_the_handler() -> None:
    """Finding 3 (fixed in 2425d5c): after a message too big, the connection sends 1009
    and waits for the client's Close; a client that then says nothing (TCP open) must not
    hold the handler past the close timeout."""
    raw = b"\x82\x94" + b"\x00" * 4 + b"x" * 20  # a 20-byte binary message; the limit is 10
    with tcp_pair() as (server, client):
        ws = WebSocket(
            server,
            THREADS,
            request=webob.Request.blank("/ws"),
            max_message_size=10,
            close_timeout=CLOSE_TIMEOUT,
        )
        handler = Handler(ws)
        handler.start()
        client.sendall(raw)
        client.settimeout(timeout(10))
        frames, _ = parse_server_frames(client.recv(1024))
        assert frames[0][0] == CLOSE and frames[0][1][:2] == b"\x03\xf1"
        handler.join(CLOSE_TIMEOUT + SLACK)
        assert not handler.is_alive(), "the handler waits for ever in receive() after 1009"
        assert handler.error is None
