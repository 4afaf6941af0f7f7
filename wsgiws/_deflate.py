"""permessage-deflate (RFC 7692) for the sans-I/O core, server side.

Two parts:

* :func:`negotiate` reads the client's ``Sec-WebSocket-Extensions`` header
  (RFC 6455 §9.1 grammar: comma-separated offers, ``;``-separated parameters,
  values as tokens or quoted-strings), picks the first acceptable
  ``permessage-deflate`` offer (RFC 7692 §5, §7.1) and returns our response
  header value with a configured extension object for
  ``wsproto.connection.Connection(ConnectionType.SERVER, extensions=[ext])``.
  Offers it cannot accept are declined, never raised on.
* :class:`_ServerDeflate`, that extension: wsproto's ``PerMessageDeflate``
  with what it lacks fixed (see the class docstring): our own window limits and
  zlib settings, a per-message bound on decompressed bytes (decompression
  bombs end in 1009, RFC 6455 §7.4.1), per-message state that survives control
  frames interleaved between fragments, and messages that end their DEFLATE
  stream (``BFINAL``, RFC 7692 §7.2.3.4).

Compression (RFC 7692 §7.2.1) and decompression (§7.2.2) use exactly the agreed
parameters. The extension is for the server role only.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Union

from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

__all__ = ["Deflate", "negotiate"]

_NAME = "permessage-deflate"


@dataclass(frozen=True)
class Deflate:
    """permessage-deflate settings (RFC 7692): the ``compression`` option.

    The defaults keep a connection's zlib state near 50 KB; see
    :doc:`/topics/compression` for why they are the defaults.

    ``server_max_window_bits``
        Base-2 log of the LZ77 window we compress with (9..15): our compressor's
        memory per connection grows with it. A client may ask for less
        (RFC 7692 §7.1.2.1); we then use what it asked for.
    ``client_max_window_bits``
        The window (9..15) we ask the client to compress with, which is the
        window we decompress with. Only a client whose offer carries
        ``client_max_window_bits`` can be asked (§7.1.2.2); with any other
        client we decompress with 15 bits, as the RFC obliges.
    ``server_no_context_takeover``
        Compress every message on its own (§7.1.1.1): less memory kept between
        messages, worse compression.
    ``client_no_context_takeover``
        Ask the client to compress every message on its own (§7.1.1.2), so that
        we keep no decompression window between messages.
    ``mem_level``
        zlib ``memLevel`` of our compressor (1..9): memory against speed.
    ``level``
        zlib compression level of our compressor (0..9, or -1 for zlib's
        default).
    """

    server_max_window_bits: int = 12
    client_max_window_bits: int = 12
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    mem_level: int = 5
    level: int = 6

    def __post_init__(self) -> None:
        for name, low, high in (
            ("server_max_window_bits", 9, 15),
            ("client_max_window_bits", 9, 15),
            ("mem_level", 1, 9),
            ("level", -1, 9),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"Deflate.{name} must be an int in {low}..{high}, got {value!r}")
        for name in ("server_no_context_takeover", "client_no_context_takeover"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"Deflate.{name} must be True or False, got {value!r}")


def negotiate(
    settings: Deflate, header: str | None, *, max_message_size: int | None
) -> tuple[str, Extension] | None:
    """Choose from the client's Sec-WebSocket-Extensions header value.

    Several header lines arrive joined by ", ". Returns (the value for our
    Sec-WebSocket-Extensions response header, an extension object to pass as
    ``wsproto.connection.Connection(ConnectionType.SERVER, extensions=[ext])``),
    or None when no permessage-deflate offer is acceptable (then no extension
    is used).

    Offers are tried in the client's order and the first acceptable
    permessage-deflate one wins (RFC 7692 §5); other extensions are ignored.
    ``max_message_size`` bounds the decompressed size of one message (None:
    no bound); a message beyond it fails the connection with 1009.
    """
    if not header:
        return None
    for offer in _split_outside_quotes(header, ","):
        if not offer.strip(" \t"):
            continue  # empty list elements are allowed (RFC 7230 §7)
        extension = _ServerDeflate(settings, max_message_size=max_message_size)
        params = extension.accept(offer)
        if isinstance(params, str):
            return (f"{_NAME}; {params}" if params else _NAME), extension
    return None


# -- parsing (RFC 6455 §9.1, with RFC 7230 tokens and quoted-strings) ---------------------------

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x20-\x7e\x80-\xff])*"'
_TOKEN_RE = re.compile(_TOKEN)
_PARAM_RE = re.compile(rf"[ \t]*({_TOKEN})[ \t]*(?:=[ \t]*(?:({_TOKEN})|({_QUOTED}))[ \t]*)?")
# RFC 7692 §7.1.2.1 / §7.1.2.2: "a decimal integer value without leading zeroes between 8 to 15".
_WINDOW_BITS_RE = re.compile(r"8|9|1[0-5]")

_Params = list[tuple[str, Union[str, None]]]


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` where it is not inside a quoted-string.

    An unterminated quoted-string runs to the end: that piece is malformed and
    is declined by whoever parses it.
    """
    pieces: list[str] = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == separator:
            pieces.append(text[start:index])
            start = index + 1
    pieces.append(text[start:])
    return pieces


def _parse_offer(offer: str) -> tuple[str, _Params] | None:
    """One offer, ``name *( ";" param [ "=" value ] )``, or None if it is malformed.

    A quoted value is unescaped and must then be a token (RFC 6455 §9.1).
    """
    name, *raw_params = _split_outside_quotes(offer, ";")
    name = name.strip(" \t")
    if not _TOKEN_RE.fullmatch(name):
        return None
    params: _Params = []
    for raw in raw_params:
        match = _PARAM_RE.fullmatch(raw)
        if match is None:
            return None
        key, token, quoted = match.groups()
        value = token
        if quoted is not None:
            value = re.sub(r"\\(.)", r"\1", quoted[1:-1], flags=re.DOTALL)
            if not _TOKEN_RE.fullmatch(value):
                return None
        params.append((key, value))
    return name, params


@dataclass(frozen=True)
class _Agreement:
    """The parameters agreed for one connection, and how to state them."""

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int
    client_max_window_bits: int
    state_server_max_window_bits: bool
    state_client_max_window_bits: bool

    def response_params(self) -> str:
        params = []
        if self.server_no_context_takeover:
            params.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            params.append("client_no_context_takeover")
        if self.state_server_max_window_bits:
            params.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.state_client_max_window_bits:
            params.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(params)


def _agree(settings: Deflate, params: _Params) -> _Agreement | None:
    """Our answer to one permessage-deflate offer's parameters, or None to decline it.

    RFC 7692 §7.1: an offer with an unknown parameter, a parameter given twice
    or an invalid value is declined.
    """
    seen: set[str] = set()
    server_no_context_takeover = client_no_context_takeover = False
    server_bits: int | None = None
    client_bits_offered = False
    client_bits: int | None = None
    for key, value in params:
        if key in seen:
            return None
        seen.add(key)
        if key in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:  # §7.1.1: these parameters have no value
                return None
            if key == "server_no_context_takeover":
                server_no_context_takeover = True
            else:
                client_no_context_takeover = True
        elif key == "server_max_window_bits":
            if value is None or not _WINDOW_BITS_RE.fullmatch(value):
                return None  # §7.1.2.1: a value is required
            server_bits = int(value)
        elif key == "client_max_window_bits":
            if value is not None and not _WINDOW_BITS_RE.fullmatch(value):
                return None  # §7.1.2.2: the value is optional
            client_bits_offered = True
            client_bits = None if value is None else int(value)
        else:
            return None
    return _Agreement(
        # §7.1.1.1: a client's request binds us; we may also decide it ourselves.
        server_no_context_takeover=server_no_context_takeover
        or settings.server_no_context_takeover,
        # §7.1.1.2: we may ask it, and may acknowledge the client's hint, which
        # lets us drop the decompressor between messages.
        client_no_context_takeover=client_no_context_takeover
        or settings.client_no_context_takeover,
        # §7.1.2.1: the same or a smaller value than requested. Stated only when
        # requested (stating it unasked is legal, but gains nothing).
        server_max_window_bits=min(
            settings.server_max_window_bits if server_bits is None else server_bits,
            settings.server_max_window_bits,
        ),
        state_server_max_window_bits=server_bits is not None,
        # §7.1.2.2: only a client that offered the parameter may be limited;
        # any other client may use 15 bits, and we must decompress with them.
        client_max_window_bits=(
            min(15 if client_bits is None else client_bits, settings.client_max_window_bits)
            if client_bits_offered
            else 15
        ),
        state_client_max_window_bits=client_bits_offered,
    )


# -- the extension -------------------------------------------------------------------------------

# RFC 7692 §7.2.2: the four octets appended to a message before decompressing it.
_TAIL = b"\x00\x00\xff\xff"

_Proto = Union[FrameDecoder, FrameProtocol]


class _ServerDeflate(PerMessageDeflate):
    """wsproto's PerMessageDeflate for the server role, with its gaps filled.

    Kept from wsproto: the extension name, ``enabled``, the rsv1 checks and
    the outbound framing (compress, sync flush, strip the tail, §7.2.1).
    Written here, each because wsproto 1.2/1.3 gets it wrong:

    * ``accept`` parses the offer strictly (unknown/duplicate parameters and
      bad values decline it) and keeps our window limits; wsproto's copies the
      client's values over ours and ignores unknown parameters.
    * Inbound decompression is bounded per message by ``max_message_size``
      (``decompress(data, max_length)``); wsproto's is unbounded.
    * Per-message state is reset only when a *data* frame with FIN ends, as
      FrameDecoder calls ``frame_inbound_complete(fin=True)`` for every
      control frame too: wsproto's forgets, on a ping between two fragments,
      that the message is compressed.
    * ``frame_inbound_header`` may run twice for one frame (FrameDecoder runs
      the hooks before the masking key has arrived, and again once it has).
    * A message whose DEFLATE stream ends (BFINAL) does not swallow the
      messages after it (zlib ignores all input past a stream's end).
    * The compressor uses our ``level`` and ``mem_level``, and copes with
      ``server_max_window_bits=8``.
    """

    def __init__(self, settings: Deflate, *, max_message_size: int | None) -> None:
        super().__init__()
        self._settings = settings
        self._max_message_size = max_message_size
        # Decompressed bytes of the message being received.
        self._message_size = 0
        # Whether the message being received ended a DEFLATE stream (BFINAL).
        self._stream_ended = False
        # Between a frame's (first) frame_inbound_header and its frame_inbound_complete.
        self._in_frame = False

    # -- negotiation -----------------------------------------------------------------------------

    def accept(self, offer: str) -> bool | str | None:
        """The response parameters for one offer (``permessage-deflate; ...``), or None.

        Also what wsproto's own server handshake would call; a second offer
        after one was accepted is declined (one agreement per connection).
        """
        if self._enabled:
            return None
        parsed = _parse_offer(offer)
        if parsed is None or parsed[0] != _NAME:
            return None
        agreement = _agree(self._settings, parsed[1])
        if agreement is None:
            return None
        self.server_no_context_takeover = agreement.server_no_context_takeover
        self.client_no_context_takeover = agreement.client_no_context_takeover
        # Set directly: wsproto's property setters refuse 8, a valid value
        # (RFC 7692 §7.1.2.1) that _new_compressor() handles.
        self._server_max_window_bits = agreement.server_max_window_bits
        self._client_max_window_bits = agreement.client_max_window_bits
        self._enabled = True
        return agreement.response_params()

    # -- outbound (RFC 7692 §7.2.1) --------------------------------------------------------------

    def _new_compressor(self) -> zlib._Compress:
        bits = self.server_max_window_bits
        if bits == 8:
            # zlib cannot compress raw DEFLATE with an 8-bit window:
            # deflateInit2() refuses windowBits=-8 (zlib >= 1.2.9; older zlib
            # silently used 9), which is why websockets declines such offers and
            # autobahn-python only permits 9..15. Declining would leave a client
            # that asks for 8 (Autobahn cases 13.3 and 13.5) without
            # compression, so we accept it and compress with the Z_RLE strategy:
            # zlib documents it as limiting match distances to one, so every
            # back-reference stays inside any window, 2^8 bytes included. (zlib
            # at 9 bits happens to emit distances <= 512 - 262 = 250, but that is
            # an implementation detail, not a documented guarantee.)
            return zlib.compressobj(
                self._settings.level, zlib.DEFLATED, -9, self._settings.mem_level, zlib.Z_RLE
            )
        return zlib.compressobj(
            self._settings.level, zlib.DEFLATED, -bits, self._settings.mem_level
        )

    def frame_outbound(
        self, proto: _Proto, opcode: Opcode, rsv: RsvBits, data: bytes, fin: bool
    ) -> tuple[RsvBits, bytes]:
        # Create the compressor ourselves (wsproto's ignores level and memLevel);
        # wsproto's frame_outbound then compresses, flushes and drops it again
        # after each message under server_no_context_takeover (§7.1.1.1).
        if self._compressor is None and self._compressible_opcode(opcode):
            self._compressor = self._new_compressor()
        return super().frame_outbound(proto, opcode, rsv, data, fin)

    # -- inbound (RFC 7692 §6.1, §7.2.2) ---------------------------------------------------------

    def frame_inbound_header(
        self, proto: _Proto, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        if self._in_frame:
            # The same header again: FrameDecoder.parse_header() runs the hooks,
            # then rolls back if the masking key is not buffered yet.
            return RsvBits(True, False, False)
        if opcode.iscontrol():
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR  # §6.1: never on control frames
            # A control frame may come between two fragments: the message's
            # state stays as it is.
            self._inbound_is_compressible = False
        elif opcode is Opcode.CONTINUATION:
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR  # §6.1: only on a message's first frame
            if self._inbound_compressed is None:
                return CloseReason.PROTOCOL_ERROR  # RFC 6455 §5.4: nothing to continue
            self._inbound_is_compressible = True
        else:
            if self._inbound_compressed is not None:
                return CloseReason.PROTOCOL_ERROR  # RFC 6455 §5.4: a message is unfinished
            self._inbound_is_compressible = True
            self._inbound_compressed = rsv.rsv1
            self._message_size = 0
            self._stream_ended = False
            if rsv.rsv1 and self._decompressor is None:
                self._decompressor = zlib.decompressobj(-self.client_max_window_bits)
        self._in_frame = True
        return RsvBits(True, False, False)

    def frame_inbound_payload_data(self, proto: _Proto, data: bytes) -> bytes | CloseReason:
        if not self._inbound_is_compressible or not self._inbound_compressed:
            return data
        return self._inflate(data)

    def frame_inbound_complete(self, proto: _Proto, fin: bool) -> bytes | CloseReason | None:
        self._in_frame = False
        if not self._inbound_is_compressible or not fin:
            return None  # a control frame, or a message that goes on
        compressed = self._inbound_compressed
        self._inbound_compressed = None  # the message ends here
        if not compressed:
            return None
        # §7.2.2: append the tail, then decompress. wsproto also calls flush(),
        # which could only return output held back in unconsumed_tail (never
        # left behind by _inflate) and which ignores any max_length.
        data = self._inflate(_TAIL)
        if self.client_no_context_takeover or self._stream_ended:
            # §7.1.1.2: the next message starts with an empty window; after a
            # BFINAL the stream is over anyway (see _inflate).
            self._decompressor = None
        return data

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        """Decompress ``data`` of the current message, within the message's size budget."""
        decompressor = self._decompressor
        assert decompressor is not None
        limit = self._max_message_size
        parts = []
        try:
            while True:
                if limit is None:
                    output = decompressor.decompress(data)
                else:
                    # One byte more than the budget tells "exactly full" from
                    # "too big" without ever holding more than the budget + 1.
                    budget = limit - self._message_size
                    output = decompressor.decompress(data, budget + 1)
                    if len(output) > budget:
                        return CloseReason.MESSAGE_TOO_BIG
                self._message_size += len(output)
                parts.append(output)
                if not decompressor.eof:
                    break
                # §7.2.3.4: the sender ended the DEFLATE stream (BFINAL). zlib
                # ignores everything after it, so the rest of the message (often
                # just an empty stored block, and our tail) goes to a fresh
                # decompressor. Its window is empty: data referring back past
                # the stream's end fails below as 1007, never as wrong data.
                self._stream_ended = True
                data = decompressor.unused_data
                decompressor = zlib.decompressobj(-self.client_max_window_bits)
                self._decompressor = decompressor
                if not data:
                    break
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        return parts[0] if len(parts) == 1 else b"".join(parts)
