"""Property-based tests of the options' sans-I/O parts: permessage-deflate negotiation and
streams through :class:`~wsgiws._protocol.Protocol`, and the Origin rules."""

from __future__ import annotations

import re
from typing import Union

from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, TextMessage

from tests.core._peer import mask_frame
from tests.core.test_deflate import client_extension
from wsgiws._deflate import Deflate, negotiate
from wsgiws._handshake import origin_allowed
from wsgiws._protocol import Protocol, State

Data = Union[str, bytes]

header_text = st.text(
    alphabet=st.sampled_from([*'permssagdflt-_=;,"\\ \t0123456789xyz', "\x00", "é"]),
    max_size=120,
)
offers = st.one_of(
    header_text,
    st.lists(
        st.sampled_from(
            [
                "permessage-deflate",
                "client_max_window_bits",
                "client_max_window_bits=10",
                'client_max_window_bits="12"',
                "server_max_window_bits=9",
                "server_max_window_bits=15",
                "server_max_window_bits=8",
                "server_max_window_bits=16",
                "client_no_context_takeover",
                "server_no_context_takeover",
                "x-unknown",
                "permessage-deflate; server_max_window_bits",
            ]
        ),
        max_size=6,
    ).map(lambda parts: "; ".join(parts)),
)
deflate_settings = st.builds(
    Deflate,
    server_max_window_bits=st.integers(9, 15),
    client_max_window_bits=st.integers(9, 15),
    server_no_context_takeover=st.booleans(),
    client_no_context_takeover=st.booleans(),
    mem_level=st.integers(1, 9),
    level=st.integers(-1, 9),
)
messages = st.lists(
    st.tuples(
        st.one_of(st.text(max_size=300), st.binary(max_size=300)),
        st.integers(1, 4),  # fragments
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300)
@given(settings_=deflate_settings, header=st.one_of(st.none(), offers, header_text))
def test_negotiation_never_raises(settings_: Deflate, header: str | None) -> None:
    result = negotiate(settings_, header, max_message_size=1024)
    if result is not None:
        response, _ = result
        assert response.split(";")[0] == "permessage-deflate"
        assert "\r" not in response and "\n" not in response


def _client_frames(client: Connection, message: Data, fragments: int) -> bytes:
    step = max(1, -(-len(message) // fragments))
    pieces = [message[i : i + step] for i in range(0, len(message), step)] or [message]
    out = b""
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        if isinstance(piece, str):
            out += client.send(TextMessage(data=piece, message_finished=last))
        else:
            out += client.send(BytesMessage(data=piece, message_finished=last))
    return out


@settings(max_examples=150)
@given(
    settings_=deflate_settings,
    offer=st.sampled_from(
        [
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10",
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=9",
        ]
    ),
    sent=messages,
    data=st.data(),
)
def test_compressed_messages_arrive_whole_however_they_are_read(
    settings_: Deflate, offer: str, sent: list[tuple[Data, int]], data: st.DataObject
) -> None:
    result = negotiate(settings_, offer, max_message_size=None)
    assert result is not None
    response, extension = result
    client = Connection(ConnectionType.CLIENT, extensions=[client_extension(response)])
    protocol = Protocol(extensions=[extension])
    wire = b"".join(_client_frames(client, message, n) for message, n in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    for start, end in zip([0, *cuts], [*cuts, len(wire)]):
        if end > start:
            protocol.receive_data(wire[start:end])
    received = []
    while (message := protocol.next_message()) is not None:
        received.append(message)
    assert received == [message for message, _ in sent]
    assert protocol.state is State.OPEN
    # And back: what the server compresses, the client decompresses.
    back = b"".join(protocol.send_message(message) for message, _ in sent)
    client.receive_data(back)
    got: list[Data] = []
    parts: list[Data] = []
    for event in client.events():
        assert isinstance(event, (TextMessage, BytesMessage)), event
        parts.append(event.data)
        if event.message_finished:
            got.append("".join(parts) if isinstance(event, TextMessage) else b"".join(parts))  # type: ignore[arg-type]
            parts = []
    assert got == [message for message, _ in sent]


@settings(max_examples=300)
@given(
    payload=st.binary(max_size=200),
    opcode=st.sampled_from([0x1, 0x2]),
    limit=st.sampled_from([None, 16, 1024]),
)
def test_damaged_compressed_payloads_end_cleanly(
    payload: bytes, opcode: int, limit: int | None
) -> None:
    """Arbitrary bytes in a frame flagged compressed: a message, or a close with a code that
    says why (1007 bad data, 1009 too big, 1002 protocol); never an exception."""
    result = negotiate(Deflate(), "permessage-deflate", max_message_size=limit)
    assert result is not None
    protocol = Protocol(max_message_size=limit, extensions=[result[1]])
    protocol.receive_data(mask_frame(opcode, payload, rsv=4))
    message = protocol.next_message()
    if protocol.state is State.OPEN:
        assert message is not None
        if limit is not None:
            size = len(message.encode()) if isinstance(message, str) else len(message)
            assert size <= limit
    else:
        assert protocol.sent_close is not None
        assert protocol.sent_close[0] in (1002, 1007, 1009), protocol.sent_close


hosts = st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,3}", fullmatch=True)
schemes = st.sampled_from(["http", "https"])


@settings(max_examples=300)
@given(
    scheme=schemes,
    host=hosts,
    other_scheme=schemes,
    other_host=hosts,
    port=st.one_of(st.none(), st.integers(1, 65535)),
)
def test_origin_rules_match_exactly_what_they_name(
    scheme: str, host: str, other_scheme: str, other_host: str, port: int | None
) -> None:
    origin = f"{scheme}://{host}" + ("" if port is None else f":{port}")
    other = f"{other_scheme}://{other_host}"
    assert origin_allowed(origin, [origin])
    assert origin_allowed(origin.upper(), [origin])
    assert origin_allowed(origin, [other]) is (origin == other)
    # A wildcard rule matches strict subdomains of its host only, same scheme, no port.
    wildcard = f"{other_scheme}://*.{other_host}"
    expected = port is None and scheme == other_scheme and host.endswith("." + other_host)
    assert origin_allowed(origin, [wildcard]) is expected
    assert origin_allowed(origin, [re.compile(re.escape(origin))])
    assert not origin_allowed(None, [origin, wildcard])
