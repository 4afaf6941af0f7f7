"""permessage-deflate (RFC 7692): negotiation, round trips against wsproto's client, limits.

The client side is wsproto's own ``PerMessageDeflate``, finalized with the
response header :func:`wsgiws._deflate.negotiate` produced, so both ends agree
only through what went over the (simulated) wire. Inputs wsproto would not
produce (bombs, corrupt data, BFINAL streams) are framed by hand.
"""

from __future__ import annotations

import random
import tracemalloc
import zlib
from typing import Union

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason
from wsproto.handshake import server_extensions_handshake

from tests.core._peer import mask_frame
from wsgiws._deflate import Deflate, _ServerDeflate, negotiate

Data = Union[str, bytes]
TAIL = b"\x00\x00\xff\xff"
TEXT, BINARY, CONTINUATION, PING = 0x1, 0x2, 0x0, 0x9
RSV1 = 4  # mask_frame's rsv argument is the three RSV bits, RSV1 first
MIB = 1 << 20

# -- helpers ----------------------------------------------------------------------------------


def words(size: int, seed: int = 0) -> str:
    """``size`` characters of text made of a small vocabulary: compressible, not trivially."""
    rng = random.Random(seed)
    vocabulary = ["alpha", "beta", "gamma", "héllo", "wörld", "✓", "{", "}", '"key":', "42,"]
    parts: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(vocabulary) + " "
        parts.append(word)
        length += len(word)
    return "".join(parts)[:size]


def client_extension(response: str) -> PerMessageDeflate:
    """wsproto's client extension, configured by our response header value."""
    extension = PerMessageDeflate()
    # wsproto's setters refuse 8, a value RFC 7692 §7.1.2 allows; its
    # decompressor takes it (its compressor cannot: zlib refuses 8).
    extension.finalize(response.replace("_bits=8", "_bits=9"))
    if "server_max_window_bits=8" in response:
        extension._server_max_window_bits = 8
    if "client_max_window_bits=8" in response:
        extension._client_max_window_bits = 8
    return extension


def feed(connection: Connection, data: bytes, chunk: int | None = None) -> list[Event]:
    """Give ``data`` to ``connection`` (``chunk`` bytes at a time); its events until a close."""
    events: list[Event] = []
    step = chunk or max(len(data), 1)
    for start in range(0, len(data), step):
        connection.receive_data(data[start : start + step])
        events.extend(connection.events())
        if any(isinstance(event, CloseConnection) for event in events):
            break
    return events


def assemble(events: list[Event]) -> list[object]:
    """Events with message pieces joined into whole messages (str or bytes)."""
    result: list[object] = []
    pieces: list[Union[str, bytes, bytearray]] = []
    for event in events:
        if isinstance(event, (TextMessage, BytesMessage)):
            pieces.append(event.data)
            if event.message_finished:
                joined: Data = (
                    "".join(pieces)  # type: ignore[arg-type]
                    if isinstance(event, TextMessage)
                    else b"".join(pieces)  # type: ignore[arg-type]
                )
                result.append(joined)
                pieces = []
        else:
            result.append(event)
    assert not pieces, "a message was left unfinished"
    return result


def close_codes(events: list[Event]) -> list[int]:
    return [event.code for event in events if isinstance(event, CloseConnection)]


def server_frames(data: bytes) -> list[tuple[int, bool, bool, bytes]]:
    """The (opcode, fin, rsv1, payload) of each unmasked server frame in ``data``."""
    frames = []
    i = 0
    while i < len(data):
        first, length = data[i], data[i + 1] & 0x7F
        i += 2
        if length == 126:
            length, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif length == 127:
            length, i = int.from_bytes(data[i : i + 8], "big"), i + 8
        frames.append((first & 0x0F, bool(first & 0x80), bool(first & 0x40), data[i : i + length]))
        i += length
    return frames


def strict_inflate(stream: bytes, bits: int) -> bytes:
    """Inflate ``stream`` one output byte per call, with a window of exactly 2**bits.

    zlib only checks a distance against its window for output from earlier
    calls; one byte per call makes every back-reference go through the window,
    so a distance beyond 2**bits (+1) fails here.
    """
    decompressor = zlib.decompressobj(-bits)
    output = bytearray()
    data = stream
    while True:
        piece = decompressor.decompress(data, 1)
        if not piece:
            break
        output += piece
        data = decompressor.unconsumed_tail
    return bytes(output)


def wire_stream(frames: list[tuple[int, bool, bool, bytes]]) -> bytes:
    """The DEFLATE stream of the compressed messages in ``frames`` (RFC 7692 §7.2.2)."""
    stream = b""
    for opcode, fin, _, payload in frames:
        if opcode in (TEXT, BINARY, CONTINUATION):
            stream += payload + (TAIL if fin else b"")
    return stream


def bomb(size: int) -> bytes:
    """Raw DEFLATE data (no tail) inflating to ``size`` zero bytes, about size / 1000 long.

    DEFLATE cannot beat about 1032:1, so 1 GiB takes about 1 MiB. After the first
    MiB the window is all zeros, so the sync-flushed blocks for the next MiB of
    zeros can be repeated as they are.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    zeros = bytes(MIB)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    steady = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return first + steady * (size // MIB - 1)


def one_shot(message: bytes, zdict: bytes | None = None) -> bytes:
    """``message`` as a complete DEFLATE stream (BFINAL set), as a one-shot compressor makes it."""
    if zdict is None:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    else:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=zdict)
    return compressor.compress(message) + compressor.flush()


class Pair:
    """A wsproto client and a wsproto server joined by one negotiation."""

    def __init__(
        self,
        settings: Deflate | None = None,
        offer: str = "permessage-deflate; client_max_window_bits",
        *,
        max_message_size: int | None = None,
    ) -> None:
        result = negotiate(settings or Deflate(), offer, max_message_size=max_message_size)
        assert result is not None
        self.response, self.extension = result
        self.client_extension = client_extension(self.response)
        self.client = Connection(ConnectionType.CLIENT, extensions=[self.client_extension])
        self.server = Connection(ConnectionType.SERVER, extensions=[self.extension])

    def client_sends(self, message: Data, *, fragments: int = 1, ping: bool = False) -> bytes:
        """The client's wire bytes for ``message`` in ``fragments`` frames (a ping in between)."""
        step = max(1, -(-len(message) // fragments))
        pieces = [message[i : i + step] for i in range(0, len(message), step)] or [message]
        data = b""
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            event = (
                TextMessage(data=piece, message_finished=last)
                if isinstance(piece, str)
                else BytesMessage(data=piece, message_finished=last)
            )
            data += self.client.send(event)
            if ping and index == 0 and not last:
                data += self.client.send(Ping(payload=b"between"))
        return data

    def server_sends(self, message: Data) -> bytes:
        event = (
            TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
        )
        return self.server.send(event)


def negotiated(settings: Deflate, header: str | None) -> str | None:
    result = negotiate(settings, header, max_message_size=None)
    return None if result is None else result[0]


# -- negotiation (RFC 7692 §5, §7.1; RFC 6455 §9.1) --------------------------------------------

PMD = "permessage-deflate"
# What Autobahn's fuzzingclient (autobahn 0.10) offers in sections 12 and 13.
AB_DEFAULT = f"{PMD}; client_no_context_takeover; client_max_window_bits"
AB_NCT = f"{AB_DEFAULT}; server_no_context_takeover"

NEGOTIATION = [
    # Browsers, websockets, Autobahn.
    (PMD, PMD),
    (f"{PMD}; client_max_window_bits", f"{PMD}; client_max_window_bits=12"),
    (
        f"{PMD}; server_max_window_bits=12; client_max_window_bits=12",
        f"{PMD}; server_max_window_bits=12; client_max_window_bits=12",
    ),
    (AB_DEFAULT, f"{PMD}; client_no_context_takeover; client_max_window_bits=12"),
    (
        AB_NCT,
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=12",
    ),
    *[
        (
            f"{AB_DEFAULT}; server_max_window_bits={bits}",
            f"{PMD}; client_no_context_takeover; server_max_window_bits={min(bits, 12)}; "
            "client_max_window_bits=12",
        )
        for bits in range(8, 16)
    ],
    (
        f"{AB_NCT}; server_max_window_bits=8, {AB_NCT}, {AB_DEFAULT}",
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=8; client_max_window_bits=12",
    ),
    # Each parameter alone.
    (f"{PMD}; server_no_context_takeover", f"{PMD}; server_no_context_takeover"),
    (f"{PMD}; client_no_context_takeover", f"{PMD}; client_no_context_takeover"),
    (f"{PMD}; client_max_window_bits=8", f"{PMD}; client_max_window_bits=8"),
    (f"{PMD}; client_max_window_bits=10", f"{PMD}; client_max_window_bits=10"),
    (f"{PMD}; client_max_window_bits=15", f"{PMD}; client_max_window_bits=12"),
    (f"{PMD}; server_max_window_bits=9", f"{PMD}; server_max_window_bits=9"),
    (f"{PMD}; server_max_window_bits=15", f"{PMD}; server_max_window_bits=12"),
    # Quoted-strings, whitespace.
    (f'{PMD}; server_max_window_bits="10"', f"{PMD}; server_max_window_bits=10"),
    (f'{PMD}; client_max_window_bits="9"', f"{PMD}; client_max_window_bits=9"),
    (f'{PMD}; server_max_window_bits="1\\0"', f"{PMD}; server_max_window_bits=10"),
    (
        f"{PMD} ;server_max_window_bits = 10 ;\tclient_max_window_bits ",
        f"{PMD}; server_max_window_bits=10; client_max_window_bits=12",
    ),
    (f'{PMD}; x="a,b;c", {PMD}', PMD),
    # Several offers, other extensions, header lines joined by ", ".
    (f"x-webkit-deflate-frame, {PMD}", PMD),
    (
        f"foo; server_max_window_bits=10, {PMD}; server_max_window_bits=11",
        f"{PMD}; server_max_window_bits=11",
    ),
    (
        f"foo, {PMD}; server_max_window_bits=10, {PMD}",
        f"{PMD}; server_max_window_bits=10",
    ),
    (f"{PMD}; server_max_window_bits=11, , {PMD}", f"{PMD}; server_max_window_bits=11"),
    ("foo; bar=1", None),
    (f"{PMD}-x", None),
    ("Permessage-Deflate", None),
    # Garbage never raises.
    (None, None),
    ("", None),
    (",", None),
    (" , ,", None),
    (";", None),
    ('"', None),
    (f"{PMD};", None),
    (f"{PMD};;", None),
    (f'{PMD}; "', None),
    (f'{PMD}; a="unterminated, {PMD}', None),
    (f"{PMD}; server_max_window_bits=10=11", None),
    (f"{PMD}\x00", None),
    ("\x00\xff\u2603", None),
    (f"{PMD}; " + "x; " * 5000, None),
]

# Offers that must be declined, each also followed by an acceptable one.
DECLINED_OFFERS = [
    f"{PMD}; foo",
    f"{PMD}; foo=1",
    f"{PMD}; server_no_context_takeover; server_no_context_takeover",
    f"{PMD}; client_max_window_bits; client_max_window_bits=10",
    f"{PMD}; server_max_window_bits",
    f"{PMD}; server_max_window_bits=",
    f"{PMD}; server_max_window_bits=7",
    f"{PMD}; server_max_window_bits=16",
    f"{PMD}; server_max_window_bits=08",
    f"{PMD}; server_max_window_bits=+9",
    f"{PMD}; server_max_window_bits=9.0",
    f'{PMD}; server_max_window_bits="1 0"',
    f"{PMD}; client_max_window_bits=foo",
    f"{PMD}; client_max_window_bits=16",
    f"{PMD}; server_no_context_takeover=1",
    f'{PMD}; server_no_context_takeover=""',
    f"{PMD}; client_no_context_takeover=true",
]


@pytest.mark.parametrize(("header", "expected"), NEGOTIATION)
def test_negotiation_with_default_settings(header: str | None, expected: str | None) -> None:
    """Each offer (or list of offers) gets exactly this response, or none, and nothing raises."""
    assert negotiated(Deflate(), header) == expected


@pytest.mark.parametrize("offer", DECLINED_OFFERS)
def test_invalid_offers_are_declined_and_the_next_offer_is_tried(offer: str) -> None:
    """An unknown or duplicated parameter or a bad value declines that offer only."""
    assert negotiated(Deflate(), offer) is None
    assert negotiated(Deflate(), f"{offer}, {PMD}; server_no_context_takeover") == (
        f"{PMD}; server_no_context_takeover"
    )


@pytest.mark.parametrize(
    ("settings", "header", "expected"),
    [
        (
            Deflate(server_no_context_takeover=True, client_no_context_takeover=True),
            PMD,
            f"{PMD}; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            Deflate(server_max_window_bits=10, client_max_window_bits=9),
            f"{PMD}; client_max_window_bits; server_max_window_bits=15",
            f"{PMD}; server_max_window_bits=10; client_max_window_bits=9",
        ),
        # Not asked: the client may use 15 bits and we do not state our window.
        (Deflate(server_max_window_bits=10, client_max_window_bits=9), PMD, PMD),
        (
            Deflate(server_max_window_bits=15, client_max_window_bits=15),
            f"{PMD}; client_max_window_bits",
            f"{PMD}; client_max_window_bits=15",
        ),
    ],
)
def test_negotiation_with_our_settings(settings: Deflate, header: str, expected: str) -> None:
    """Our settings limit the windows and add no-context-takeover when set."""
    assert negotiated(settings, header) == expected


def test_the_extension_is_configured_as_agreed() -> None:
    """The extension object carries what the response header states, 8 bits included."""
    offer = (
        f"{PMD}; server_max_window_bits=8; client_max_window_bits=10; client_no_context_takeover"
    )
    result = negotiate(Deflate(), offer, max_message_size=None)
    assert result is not None
    extension = result[1]
    assert isinstance(extension, PerMessageDeflate)
    assert extension.enabled()
    assert (extension.server_max_window_bits, extension.client_max_window_bits) == (8, 10)
    assert (extension.server_no_context_takeover, extension.client_no_context_takeover) == (
        False,
        True,
    )
    # Without client_max_window_bits in the offer the client may use 15 bits.
    result = negotiate(Deflate(client_max_window_bits=9), PMD, max_message_size=None)
    assert result is not None
    assert isinstance(result[1], PerMessageDeflate)
    assert result[1].client_max_window_bits == 15


def test_wsprotos_own_handshake_keeps_the_first_accepted_offer() -> None:
    """Through wsproto's server_extensions_handshake, a later offer does not overwrite the first."""
    extension = _ServerDeflate(Deflate(), max_message_size=None)
    header = server_extensions_handshake(
        [f"{PMD}; foo", f"{PMD}; server_max_window_bits=10", PMD], [extension]
    )
    assert header == f"{PMD}; server_max_window_bits=10".encode()
    assert extension.server_max_window_bits == 10


# -- settings validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("server_max_window_bits", 8, "9..15"),
        ("server_max_window_bits", 16, "9..15"),
        ("server_max_window_bits", "12", "9..15"),
        ("server_max_window_bits", 12.0, "9..15"),
        ("server_max_window_bits", True, "9..15"),
        ("client_max_window_bits", 8, "9..15"),
        ("client_max_window_bits", 16, "9..15"),
        ("mem_level", 0, "1..9"),
        ("mem_level", 10, "1..9"),
        ("level", -2, "-1..9"),
        ("level", 10, "-1..9"),
        ("server_no_context_takeover", 1, "True or False"),
        ("client_no_context_takeover", "yes", "True or False"),
    ],
)
def test_invalid_settings_name_the_field_the_value_and_the_range(
    field: str, value: object, allowed: str
) -> None:
    """Deflate(...) refuses a bad value with a ValueError that says what is allowed."""
    with pytest.raises(ValueError) as error:
        Deflate(**{field: value})  # type: ignore[arg-type]
    message = str(error.value)
    assert f"Deflate.{field}" in message
    assert repr(value) in message
    assert allowed in message


def test_valid_settings_at_the_edges() -> None:
    """The ends of every range are accepted."""
    Deflate(server_max_window_bits=9, client_max_window_bits=15, mem_level=1, level=-1)
    Deflate(server_max_window_bits=15, client_max_window_bits=9, mem_level=9, level=0)
    Deflate(level=9, server_no_context_takeover=True, client_no_context_takeover=True)


# -- round trips against wsproto's client ---------------------------------------------------------


def echo(pair: Pair, message: Data, *, fragments: int = 1, chunk: int | None = None) -> None:
    """The client sends ``message``, the server gets it and sends it back, the client gets it."""
    received = assemble(feed(pair.server, pair.client_sends(message, fragments=fragments), chunk))
    assert received == [message]
    assert assemble(feed(pair.client, pair.server_sends(message))) == [message]


@pytest.mark.parametrize("size", [0, 1, 125, 1000, 70_000, 4 * MIB])
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_round_trip_sizes(size: int, kind: str) -> None:
    """Messages from 0 B to 4 MiB, compressible text and random bytes, both ways."""
    message: Data = words(size) if kind == "text" else random.Random(size).randbytes(size)
    echo(Pair(), message)


@pytest.mark.parametrize("fragments", [2, 7, 100])
def test_fragmented_messages_with_a_ping_in_between(fragments: int) -> None:
    """A message in several frames, a ping after the first, fed one byte at a time."""
    pair = Pair()
    message = words(5000)
    data = pair.client_sends(message, fragments=fragments, ping=True)
    events = feed(pair.server, data, chunk=1)
    assert assemble(events) == [Ping(payload=b"between"), message]
    # The next message still decompresses with the context the first left.
    echo(pair, message, fragments=fragments, chunk=3)


@pytest.mark.parametrize("server_nct", [False, True])
@pytest.mark.parametrize("client_nct", [False, True])
@pytest.mark.parametrize("from_settings", [False, True])
def test_round_trips_with_and_without_context_takeover(
    server_nct: bool, client_nct: bool, from_settings: bool
) -> None:
    """Several messages both ways, whether no-context-takeover came from us or the client."""
    if from_settings:
        settings = Deflate(
            server_no_context_takeover=server_nct, client_no_context_takeover=client_nct
        )
        offer = f"{PMD}; client_max_window_bits"
    else:
        settings = Deflate()
        offer = PMD + "".join(
            f"; {name}"
            for name, wanted in [
                ("server_no_context_takeover", server_nct),
                ("client_no_context_takeover", client_nct),
            ]
            if wanted
        )
    pair = Pair(settings, offer)
    assert ("server_no_context_takeover" in pair.response) == server_nct
    assert ("client_no_context_takeover" in pair.response) == client_nct
    for seed in range(5):
        echo(pair, words(3000, seed % 2), fragments=1 + seed)


def test_server_no_context_takeover_compresses_each_message_alone() -> None:
    """§7.1.1.1: with it the same message compresses to the same bytes each time."""
    message = words(1500)
    with_takeover = Pair()
    first, second = (server_frames(with_takeover.server_sends(message))[0][3] for _ in range(2))
    assert len(second) < len(first) / 4  # the second refers back to the first
    without = Pair(Deflate(server_no_context_takeover=True))
    first, second = (server_frames(without.server_sends(message))[0][3] for _ in range(2))
    assert first == second
    assert zlib.decompressobj(-12).decompress(second + TAIL) == message.encode()


@pytest.mark.parametrize("offer", [f"{PMD}; client_no_context_takeover", PMD])
def test_client_no_context_takeover_drops_our_window(offer: str) -> None:
    """§7.1.1.2: agreed (asked by it or by us), a client referring to an earlier message fails."""
    pair = Pair(Deflate(client_no_context_takeover=True), offer)
    assert "client_no_context_takeover" in pair.response
    message = random.Random(1).randbytes(3000)
    # Our window is gone after each message...
    assert assemble(feed(pair.server, pair.client_sends(message))) == [message]
    assert pair.extension._decompressor is None  # type: ignore[attr-defined]
    # ...so a client that keeps its context anyway is caught (1007), not misread.
    pair.client_extension.client_no_context_takeover = False
    events = feed(pair.server, pair.client_sends(message) + pair.client_sends(message))
    assert [event.data for event in events if isinstance(event, BytesMessage)] == [message]
    assert close_codes(events) == [1007]


@pytest.mark.parametrize("bits", range(8, 16))
def test_server_compresses_within_the_agreed_window(bits: int) -> None:
    """server_max_window_bits=8..15: no back-reference reaches further than 2**bits.

    A block a little longer than the window, sent three times, would be a
    back-reference to the previous copy with any larger window. 8 bits, which
    zlib cannot compress with, is answered with Z_RLE (distance 1 only).
    """
    pair = Pair(Deflate(server_max_window_bits=15), f"{PMD}; server_max_window_bits={bits}")
    assert pair.response == f"{PMD}; server_max_window_bits={bits}"
    block = random.Random(bits).randbytes(2**bits + 100)
    runs = b"a" * 5000 + b"ab" * 3000
    wire = b"".join(pair.server_sends(message) for message in (block, block, runs, block))
    assert assemble(feed(pair.client, wire)) == [block, block, runs, block]
    assert strict_inflate(wire_stream(server_frames(wire)), bits) == block * 2 + runs + block
    # Even the 8-bit answer still compresses runs.
    assert len(server_frames(pair.server_sends(runs))[0][3]) < len(runs) / 5


@pytest.mark.parametrize("bits", range(9, 16))
def test_server_decompresses_with_the_agreed_window(bits: int) -> None:
    """client_max_window_bits=9..15: what the client compresses with it round-trips."""
    pair = Pair(Deflate(client_max_window_bits=15), f"{PMD}; client_max_window_bits={bits}")
    assert pair.response == f"{PMD}; client_max_window_bits={bits}"
    assert pair.client_extension.client_max_window_bits == bits
    block = random.Random(bits).randbytes(2**bits - 300)
    data = b"".join(pair.client_sends(block) for _ in range(3))
    assert assemble(feed(pair.server, data)) == [block] * 3


@pytest.mark.parametrize("bits", range(9, 15))
def test_a_client_exceeding_its_agreed_window_fails_with_1007(bits: int) -> None:
    """We decompress with exactly the agreed window: a reference beyond it is invalid data."""
    pair = Pair(Deflate(client_max_window_bits=15), f"{PMD}; client_max_window_bits={bits}")
    pair.client_extension._client_max_window_bits = 15  # the client breaks the agreement
    block = random.Random(bits).randbytes(2**bits + 100)
    data = pair.client_sends(block) + pair.client_sends(block)
    assert close_codes(feed(pair.server, data)) == [1007]


def test_a_client_without_client_max_window_bits_may_use_15_bits() -> None:
    """§7.1.2.2: not offered, not limited: we decompress with 15 bits whatever our setting."""
    pair = Pair(Deflate(client_max_window_bits=9), PMD)
    assert pair.response == PMD
    block = random.Random(0).randbytes(20_000)
    data = pair.client_sends(block) + pair.client_sends(block)
    assert len(data) < 1.5 * len(block)  # the second copy was a back-reference
    assert assemble(feed(pair.server, data)) == [block, block]


def test_client_max_window_bits_8_is_decompressed_with_8_bits() -> None:
    """A client offering client_max_window_bits=8 gets 8 and may compress within 2**8."""
    pair = Pair(Deflate(), f"{PMD}; client_max_window_bits=8")
    assert pair.response == f"{PMD}; client_max_window_bits=8"
    assert pair.extension.client_max_window_bits == 8  # type: ignore[attr-defined]
    message = b"abcdefgh" * 100 + bytes(range(200)) * 2
    compressor = zlib.compressobj(6, zlib.DEFLATED, -9)  # zlib's stand-in for 8 bits
    frames = b""
    for _ in range(3):
        payload = (compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        frames += mask_frame(BINARY, payload, rsv=RSV1)
    assert assemble(feed(pair.server, frames)) == [message] * 3


# -- our compressor --------------------------------------------------------------------------------


def test_our_compressor_compresses() -> None:
    """A repetitive 1 MiB message becomes a few KiB on the wire, and round-trips."""
    pair = Pair()
    message = ('{"id": 1, "name": "wsgiws", "tags": ["a", "b"]}\n' * 30_000)[:MIB]
    wire = pair.server_sends(message)
    assert len(wire) < 16 * 1024
    assert assemble(feed(pair.client, wire)) == [message]


@pytest.mark.parametrize(
    "settings",
    [
        Deflate(),
        Deflate(server_max_window_bits=9, mem_level=1, level=1),
        Deflate(server_max_window_bits=15, mem_level=9, level=9),
        Deflate(server_max_window_bits=10, mem_level=3, level=0),
    ],
)
def test_our_compressor_uses_our_level_mem_level_and_window(settings: Deflate) -> None:
    """The wire bytes are exactly zlib's with these settings, and differ for any other."""
    # Text, with random blocks repeated 20 KB apart: the window size shows too.
    rng = random.Random(7)
    text = words(300_000).encode()
    parts = []
    for start in range(0, len(text), 20_000):
        block = rng.randbytes(300)
        parts += [block, text[start : start + 20_000], block]
    message = b"".join(parts)

    def reference(level: int, bits: int, mem_level: int) -> bytes:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -bits, mem_level)
        return (compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]

    level, bits, mem = settings.level, settings.server_max_window_bits, settings.mem_level
    ((_, _, rsv1, payload),) = server_frames(
        Pair(settings, PMD).server.send(BytesMessage(data=message))
    )
    assert rsv1
    assert payload == reference(level, bits, mem)
    # The message is such that each setting shows in the output (the window
    # does not at level 0: stored blocks have no back-references).
    neighbours = [
        (level - 3 if level >= 4 else level + 3, bits, mem),
        (level, bits, mem + (1 if mem < 9 else -1)),
    ]
    if level:
        neighbours.append((level, bits + (1 if bits < 15 else -1), mem))
    assert all(reference(*other) != payload for other in neighbours)


@pytest.mark.parametrize(
    ("settings", "low", "high"),
    [
        (Deflate(server_max_window_bits=9, mem_level=1), 0, 16 * 1024),
        (Deflate(), 24 * 1024, 64 * 1024),
        (Deflate(server_max_window_bits=15, mem_level=9), 384 * 1024, 512 * 1024),
    ],
)
def test_compressor_memory_follows_window_and_mem_level(
    settings: Deflate, low: int, high: int
) -> None:
    """zlib needs 2**(bits+2) + 2**(mem_level+9) bytes (+ ~6 KiB): our settings set it."""
    server = Pair(settings, PMD).server
    tracemalloc.start()
    try:
        server.send(BytesMessage(data=b"x" * 100))  # the compressor is made and kept
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert low <= used < high


# -- limits: decompression bombs (RFC 6455 §7.4.1, 1009) ---------------------------------------


def test_a_bomb_in_one_frame_fails_with_1009_in_little_memory() -> None:
    """~1 MiB inflating to 1 GiB, 1 MiB limit, read 64 KiB at a time: 1009, < 4 MiB allocated."""
    frame = mask_frame(BINARY, bomb(1 << 30), rsv=RSV1)
    assert len(frame) < 1.1 * MIB
    pair = Pair(max_message_size=MIB)
    tracemalloc.start()
    try:
        events = feed(pair.server, frame, chunk=64 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert close_codes(events) == [CloseReason.MESSAGE_TOO_BIG]
    assert peak < 4 * MIB


def test_a_bomb_received_all_at_once_fails_with_1009_in_little_memory() -> None:
    """The whole 1 GiB bomb in one read, 4 MiB limit: 1009 with less than 16 MiB allocated."""
    frame = mask_frame(BINARY, bomb(1 << 30), rsv=RSV1)
    pair = Pair(max_message_size=4 * MIB)
    tracemalloc.start()
    try:
        events = feed(pair.server, frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert close_codes(events) == [CloseReason.MESSAGE_TOO_BIG]
    assert peak < 16 * MIB


def test_a_bomb_over_many_continuation_frames_with_pings_fails_with_1009() -> None:
    """The size counts per message: frames and the pings between them do not reset it.

    Each 100-byte frame inflates to about 100 KiB and a ping comes every 5
    frames, so counting per frame or between control frames would never reach
    the 1 MiB limit.
    """
    stream = bomb(1 << 30)[: 200 * 100]
    frames = b""
    for index in range(200):
        piece = stream[index * 100 : (index + 1) * 100]
        opcode = BINARY if index == 0 else CONTINUATION
        frames += mask_frame(opcode, piece, fin=index == 199, rsv=RSV1 if index == 0 else 0)
        if index % 5 == 4:
            frames += mask_frame(PING, b"p")
    pair = Pair(max_message_size=MIB)
    tracemalloc.start()
    try:
        events = feed(pair.server, frames, chunk=4096)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert close_codes(events) == [CloseReason.MESSAGE_TOO_BIG]
    assert peak < 4 * MIB
    received = sum(len(event.data) for event in events if isinstance(event, BytesMessage))
    assert received <= MIB


def test_the_limit_is_per_message_and_exact() -> None:
    """Messages of exactly the limit pass, one after another; one byte more fails."""
    limit = 100_000
    pair = Pair(max_message_size=limit)
    fits = bytes(limit)
    data = b"".join(pair.client_sends(fits, fragments=fragments) for fragments in (1, 3, 1))
    assert assemble(feed(pair.server, data)) == [fits] * 3
    assert close_codes(feed(pair.server, pair.client_sends(bytes(limit + 1)))) == [1009]


def test_no_limit_means_no_limit() -> None:
    """max_message_size=None inflates whatever comes (here 16 MiB from 16 KiB)."""
    pair = Pair(max_message_size=None)
    events = feed(pair.server, mask_frame(BINARY, bomb(16 * MIB), rsv=RSV1))
    assert assemble(events) == [bytes(16 * MIB)]


# -- invalid input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        # Not DEFLATE data (block type 3 is reserved).
        ([(TEXT, b"\xff\xff\xff\xff", True, RSV1)], 1007),
        ([(BINARY, b"", False, RSV1), (CONTINUATION, b"\xff\xff", True, 0)], 1007),
        # RFC 7692 §6.1: RSV1 only on a data message's first frame.
        ([(PING, b"", True, RSV1)], 1002),
        ([(PING, b"x", True, RSV1)], 1002),
        ([(TEXT, b"", False, RSV1), (CONTINUATION, b"", True, RSV1)], 1002),
        # RFC 6455 §5.4: fragments out of order.
        ([(CONTINUATION, b"", True, 0)], 1002),
        ([(TEXT, b"", False, RSV1), (TEXT, b"", True, RSV1)], 1002),
        # Valid DEFLATE, invalid UTF-8 in a text message.
        ([(TEXT, one_shot(b"\xff\xfe"), True, RSV1)], 1007),
    ],
)
def test_invalid_frames_fail_with_the_right_code(
    frames: list[tuple[int, bytes, bool, int]], code: int
) -> None:
    """Corrupt data gives 1007, a misplaced RSV1 or fragment 1002, and nothing raises."""
    data = b"".join(mask_frame(op, payload, fin=fin, rsv=rsv) for op, payload, fin, rsv in frames)
    assert close_codes(feed(Pair().server, data)) == [code]


def test_uncompressed_messages_pass_through() -> None:
    """RSV1 clear: a message is taken as it is (RFC 7692 §6: compression is per message)."""
    pair = Pair()
    data = mask_frame(TEXT, b"plain", fin=False) + mask_frame(CONTINUATION, b" text")
    data += pair.client_sends("compressed")
    assert assemble(feed(pair.server, data)) == ["plain text", "compressed"]


# -- messages that end their DEFLATE stream (RFC 7692 §7.2.3.4, BFINAL) -----------------------


def test_messages_compressed_one_shot_all_arrive() -> None:
    """Each message a whole DEFLATE stream: zlib would swallow every message after the first."""
    pair = Pair()
    messages = [b"one" * 100, b"two" * 100, b"one" * 100, b""]
    data = b"".join(mask_frame(BINARY, one_shot(message), rsv=RSV1) for message in messages)
    data += pair.client_sends(b"and a normal one")
    assert assemble(feed(pair.server, data)) == [*messages, b"and a normal one"]


def test_the_rfc_bfinal_example() -> None:
    """RFC 7692 §7.2.3.4: "Hello" in a BFINAL block, then a 0x00, twice; fragmented too."""
    payload = bytes.fromhex("f348cdc9c90700") + b"\x00"
    assert payload[:-1] == one_shot(b"Hello")
    pair = Pair()
    data = mask_frame(TEXT, payload, rsv=RSV1)
    data += mask_frame(TEXT, payload[:3], fin=False, rsv=RSV1)
    data += mask_frame(CONTINUATION, payload[3:])
    assert assemble(feed(pair.server, data, chunk=1)) == ["Hello", "Hello"]


def test_data_after_bfinal_referring_back_fails_with_1007() -> None:
    """After the stream ends its window is gone: a reference back is invalid data, not garbage."""
    first = b"0123456789abcdef" * 20
    payload = one_shot(first) + one_shot(first, zdict=first)
    assert close_codes(feed(Pair().server, mask_frame(BINARY, payload, rsv=RSV1))) == [1007]


def test_a_compressed_message_over_the_limit_closes_saying_so() -> None:
    """The Close names the limit, as uncompressed ones do, not wsproto's "error in extension"."""
    from wsgiws._protocol import Protocol

    _, extension = negotiate(Deflate(), "permessage-deflate", max_message_size=1000)
    protocol = Protocol(max_message_size=1000, extensions=[extension])
    protocol.receive_data(mask_frame(BINARY, bomb(1 << 20), rsv=RSV1))
    assert protocol.next_message() is None
    assert protocol.sent_close == (1009, "message larger than 1000 bytes")
