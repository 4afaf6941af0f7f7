"""wsgiws's own frame codec (``wsgiws._frames``): its rules one by one, reads split
anywhere, large frames, sending, and a differential test against wsproto."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from tests._strategies import FrameSpec, chunkings, describe_sent, parse_server_frames
from tests.core._engines import make_protocol
from wsgiws._frames import FrameCodec
from wsgiws._protocol import Data

KEY = b"\x37\xfa\x21\x3d"


class Recorder:
    """A receiver that records what the codec reports."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def _on_message(self, data: Data) -> None:
        self.events.append(("message", data))

    def _on_ping(self, payload: bytes) -> None:
        self.events.append(("ping", payload))

    def _on_pong(self, payload: bytes) -> None:
        self.events.append(("pong", payload))

    def _on_close(self, code: int, reason: str) -> None:
        self.events.append(("close", (code, reason)))

    def _on_error(self, code: int, reason: str) -> None:
        self.events.append(("error", (code, reason)))

    def _on_too_big(self) -> None:
        self.events.append(("too big", None))


def frame(opcode: int, payload: bytes = b"", **kwargs: Any) -> bytes:
    return FrameSpec(opcode, payload, key=KEY, **kwargs).encode()


def feed(data: bytes | Sequence[bytes], limit: int | None = None) -> list[tuple[str, Any]]:
    """What the codec reports for ``data`` (bytes, or a sequence of reads)."""
    recorder = Recorder()
    codec = FrameCodec(recorder, limit)
    for chunk in [data] if isinstance(data, bytes) else data:
        codec.receive(chunk)
    return recorder.events


def codes(events: list[tuple[str, Any]]) -> list[int]:
    return [value[0] for kind, value in events if kind == "error"]


# -- the rules, each with its close code ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (frame(0x2, b"x", masked=False), 1002, "unmasked"),  # §5.1
        (frame(0x2, b"x", rsv=4), 1002, "Reserved bit"),  # RSV1: no extension
        (frame(0x2, b"x", rsv=2), 1002, "Reserved bit"),
        (frame(0x2, b"x", rsv=1), 1002, "Reserved bit"),
        (frame(0x3, b"x"), 1002, "opcode 0x3"),
        (frame(0xB, b"x"), 1002, "opcode 0xb"),
        (frame(0x9, b"x" * 126), 1002, "len > 125"),
        (frame(0xA, b"x", fin=False), 1002, "fragment control"),
        (frame(0x8, b"", fin=False), 1002, "fragment control"),
        (frame(0x0, b"x"), 1002, "unexpected CONTINUATION"),
        (frame(0x1, b"a", fin=False) + frame(0x2, b"b"), 1002, "expected CONTINUATION"),
        (frame(0x2, b"a", fin=False) + frame(0x1, b"b"), 1002, "expected CONTINUATION"),
        (frame(0x2, b"x" * 10, length_bytes=2), 1002, "2 bytes"),
        (frame(0x2, b"x" * 200, length_bytes=8), 1002, "8 bytes"),
        (b"\x82\xff" + struct.pack("!Q", 1 << 63) + KEY, 1002, "MSB"),
        (frame(0x8, b"\x03"), 1002, "1 byte"),
        (frame(0x8, struct.pack("!H", 999)), 1002, "invalid code"),
        (frame(0x8, struct.pack("!H", 5000)), 1002, "invalid code"),
        (frame(0x8, struct.pack("!H", 1004)), 1002, "reserved code"),
        (frame(0x8, struct.pack("!H", 1005)), 1002, "local-only"),
        (frame(0x8, struct.pack("!H", 1006)), 1002, "local-only"),
        (frame(0x8, struct.pack("!H", 1015)), 1002, "local-only"),
        (frame(0x8, struct.pack("!H", 1014)), 1002, "reserved code"),  # as wsproto: finding 5
        (frame(0x8, struct.pack("!H", 2999)), 1002, "reserved code"),
        (frame(0x8, b"\x03\xe8ok\xff"), 1007, "CLOSE reason"),
        (frame(0x1, b"ok\xff"), 1007, "invalid start byte"),
        (frame(0x1, b"ok\xc3"), 1007, "unexpected end"),  # cut short by the message's end
        (frame(0x1, b"a\xc3", fin=False) + frame(0x0, b"\xa9\xed\xa0\x80"), 1007, "codec"),
    ],
)
def test_each_rule_has_its_code(data: bytes, code: int, words: str) -> None:
    events = feed(data)
    assert events[-1][0] == "error"
    assert events[-1][1][0] == code
    assert words in events[-1][1][1]
    # The same one byte at a time (a UTF-8 error's position may differ), and nothing is
    # parsed after the error.
    bytewise = feed([data[i : i + 1] for i in range(len(data))] + [frame(0x9)])
    assert [(kind, value[0] if kind == "error" else value) for kind, value in bytewise] == [
        (kind, value[0] if kind == "error" else value) for kind, value in events
    ]


@pytest.mark.parametrize(
    ("payload", "close"),
    [
        (b"", (1005, "")),  # no code: "considered to be 1005" (§7.1.5)
        (b"\x03\xe8", (1000, "")),
        (b"\x03\xf3" + "déjà".encode(), (1011, "déjà")),
        (struct.pack("!H", 3000), (3000, "")),
        (struct.pack("!H", 4999), (4999, "")),
        (struct.pack("!H", 1013), (1013, "")),
    ],
)
def test_a_valid_close_is_reported_and_ends_parsing(payload: bytes, close: tuple[int, str]) -> None:
    assert feed(frame(0x8, payload) + frame(0x1, b"after")) == [("close", close)]


def test_messages_and_control_frames_in_order() -> None:
    data = (
        frame(0x1, "κό".encode(), fin=False)
        + frame(0x9, b"p")
        + frame(0x0, "σμε".encode())
        + frame(0x2, b"\x00\xff")
        + frame(0xA, b"q")
        + frame(0x1, b"")
        + frame(0x2, b"", fin=False)
        + frame(0x0, b"")
    )
    assert feed(data) == [
        ("ping", b"p"),
        ("message", "κόσμε"),
        ("message", b"\x00\xff"),
        ("pong", b"q"),
        ("message", ""),
        ("message", b""),
    ]


STREAM = (
    frame(0x1, "κόσμε".encode()[:3], fin=False)  # a character cut across frames
    + frame(0x9, b"ping")
    + frame(0x0, "κόσμε".encode()[3:], fin=False)
    + frame(0x0, b"!")
    + frame(0x2, bytes(range(256)) * 2)  # 2-byte length
    + frame(0x2, b"x" * 70000)  # 8-byte length
    + frame(0x1, b"")
    + frame(0x8, b"\x03\xe8bye")
)
STREAM_EVENTS = [
    ("ping", b"ping"),
    ("message", "κόσμε!"),
    ("message", bytes(range(256)) * 2),
    ("message", b"x" * 70000),
    ("message", ""),
    ("close", (1000, "bye")),
]


def test_one_byte_at_a_time_gives_the_same_events() -> None:
    assert feed(STREAM) == STREAM_EVENTS
    assert feed([STREAM[i : i + 1] for i in range(len(STREAM))]) == STREAM_EVENTS


def test_two_reads_split_anywhere_give_the_same_events() -> None:
    head = STREAM[:700]  # every boundary of the small frames, and into the 70000-byte one
    rest = STREAM[700:]
    for cut in range(1, len(head)):
        assert feed([head[:cut], head[cut:] + rest]) == STREAM_EVENTS, cut


def test_a_1_mib_frame_in_64_kib_reads_and_bytes_wanted() -> None:
    payload = bytes(range(256)) * 4096
    data = frame(0x2, payload)
    recorder = Recorder()
    codec = FrameCodec(recorder)
    assert codec.bytes_wanted == 0
    codec.receive(data[:5])  # the header is 2 + 8 length bytes + 4 mask bytes
    assert codec.bytes_wanted == 0  # the length is not known yet
    codec.receive(data[5:10])
    assert codec.bytes_wanted == 14 + len(payload) - 10
    wanted = []
    for start in range(10, len(data), 65536):
        codec.receive(data[start : start + 65536])
        wanted.append(codec.bytes_wanted)
    assert recorder.events == [("message", payload)]
    assert wanted[0] == len(data) - 10 - 65536 and wanted[-1] == 0
    assert codec.partial_size == 0


def test_bytes_wanted_is_what_the_frame_lacks() -> None:
    recorder = Recorder()
    codec = FrameCodec(recorder)
    data = frame(0x2, b"x" * 300) + frame(0x1, b"hi")
    codec.receive(data[:3])  # 2-byte length not complete: unknown
    assert codec.bytes_wanted == 0
    codec.receive(data[3:4])
    assert codec.bytes_wanted == 8 + 300 - 4
    codec.receive(data[4:100])
    assert (codec.bytes_wanted, codec.partial_size) == (308 - 100, 100 - 8)
    codec.receive(data[100:])
    assert codec.bytes_wanted == 0
    assert recorder.events == [("message", b"x" * 300), ("message", "hi")]


def test_text_invalid_mid_frame_fails_before_the_frame_ends() -> None:
    """Fail fast (Autobahn 6.4.x): the bytes that cannot be UTF-8 end it, not the frame's end."""
    data = frame(0x1, b"a" * 1000 + b"\xff" + b"b" * 100000)
    events = feed([data[:2000]])
    assert codes(events) == [1007]
    # Mid-message too: a later fragment turns invalid while the message goes on.
    data = frame(0x1, "κό".encode(), fin=False) + frame(0x0, b"\xce\xba\xe1\xbd\xf4\x90", fin=False)
    assert codes(feed(data)) == [1007]


def test_a_message_too_big_is_found_from_the_header() -> None:
    """1009 before any of the payload arrives (RFC 6455 §7.4.1); the rest is checked and
    discarded, and the stream is parsed on to find the client's Close."""
    data = frame(0x2, b"x" * 11) + frame(0x9, b"p") + frame(0x8, b"\x03\xf1")
    assert feed([data[:6]], limit=10) == [("too big", None)]  # header and mask only
    assert feed(data, limit=10) == [("too big", None), ("ping", b"p"), ("close", (1009, ""))]
    # Across fragments: the earlier frames count.
    data = frame(0x1, b"a" * 6, fin=False) + frame(0x0, b"a" * 5)
    assert feed(data, limit=10) == [("too big", None)]
    assert feed(data, limit=11) == [("message", "a" * 11)]
    # Text is counted in bytes, as on the wire.
    assert feed(frame(0x1, "é".encode() * 6), limit=11) == [("too big", None)]
    # Discarded text is still checked: invalid UTF-8 ends the closing handshake.
    assert codes(feed(frame(0x1, b"a" * 20 + b"\xff"), limit=10)) == [1007]


# -- sending ------------------------------------------------------------------------------------


def server_events(data: bytes) -> list[object]:
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(data)
    return list(client.events())


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_message_frames_have_the_shortest_length_form(size: int) -> None:
    codec = FrameCodec(Recorder())
    payload = bytes(size)
    header, body = codec.frame_message(payload)
    assert body is payload  # no copy
    assert len(header) == (2 if size < 126 else 4 if size < 65536 else 10)
    assert server_events(header + body) == [BytesMessage(data=payload)]
    header, body = codec.frame_message("é" * size)
    assert server_events(header + body) == [TextMessage(data="é" * size)]


def test_control_frames() -> None:
    codec = FrameCodec(Recorder())
    assert server_events(codec.ping(b"x" * 125)) == [Ping(payload=b"x" * 125)]
    assert server_events(codec.pong(b"q")) == [Pong(payload=b"q")]
    with pytest.raises(ValueError, match="control frame"):
        codec.ping(b"x" * 126)
    assert codec.close(1005) == b"\x88\x00"  # the echo of a Close without a code
    assert server_events(codec.close(1006)) == [CloseConnection(code=1000, reason="")]
    # The reason is cut to fit 125 bytes, on a character boundary.
    long = codec.close(4000, "€" * 50)
    assert len(long) == 2 + 2 + 123 - 123 % 3
    assert server_events(long) == [CloseConnection(code=4000, reason="€" * 41)]


# -- the same as wsproto -------------------------------------------------------------------------

_payloads = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=60).map(str.encode),
    st.sampled_from([b"\xff", b"ok\xc3", b"\xed\xa0\x80", "é".encode()[:1], b"\x03\xe8", b"\x03"]),
    st.integers(125, 130).map(lambda n: b"y" * n),
)
_frames = st.builds(
    FrameSpec,
    opcode=st.sampled_from([0x0, 0x1, 0x2] * 4 + [0x8, 0x9, 0xA, 0x3, 0xB, 0xF]),
    payload=_payloads,
    fin=st.sampled_from([True] * 3 + [False]),
    rsv=st.sampled_from([0] * 20 + [1, 2, 4]),
    masked=st.sampled_from([True] * 20 + [False]),
    key=st.binary(min_size=4, max_size=4),
    length_bytes=st.sampled_from([None] * 20 + [2, 8]),
)


def outcome(engine: str, chunks: Sequence[bytes]) -> tuple[Any, ...]:
    """How a Protocol on ``engine`` ends after ``chunks``: messages, state, codes, answers."""
    proto = make_protocol(engine)
    sent = bytearray()
    for chunk in chunks:
        proto.receive_data(chunk)
        sent += proto.data_to_send()
    messages = []
    while (message := proto.next_message()) is not None:
        messages.append(message)
    sent += proto.data_to_send()
    frames, rest = parse_server_frames(bytes(sent))
    assert rest == b""
    return (
        messages,
        proto.state.name,
        proto.close_code,
        proto.close_received,
        proto.pongs_received,
        describe_sent(frames),
    )


@settings(max_examples=400)
@given(frames=st.lists(_frames, max_size=8), data=st.data())
def test_the_same_as_wsproto(frames: list[FrameSpec], data: st.DataObject) -> None:
    """Random sequences of valid and invalid client frames, read whole and in random reads:
    both engines deliver the same messages and end with the same state and close code."""
    raw = b"".join(f.encode() for f in frames)
    for chunks in ([raw] if raw else [], data.draw(chunkings(raw), label="reads")):
        assert outcome("codec", chunks) == outcome("wsproto", chunks)
