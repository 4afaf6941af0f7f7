"""The sans-I/O protocol core: messages, control frames, closing, failures."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)

from tests.core._engines import ENGINES, make_protocol
from tests.core._peer import mask_frame
from wsgiws._protocol import Protocol, State

NewProtocol = Callable[..., Protocol]


@pytest.fixture
def client() -> Connection:
    return Connection(ConnectionType.CLIENT)


@pytest.fixture(params=ENGINES)
def new(request: pytest.FixtureRequest) -> NewProtocol:
    """Makes a Protocol (``max_message_size=...``) on each framing engine in turn."""
    engine: str = request.param

    def make(max_message_size: int | None = None) -> Protocol:
        return make_protocol(engine, max_message_size)

    return make


def server_events(client: Connection, data: bytes) -> list[object]:
    client.receive_data(data)
    return list(client.events())


def test_text_and_binary_messages(new: NewProtocol, client: Connection) -> None:
    proto = new()
    proto.receive_data(
        client.send(TextMessage(data="héllo")) + client.send(BytesMessage(data=b"\x00\xff"))
    )
    assert proto.next_message() == "héllo"
    assert proto.next_message() == b"\x00\xff"
    assert proto.next_message() is None


def test_fragmented_message_with_a_ping_in_between_is_assembled(
    new: NewProtocol, client: Connection
) -> None:
    proto = new()
    data = client.send(TextMessage(data="one ", message_finished=False))
    data += client.send(Ping(payload=b"p"))
    data += client.send(TextMessage(data="two", message_finished=True))
    # Byte by byte: the worst case for a parser.
    for i in range(len(data)):
        proto.receive_data(data[i : i + 1])
    assert proto.next_message() == "one two"
    assert server_events(client, proto.data_to_send()) == [Pong(payload=b"p")]


def test_peer_close_is_echoed_and_closes(new: NewProtocol, client: Connection) -> None:
    proto = new()
    proto.receive_data(client.send(CloseConnection(code=4000, reason="bye")))
    assert proto.state is State.CLOSED
    assert (proto.close_code, proto.close_reason, proto.close_received) == (4000, "bye", True)
    assert server_events(client, proto.data_to_send()) == [CloseConnection(code=4000, reason="bye")]


def test_local_close_waits_for_the_peer(new: NewProtocol, client: Connection) -> None:
    proto = new()
    events = server_events(client, proto.send_close(4001, "done"))
    assert events == [CloseConnection(code=4001, reason="done")]
    assert proto.state is State.CLOSING
    # Data the peer sent before it saw our Close is discarded (§5.5.1).
    proto.receive_data(mask_frame(0x1, b"late"))
    assert proto.next_message() is None
    proto.receive_data(client.send(CloseConnection(code=4001, reason="done")))
    assert proto.state is State.CLOSED
    assert (proto.close_code, proto.close_reason) == (4001, "done")
    assert proto.data_to_send() == b""


def test_eof_without_close_is_1006(new: NewProtocol) -> None:
    proto = new()
    proto.receive_data(b"")
    assert (proto.state, proto.close_code, proto.close_received) == (State.CLOSED, 1006, False)


def test_eof_during_closing_handshake_is_1006(new: NewProtocol) -> None:
    proto = new()
    proto.send_close()
    proto.receive_data(b"")
    assert (proto.state, proto.close_code) == (State.CLOSED, 1006)


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        # Invalid UTF-8 that only shows in the second fragment (Autobahn 6.4.x):
        # the connection must fail at once, not wait for the message's end.
        (
            mask_frame(0x1, "κό".encode(), fin=False)
            + mask_frame(0x0, b"\xce\xba\xe1\xbd", fin=False)
            + mask_frame(0x0, b"\xf4\x90\x80\x80", fin=False),
            1007,
        ),
        (mask_frame(0x3, b"reserved opcode"), 1002),
        (mask_frame(0x1, b"rsv bits", rsv=0b100), 1002),
        (mask_frame(0x0, b"continuation without a start"), 1002),
        (mask_frame(0x9, b"fragmented ping", fin=False), 1002),
        (mask_frame(0x8, b"\x03\xe8\xff\xfe"), 1007),  # close reason not UTF-8
        (mask_frame(0x8, b"\x03\xed"), 1002),  # close code 1005 must not be sent
    ],
)
def test_protocol_errors_fail_the_connection(
    new: NewProtocol, client: Connection, frames: bytes, code: int
) -> None:
    proto = new()
    proto.receive_data(frames)
    assert proto.next_message() is None  # the failure happens there
    assert proto.state is State.CLOSED
    assert proto.close_code == code
    assert proto.close_received is False
    sent = server_events(client, proto.data_to_send())
    assert len(sent) == 1 and isinstance(sent[0], CloseConnection) and sent[0].code == code
    # Whatever follows is discarded, never parsed (§7.1.7).
    proto.receive_data(mask_frame(0x9, b"ping after failure"))
    assert proto.data_to_send() == b""


def test_message_too_big_closes_with_1009_across_fragments(
    new: NewProtocol, client: Connection
) -> None:
    proto = new(max_message_size=10)
    proto.receive_data(client.send(BytesMessage(data=b"x" * 6, message_finished=False)))
    assert proto.state is State.OPEN
    proto.receive_data(client.send(BytesMessage(data=b"x" * 6, message_finished=True)))
    assert proto.state is State.CLOSING
    assert proto.next_message() is None
    assert server_events(client, proto.data_to_send())[0] == CloseConnection(
        code=1009, reason="message larger than 10 bytes"
    )
    proto.receive_data(client.send(CloseConnection(code=1009)))
    assert (proto.state, proto.close_code) == (State.CLOSED, 1009)


def test_message_at_the_limit_is_accepted(new: NewProtocol, client: Connection) -> None:
    proto = new(max_message_size=10)
    proto.receive_data(client.send(BytesMessage(data=b"x" * 10)))
    assert proto.next_message() == b"x" * 10


def test_buffered_size_counts_untaken_messages(new: NewProtocol, client: Connection) -> None:
    proto = new()
    proto.receive_data(client.send(BytesMessage(data=b"x" * 100)))
    proto.receive_data(client.send(BytesMessage(data=b"y" * 50, message_finished=False)))
    assert proto.buffered_size == 150
    proto.next_message()
    assert proto.buffered_size == 50


def test_sending_outside_open_is_a_bug(new: NewProtocol) -> None:
    proto = new()
    proto.send_close()
    with pytest.raises(AssertionError):
        proto.send_message("no")


def test_transitions_are_checked(new: NewProtocol) -> None:
    proto = new()
    proto.connection_lost()
    with pytest.raises(AssertionError, match="invalid transition CLOSED -> CLOSING"):
        proto._to(State.CLOSING)


@pytest.mark.parametrize(
    ("fragments", "too_big"),
    [
        (["a" * 10], False),
        (["é" * 5], False),  # 10 bytes
        (["é" * 6], True),  # 12 bytes in 6 characters
        (["€" * 3, "a"], False),  # 9 + 1 bytes
        (["€" * 3, "ab"], True),  # 11 bytes: counted exactly once near the limit
        (["a" * 2, "😀" * 2], False),  # 2 + 8 bytes
        (["a" * 3, "😀" * 2], True),  # 3 + 8 bytes
        (["é", "é", "😀" * 2], True),  # 2 + 2 + 8: earlier fragments counted in bytes too
        (["é", "😀" * 2], False),  # 2 + 8
    ],
)
def test_the_limit_on_text_is_in_utf8_bytes(
    new: NewProtocol, fragments: list[str], too_big: bool
) -> None:
    protocol = new(max_message_size=10)
    for i, fragment in enumerate(fragments):
        last = i == len(fragments) - 1
        protocol.receive_data(mask_frame(0x0 if i else 0x1, fragment.encode(), fin=last))
    if too_big:
        assert protocol.state is State.CLOSING and protocol.sent_close is not None
        assert protocol.sent_close[0] == 1009
    else:
        assert protocol.state is State.OPEN
        assert protocol.next_message() == "".join(fragments)


def test_exact_counting_resets_with_each_message(new: NewProtocol) -> None:
    protocol = new(max_message_size=10)
    for _ in range(3):
        protocol.receive_data(mask_frame(0x1, ("€" * 3).encode()))  # 9 bytes, counted exactly
        protocol.receive_data(mask_frame(0x1, b"a" * 10))
    assert [protocol.next_message() for _ in range(6)] == ["€" * 3, "a" * 10] * 3
    assert protocol.state is State.OPEN


def test_messages_before_a_protocol_error_are_delivered_then_it_fails(new: NewProtocol) -> None:
    """§7.1.7 lets us fail at once; delivering what arrived whole first lets the application
    answer it (Autobahn 3.2, 4.1.3, 5.15...): the Close follows once the messages are taken."""
    protocol = new()
    protocol.receive_data(
        mask_frame(0x1, b"one") + mask_frame(0x1, b"two") + mask_frame(0x1, b"bad", rsv=2)
    )
    assert protocol.state is State.OPEN and protocol.data_to_send() == b""
    protocol.send_message("answer")  # still allowed
    assert protocol.next_message() == "one"
    assert protocol.next_message() == "two"
    protocol.receive_data(mask_frame(0x1, b"ignored"))  # nothing after the defect is parsed
    assert protocol.next_message() is None
    assert protocol.state is State.CLOSED and protocol.close_code == 1002
    close = protocol.data_to_send()
    assert close[0] == 0x88 and close[2:4] == (1002).to_bytes(2, "big")  # Close 1002


def test_a_protocol_error_fails_at_the_next_look_for_a_message(new: NewProtocol) -> None:
    protocol = new()
    protocol.receive_data(mask_frame(0x1, b"bad", rsv=2))
    assert protocol.state is State.OPEN  # the application may be answering a message
    assert protocol.next_message() is None
    assert protocol.state is State.CLOSED and protocol.close_code == 1002


def test_frame_message_is_the_header_then_the_payload(new: NewProtocol, client: Connection) -> None:
    proto = new()
    for data in (b"x" * 200, "é" * 70000, b""):
        header, payload = proto.frame_message(data)
        message = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        assert server_events(client, header + payload) == [message]
        assert proto.send_message(data) == header + payload


def test_our_codec_sends_a_binary_payload_without_copying_it() -> None:
    data = b"x" * 100_000
    header, payload = make_protocol("codec").frame_message(data)
    assert payload is data and len(header) == 10


def test_bytes_wanted_tells_a_reader_how_much_the_frame_lacks() -> None:
    frame = mask_frame(0x2, b"x" * 100_000)
    for engine, wanted in (("codec", len(frame) - 1000), ("wsproto", 0)):
        proto = make_protocol(engine)
        assert proto.bytes_wanted == 0
        proto.receive_data(frame[:1000])
        assert proto.bytes_wanted == wanted, engine  # wsproto does not say
        proto.receive_data(frame[1000:])
        assert proto.bytes_wanted == 0
        assert proto.next_message() == b"x" * 100_000


def test_our_codec_refuses_a_message_too_big_from_its_header(client: Connection) -> None:
    """1009 once the header is in, before the payload is buffered (wsproto counts the payload
    as it arrives); then the usual closing handshake."""
    proto = make_protocol("codec", 10)
    frame = mask_frame(0x2, b"x" * 1_000_000)
    proto.receive_data(frame[:14])  # the header and the mask: no payload yet
    assert proto.state is State.CLOSING and proto.buffered_size == 0
    assert server_events(client, proto.data_to_send()) == [
        CloseConnection(code=1009, reason="message larger than 10 bytes")
    ]
    proto.receive_data(frame[14:])  # discarded
    assert proto.buffered_size == 0 and proto.next_message() is None
    proto.receive_data(client.send(CloseConnection(code=1009)))
    assert (proto.state, proto.close_code) == (State.CLOSED, 1009)
