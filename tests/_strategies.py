"""Hypothesis strategies and reference oracles for the fuzz tests.

Two independent models, written from RFC 6455 and not from the library:

* :func:`handshake_verdict` judges a WSGI environ as the opening handshake of
  §4.2.1 (what a server must check) and §4.4 (426 for a version it does not
  speak). :func:`handshake_environs` generates valid handshakes and mutated ones.
* :func:`frame_oracle` reads a client's byte stream as §5 (framing), §5.5
  (control frames), §7.4 (close codes) and §8.1 (UTF-8) say a server must, and
  predicts what the sans-I/O protocol ends with: the messages delivered, the
  state, the close code, and the frames it must answer with. The streams come
  from :func:`valid_streams` (with a model of what was meant),
  :func:`defective_streams` (one injected defect and the code it must cause)
  and :func:`mutated_streams` (random byte damage, judged by the oracle alone).

Where the RFC leaves a choice (a defect that shows in a header whose length
bytes have not all arrived yet: fail now, or wait for them), the oracle
returns every acceptable outcome.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Optional, Union

from hypothesis import strategies as st

from tests.core.test_middleware import HANDSHAKE

Data = Union[str, bytes]

# -- the opening handshake ------------------------------------------------------------------

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: The checks of §4.2.1 in the RFC's order, with the body check the library adds
#: after Host; the words a rejection's detail must contain for the first defect.
DEFECT_WORDS = {
    "method": "GET",
    "http-version": "HTTP/1.1",
    "host": "Host",
    "body": "body",
    "upgrade": "Upgrade",
    "connection": "Connection",
    "key": "Sec-WebSocket-Key",
    "version": "Sec-WebSocket-Version",
}

_OWS = " \t"
_KEY = re.compile(r"[A-Za-z0-9+/]{22}==")


def _token_list(value: str | None) -> list[str]:
    """An RFC 9110 ``#token`` list, lower-cased; empty elements dropped."""
    if value is None:
        return []
    return [t.strip(_OWS).lower() for t in value.split(",") if t.strip(_OWS)]


def _names_websocket(upgrade: str | None) -> bool:
    """Whether an Upgrade list names the websocket protocol (``protocol-name ["/" version]``)."""
    return any(t.partition("/")[0] == "websocket" for t in _token_list(upgrade))


def is_handshake_oracle(environ: dict[str, Any]) -> bool:
    """A request that tries to open a WebSocket: Upgrade names it, or a Sec-WebSocket-Key
    or Sec-WebSocket-Version header is there (headers only a WebSocket client sends)."""
    return (
        _names_websocket(environ.get("HTTP_UPGRADE"))
        or "HTTP_SEC_WEBSOCKET_KEY" in environ
        or "HTTP_SEC_WEBSOCKET_VERSION" in environ
    )


def handshake_defects(environ: dict[str, Any], *, check_http_version: bool = True) -> list[str]:
    """Every defect of a handshake (keys of :data:`DEFECT_WORDS`), in the order checked.

    Host is only required to be there and not empty: its syntax (and a
    duplicated Host) is the HTTP server's business, not the WebSocket layer's.
    Header values are trimmed of optional whitespace (SP, HTAB) only.
    """
    defects = []
    if environ.get("REQUEST_METHOD") != "GET":  # methods are case-sensitive (RFC 9110 §9.1)
        defects.append("method")
    if check_http_version and str(environ.get("SERVER_PROTOCOL", "")).upper() != "HTTP/1.1":
        defects.append("http-version")
    if not environ.get("HTTP_HOST"):
        defects.append("host")
    length = environ.get("CONTENT_LENGTH", "").strip(_OWS)
    has_length_body = length != "" and not (length.isdigit() and int(length) == 0)
    if has_length_body or environ.get("HTTP_TRANSFER_ENCODING"):
        defects.append("body")
    if not _names_websocket(environ.get("HTTP_UPGRADE")):
        defects.append("upgrade")
    if "upgrade" not in _token_list(environ.get("HTTP_CONNECTION")):
        defects.append("connection")
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY")
    if key is None or not _KEY.fullmatch(key.strip(_OWS)):
        defects.append("key")
    version = environ.get("HTTP_SEC_WEBSOCKET_VERSION")
    if version is None or version.strip(_OWS) != "13":
        defects.append("version")
    return defects


@dataclass(frozen=True)
class HandshakeVerdict:
    """What a server must answer: 101, 400 or 426, and the first defect if any."""

    status: int
    first_defect: str | None = None

    @property
    def word(self) -> str | None:
        return None if self.first_defect is None else DEFECT_WORDS[self.first_defect]


def handshake_verdict(
    environ: dict[str, Any], *, check_http_version: bool = True
) -> HandshakeVerdict:
    """§4.2.1/§4.4: 101 when nothing is wrong, 426 when the version is the only defect,
    400 otherwise (the version comes last in §4.2.1, so any other defect is named first)."""
    defects = handshake_defects(environ, check_http_version=check_http_version)
    if not defects:
        return HandshakeVerdict(101)
    if defects == ["version"]:
        return HandshakeVerdict(426, "version")
    return HandshakeVerdict(400, defects[0])


def accept_value(key: str) -> str:
    """§4.2.2 item 5.4: base64(SHA-1(key trimmed + GUID))."""
    digest = hashlib.sha1((key.strip(_OWS) + GUID).encode("latin-1")).digest()
    return base64.b64encode(digest).decode("ascii")


def chosen_subprotocol(offered: str | None, ours: Sequence[str]) -> str | None:
    """The server's first preference the client offers, spelled exactly as the client did
    (a browser rejects a 101 whose Sec-WebSocket-Protocol is not one it sent)."""
    tokens = [t.strip(_OWS) for t in (offered or "").split(",")]
    return next((p for p in ours if p in tokens), None)


latin1_text = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=30)
_token = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}", fullmatch=True)
SUBPROTOCOLS = ("chat", "superchat", "v2.json.example", "mqtt")


@st.composite
def valid_keys(draw: st.DrawFn) -> str:
    return base64.b64encode(draw(st.binary(min_size=16, max_size=16))).decode("ascii")


def _with_ows(value: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    ows = st.sampled_from(["", " ", "\t", "  "])
    return st.tuples(ows, value, ows).map("".join)


def _bad_keys() -> st.SearchStrategy[str]:
    wrong_length = (
        st.integers(0, 40)
        .filter(lambda n: n != 16)
        .flatmap(lambda n: st.binary(min_size=n, max_size=n))
    )
    return st.one_of(
        wrong_length.map(lambda b: base64.b64encode(b).decode()),
        valid_keys().map(lambda k: k.rstrip("=")),  # padding missing
        valid_keys().map(lambda k: k[:10] + " " + k[10:]),  # whitespace inside
        valid_keys().map(lambda k: k.replace("+", "-").replace("/", "_") + "-_"),
        st.tuples(valid_keys(), valid_keys()).map(", ".join),  # duplicated header
        st.sampled_from(["", "?", "not base64!", "====", "dGhlIHNhbXBsZSBub25jZQ"]),
        latin1_text,
    )


#: Per environ key, values a mutation puts there; None removes the key.
_MUTATIONS: dict[str, st.SearchStrategy[Optional[str]]] = {
    "REQUEST_METHOD": st.one_of(
        st.sampled_from(["POST", "HEAD", "PUT", "OPTIONS", "get", "Get", "CONNECT"]), latin1_text
    ),
    "SERVER_PROTOCOL": st.one_of(
        st.sampled_from(
            ["HTTP/1.0", "HTTP/0.9", "HTTP/2", "HTTP/2.0", "http/1.1", "HTTP/1.1 ", "HTTP/1.10", ""]
        ),
        latin1_text,
    ),
    "HTTP_HOST": st.one_of(
        st.none(), st.sampled_from(["", "a.example, b.example", "[::1]:80"]), latin1_text
    ),
    "HTTP_UPGRADE": st.one_of(
        st.none(),
        st.sampled_from(
            ["WebSocket", "h2c, websocket", "h2c", "websocket/13", "websockets", "", "WEBSOCKET"]
        ),
        _with_ows(st.just("websocket")),
        latin1_text,
    ),
    "HTTP_CONNECTION": st.one_of(
        st.none(),
        st.sampled_from(["keep-alive", "keep-alive, Upgrade", "upgrade", "Upgraded", "", "close"]),
        latin1_text,
    ),
    "HTTP_SEC_WEBSOCKET_KEY": st.one_of(st.none(), _with_ows(valid_keys()), _bad_keys()),
    "HTTP_SEC_WEBSOCKET_VERSION": st.one_of(
        st.none(),
        _with_ows(st.just("13")),
        st.sampled_from(["8", "12", "14", "13, 8", "013", "1 3", "", "thirteen"]),
        st.integers(0, 300).map(str),
        latin1_text,
    ),
    "CONTENT_LENGTH": st.one_of(
        st.sampled_from(["", "0", "00", "5", "-1", "abc"]),
        st.from_regex(r"\d{1,4}", fullmatch=True),
    ),
    "HTTP_TRANSFER_ENCODING": st.sampled_from(["chunked", "", "identity"]),
    "HTTP_SEC_WEBSOCKET_PROTOCOL": st.one_of(
        st.lists(st.one_of(st.sampled_from(SUBPROTOCOLS), _token), max_size=4).flatmap(
            lambda names: st.sampled_from([", ", ",", " , "]).map(lambda sep: sep.join(names))
        ),
        latin1_text,
    ),
}


@st.composite
def handshake_environs(draw: st.DrawFn, path: str = "/ws") -> dict[str, Any]:
    """A WSGI environ: a valid handshake, or one with a few fields mutated (or removed)."""
    environ: dict[str, Any] = {
        **HANDSHAKE,
        "PATH_INFO": path,
        "HTTP_CONNECTION": draw(st.sampled_from(["Upgrade", "keep-alive, Upgrade", "upgrade"])),
        "HTTP_SEC_WEBSOCKET_KEY": draw(valid_keys()),
    }
    for name in draw(st.lists(st.sampled_from(sorted(_MUTATIONS)), unique=True, max_size=4)):
        value = draw(_MUTATIONS[name])
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    extra = draw(
        st.dictionaries(
            st.from_regex(r"HTTP_X_[A-Z_]{1,8}", fullmatch=True), latin1_text, max_size=3
        )
    )
    environ.update(extra)
    return environ


# -- frames -----------------------------------------------------------------------------------

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
KNOWN_OPCODES = frozenset({CONT, TEXT, BINARY, CLOSE, PING, PONG})
#: Close codes a client may send (§7.4.1-7.4.2, plus the IANA-registered 1012-1014). 1014
#: is left out of the valid streams: wsproto fails a connection that receives it (finding 5).
VALID_CLOSE_CODES = st.one_of(
    st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013]),
    st.integers(3000, 4999),
)
INVALID_CLOSE_CODES = st.one_of(
    st.integers(0, 999),
    st.sampled_from([1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]),
    st.integers(1016, 2999),
    st.integers(5000, 65535),
)


def mask_bytes(payload: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@dataclass(frozen=True)
class FrameSpec:
    """One frame as a client would put it on the wire, defects included."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    masked: bool = True
    key: bytes = b"\x12\x34\x56\x78"
    #: Force the 2- or 8-byte length form even when a shorter one would do.
    length_bytes: int | None = None

    def encode(self) -> bytes:
        n = len(self.payload)
        head = bytes([(0x80 if self.fin else 0) | (self.rsv & 7) << 4 | (self.opcode & 0xF)])
        bit = 0x80 if self.masked else 0
        form = self.length_bytes
        if form is None:
            form = 0 if n < 126 else 2 if n < 1 << 16 else 8
        if form == 0:
            head += bytes([bit | n])
        elif form == 2:
            head += bytes([bit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([bit | 127]) + struct.pack("!Q", n)
        if not self.masked:
            return head + self.payload
        return head + self.key + mask_bytes(self.payload, self.key)


def encode_frames(frames: Iterable[FrameSpec]) -> bytes:
    return b"".join(f.encode() for f in frames)


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


@dataclass
class Stream:
    """A client's frame stream and what it means (for a valid stream, the model)."""

    frames: list[FrameSpec]
    #: The messages the client sent, in order (valid streams).
    messages: list[Data] = field(default_factory=list)
    #: Ping payloads, in order (each owed a pong while the connection is open).
    pings: list[bytes] = field(default_factory=list)
    #: The client's Close: (code or None for an empty Close, reason), if it sent one.
    close: tuple[int | None, str] | None = None
    #: Bytes after the frames (junk after a Close, which must be ignored).
    trailer: bytes = b""
    #: Frame boundaries (indices into ``frames``) that are inside a fragmented message.
    inside: set[int] = field(default_factory=set)

    @property
    def data(self) -> bytes:
        return encode_frames(self.frames) + self.trailer

    @property
    def largest(self) -> int:
        return max((len(_b(m)) for m in self.messages), default=0)


def _b(message: Data) -> bytes:
    return message.encode("utf-8") if isinstance(message, str) else message


_keys = st.binary(min_size=4, max_size=4)
_control_payloads = st.binary(max_size=125)
_small_text = st.text(max_size=40)
_texts = st.one_of(
    _small_text,
    st.text(min_size=100, max_size=300),
    st.text(st.sampled_from("aé✓𝄞"), min_size=30, max_size=200),
)
_binaries = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=120, max_size=400),
    st.integers(65530, 65540).map(lambda n: bytes(range(256)) * (n // 256) + b"x" * (n % 256)),
)


@st.composite
def _split(draw: st.DrawFn, payload: bytes, max_parts: int = 4) -> list[bytes]:
    """``payload`` cut into 1..max_parts fragments (empty ones allowed), anywhere, even
    inside a UTF-8 sequence."""
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=max_parts - 1)))
    bounds = [0, *cuts, len(payload)]
    return [payload[a:b] for a, b in zip(bounds, bounds[1:])]


@st.composite
def _message_frames(draw: st.DrawFn, stream: Stream, opcode: int, payload: bytes) -> None:
    """Append one (possibly fragmented) message, with pings/pongs between fragments."""
    parts = draw(_split(payload))
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        stream.frames.append(FrameSpec(opcode if i == 0 else CONT, part, fin=last, key=draw(_keys)))
        if not last:
            stream.inside.add(len(stream.frames))
            if draw(st.booleans()):
                ping = draw(st.booleans())
                body = draw(_control_payloads)
                stream.frames.append(FrameSpec(PING if ping else PONG, body, key=draw(_keys)))
                if ping:
                    stream.pings.append(body)
                stream.inside.add(len(stream.frames))


@st.composite
def valid_streams(draw: st.DrawFn, *, big: bool = True, close: bool | None = None) -> Stream:
    """A valid client stream: text and binary messages (fragmented or not, with control
    frames between fragments), pings and pongs, and maybe a Close then junk."""
    stream = Stream([])
    binaries = _binaries if big else st.binary(max_size=300)
    for kind in draw(st.lists(st.sampled_from(["text", "binary", "ping", "pong"]), max_size=6)):
        if kind == "text":
            text = draw(_texts)
            stream.messages.append(text)
            draw(_message_frames(stream, TEXT, text.encode("utf-8")))
        elif kind == "binary":
            data = draw(binaries)
            stream.messages.append(data)
            draw(_message_frames(stream, BINARY, data))
        else:
            body = draw(_control_payloads)
            stream.frames.append(FrameSpec(PING if kind == "ping" else PONG, body, key=draw(_keys)))
            if kind == "ping":
                stream.pings.append(body)
    if close is None:
        close = draw(st.booleans())
    if close:
        code = draw(st.none() | VALID_CLOSE_CODES)
        reason = "" if code is None else draw(st.text(max_size=40))
        while len(reason.encode()) > 123:
            reason = reason[:-1]
        stream.close = (code, reason)
        stream.frames.append(
            FrameSpec(CLOSE, close_payload(code, reason.encode()), key=draw(_keys))
        )
        stream.trailer = draw(st.binary(max_size=20))
    return stream


# -- defects ------------------------------------------------------------------------------------

#: Invalid UTF-8 (RFC 3629): bad bytes, overlong forms, surrogates, beyond U+10FFFF.
INVALID_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc0\xaf",
    b"\xc1\xbf",
    b"\xe0\x80\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xce\xba\xe1\xbd",  # a truncated sequence followed by a frame that does not continue it
]

DEFECT_KINDS = (
    "rsv",
    "opcode",
    "unmasked",
    "non-minimal-length",
    "length-msb",
    "control-too-long",
    "control-fragmented",
    "continuation-without-start",
    "data-inside-fragmented",
    "invalid-utf8",
    "invalid-utf8-at-end",
    "close-bad-code",
    "close-one-byte",
    "close-bad-reason",
    "too-big",
)


@dataclass
class Defective:
    """A stream with one injected defect: the stream, the code it must cause, the limit."""

    stream: Stream
    kind: str
    code: int
    #: The messages delivered before the defect.
    before: list[Data]
    limit: int | None = None


def _messages_before(valid: Stream, index: int) -> list[Data]:
    """The messages completed by ``valid.frames[:index]``."""
    count = sum(1 for f in valid.frames[:index] if f.opcode in (TEXT, BINARY, CONT) and f.fin)
    return valid.messages[:count]


@st.composite
def defective_streams(draw: st.DrawFn) -> Defective:
    """A valid stream with one defect injected at a frame boundary (or into one frame)."""
    valid = draw(valid_streams(big=False))
    kind = draw(st.sampled_from(DEFECT_KINDS))
    end = len(valid.frames) - (1 if valid.close else 0)  # inject before the client's Close
    frames = list(valid.frames)
    key = draw(_keys)
    limit: int | None = None
    code = 1002
    outside = [i for i in range(end + 1) if i not in valid.inside]
    at = draw(st.integers(0, end))

    def insert(i: int, *new: FrameSpec) -> None:
        frames[i:i] = list(new)

    if kind in ("rsv", "opcode", "unmasked", "non-minimal-length") and end > 0:
        at = draw(st.integers(0, end - 1))
        f = frames[at]
        if kind == "rsv":
            frames[at] = replace(f, rsv=draw(st.integers(1, 7)))
        elif kind == "opcode":
            op = draw(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]))
            frames[at] = replace(f, opcode=op)
        elif kind == "unmasked":
            frames[at] = replace(f, masked=False)
        else:
            n = len(f.payload)
            frames[at] = replace(f, length_bytes=8 if n >= 126 else draw(st.sampled_from([2, 8])))
    elif kind in ("rsv", "opcode", "unmasked", "non-minimal-length"):
        # No frame to damage: inject a damaged ping.
        spec = FrameSpec(PING, draw(_control_payloads), key=key)
        if kind == "rsv":
            spec = replace(spec, rsv=draw(st.integers(1, 7)))
        elif kind == "opcode":
            spec = replace(spec, opcode=draw(st.sampled_from([3, 7, 0xB, 0xF])))
        elif kind == "unmasked":
            spec = replace(spec, masked=False)
        else:
            spec = replace(spec, length_bytes=2)
        insert(at, spec)
    elif kind == "length-msb":
        head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", (1 << 63) | draw(st.integers(0, 99)))
        insert(at, FrameSpec(BINARY))  # placeholder, replaced by raw bytes below
        raw = encode_frames(frames[:at]) + head
        stream = Stream([], trailer=raw + encode_frames(frames[at + 1 :]) + valid.trailer)
        return Defective(stream, kind, 1002, _messages_before(valid, at))
    elif kind == "control-too-long":
        op = draw(st.sampled_from([PING, PONG, CLOSE]))
        insert(at, FrameSpec(op, draw(st.binary(min_size=126, max_size=300)), key=key))
    elif kind == "control-fragmented":
        op = draw(st.sampled_from([PING, PONG, CLOSE]))
        insert(at, FrameSpec(op, close_payload(1000) if op == CLOSE else b"", fin=False, key=key))
    elif kind == "continuation-without-start":
        at = draw(st.sampled_from(outside))
        insert(at, FrameSpec(CONT, draw(st.binary(max_size=20)), fin=draw(st.booleans()), key=key))
    elif kind == "data-inside-fragmented":
        inside = sorted(i for i in valid.inside if i <= end)
        op = draw(st.sampled_from([TEXT, BINARY]))
        new = FrameSpec(op, b"x", fin=draw(st.booleans()), key=key)
        if inside:
            at = draw(st.sampled_from(inside))
            insert(at, new)
        else:
            at = draw(st.sampled_from(outside))
            insert(at, FrameSpec(TEXT, b"start", fin=False, key=key), new)
    elif kind in ("invalid-utf8", "invalid-utf8-at-end"):
        at = draw(st.sampled_from(outside))
        text = draw(_small_text)
        if kind == "invalid-utf8":
            cut = draw(st.integers(0, len(text)))  # between characters
            bad = draw(st.sampled_from(INVALID_UTF8))
            payload = text[:cut].encode() + bad + text[cut:].encode()
        else:  # a sequence cut short by the end of the message
            payload = text.encode() + draw(st.sampled_from([b"\xc3", b"\xe2\x82", b"\xf0\x9d\x84"]))
        parts = draw(_split(payload))
        insert(
            at,
            *(
                FrameSpec(TEXT if i == 0 else CONT, p, fin=i == len(parts) - 1, key=key)
                for i, p in enumerate(parts)
            ),
        )
        code = 1007
    elif kind == "close-bad-code":
        payload = close_payload(draw(INVALID_CLOSE_CODES), draw(st.text(max_size=20)).encode())
        insert(at, FrameSpec(CLOSE, payload, key=key))
    elif kind == "close-one-byte":
        insert(at, FrameSpec(CLOSE, draw(st.binary(min_size=1, max_size=1)), key=key))
    elif kind == "close-bad-reason":
        bad = draw(st.sampled_from(INVALID_UTF8))
        payload = close_payload(draw(VALID_CLOSE_CODES), b"ok" + bad)
        insert(at, FrameSpec(CLOSE, payload, key=key))
        code = 1007
    else:  # too-big
        at = draw(st.sampled_from(outside))
        limit = valid.largest + draw(st.integers(0, 50))
        size = limit + draw(st.integers(1, 100))
        op = draw(st.sampled_from([TEXT, BINARY]))
        payload = b"a" * size if op == TEXT else draw(st.binary(min_size=size, max_size=size))
        if op == TEXT and draw(st.booleans()):
            payload = ("é" * (size // 2 + 1)).encode()  # counted in bytes, not characters
        parts = draw(_split(payload))
        insert(
            at,
            *(
                FrameSpec(op if i == 0 else CONT, p, fin=i == len(parts) - 1, key=key)
                for i, p in enumerate(parts)
            ),
        )
        code = 1009
    stream = Stream(frames, trailer=valid.trailer)
    return Defective(stream, kind, code, _messages_before(valid, at), limit)


@st.composite
def mutated_streams(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """Random damage to a valid or defective stream: bit flips, bytes set, deleted,
    inserted, truncation. Returns the bytes and a message size limit."""
    if draw(st.booleans()):
        base = draw(valid_streams(big=False))
        data, limit = base.data, draw(st.none() | st.integers(0, 400))
    else:
        defective = draw(defective_streams())
        data, limit = defective.stream.data, defective.limit
    damaged = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "delete", "insert", "truncate"]))
        pos = draw(st.integers(0, len(damaged)))
        if op == "flip" and damaged:
            pos = min(pos, len(damaged) - 1)
            damaged[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and damaged:
            damaged[min(pos, len(damaged) - 1)] = draw(st.integers(0, 255))
        elif op == "delete":
            del damaged[pos : pos + draw(st.integers(1, 8))]
        elif op == "insert":
            damaged[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "truncate":
            del damaged[pos:]
    return bytes(damaged), limit


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` split into non-empty chunks at random points."""
    if not data:
        return []
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=12))))
    bounds = [0, *[c for c in cuts if 0 < c < len(data)], len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


# -- the reference decoder ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How a server connection ends up after a client stream.

    ``sent`` lists the frames the server must answer with, in order:
    ``("pong", payload)`` and ``("close", code)`` (``code`` None for a Close
    without a code, the echo of one).
    """

    messages: tuple[Data, ...]
    state: str  # "OPEN", "CLOSING" or "CLOSED"
    close_code: int | None
    sent: tuple[tuple[str, Any], ...]
    close_received: bool = False

    @property
    def sent_close(self) -> int | None:
        """The code of the Close the server sent (or echoed), if any."""
        closes = [v for kind, v in self.sent if kind == "close"]
        return closes[0] if closes else None


@dataclass(frozen=True)
class Verdict:
    """The acceptable outcomes; ``by_segmentation`` when which one depends on how the
    stream is split into reads (otherwise it is the oracle's own uncertainty)."""

    outcomes: tuple[Outcome, ...]
    by_segmentation: bool = False

    def __contains__(self, outcome: object) -> bool:
        return outcome in self.outcomes


class _Fork(Exception):
    """Raised inside the decoder to say: here two outcomes are both acceptable."""


@dataclass
class _Decoder:
    limit: int | None
    state: str = "OPEN"
    close_code: int | None = None
    close_received: bool = False
    messages: list[Data] = field(default_factory=list)
    sent: list[tuple[str, Any]] = field(default_factory=list)
    frag_opcode: int | None = None
    frag: bytearray = field(default_factory=bytearray)
    frag_size: int = 0
    decoder: Any = None
    done: bool = False
    #: ``choose(kind)`` -> 0 or 1 at a point where two outcomes are acceptable.
    choose: Any = None
    #: See :func:`frame_oracle`.
    limit_at_header: bool = True

    def outcome(self) -> Outcome:
        return Outcome(
            tuple(self.messages), self.state, self.close_code, tuple(self.sent), self.close_received
        )

    def fail(self, code: int) -> None:
        """§7.1.7: fail the connection; in CLOSING our Close (1009) is already out."""
        if self.state == "OPEN":
            self.sent.append(("close", code))
            self.close_code = code
        else:
            self.close_code = self.sent[-1][1]
        self.state = "CLOSED"
        self.done = True

    def too_big(self) -> None:
        """§7.4.1 1009: we start the closing handshake and wait for the peer's Close."""
        self.sent.append(("close", 1009))
        self.state = "CLOSING"


def _utf8_scan(decoder: Any, data: bytes, final: bool) -> int | None:
    """Feed ``data`` to ``decoder`` byte by byte: the index of the byte at which it fails,
    or None."""
    for i in range(len(data)):
        try:
            decoder.decode(data[i : i + 1], final and i == len(data) - 1)
        except UnicodeDecodeError:
            return i
    if final and not data:
        try:
            decoder.decode(b"", True)
        except UnicodeDecodeError:
            return 0
    return None


def frame_oracle(
    data: bytes, limit: int | None = None, *, eof: bool = False, limit_at_header: bool = True
) -> Verdict:
    """What a server must make of the client bytes ``data`` (then EOF if ``eof``).

    ``limit_at_header``: the server starts the closing handshake with 1009 as soon
    as a data frame's header says the message will exceed ``limit`` (wsgiws's own
    codec), rather than once the payload past the limit arrives (wsproto, used on
    permessage-deflate connections). Both are allowed; each server is exact.

    The stream is read frame by frame. A defect fails the connection with 1002
    (framing, §5.2-5.5), 1007 (invalid UTF-8 in a text message or a close
    reason, §8.1) or starts the closing handshake with 1009 (a message over
    ``limit`` bytes); a Close is echoed (§5.5.1) and nothing after it is read;
    a ping is answered while the connection is open. An incomplete frame at
    the end waits for more bytes. EOF before a closing handshake ends is 1006.
    """
    results: list[Outcome] = []
    by_segmentation = False
    # Each fork replays the stream, taking the alternative at the n-th choice point.
    pending: list[tuple[int, ...]] = [()]
    while pending:
        choices = pending.pop()
        seen: list[int] = []

        def choose(kind: str, _choices: tuple[int, ...] = choices, _seen: list[int] = seen) -> int:
            nonlocal by_segmentation
            index = len(_seen)
            if index < len(_choices):
                _seen.append(_choices[index])
                return _choices[index]
            pending.append((*_seen, 1))
            if kind == "segmentation":
                by_segmentation = True
            _seen.append(0)
            return 0

        dec = _Decoder(limit, choose=choose, limit_at_header=limit_at_header)
        _run(dec, data)
        if eof and dec.state != "CLOSED":
            dec.state, dec.close_code = "CLOSED", 1006
        outcome = dec.outcome()
        if outcome not in results:
            results.append(outcome)
    return Verdict(tuple(results), by_segmentation)


def _run(dec: _Decoder, data: bytes) -> None:
    pos = 0
    n = len(data)
    while not dec.done and pos < n:
        if n - pos < 2:
            return
        b0, b1 = data[pos], data[pos + 1]
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF
        masked, short = bool(b1 & 0x80), b1 & 0x7F
        control = opcode >= 8
        if opcode not in KNOWN_OPCODES or (control and (not fin or short > 125)):
            dec.fail(1002)
            return
        width = {126: 2, 127: 8}.get(short, 0)
        late_defect = rsv != 0 or not masked
        if n - pos < 2 + width:
            # The defect shows, but the length bytes are not all here: a server may
            # fail now or wait for them.
            if late_defect and dec.choose("detection"):
                dec.fail(1002)
            return
        length = short
        if width == 2:
            (length,) = struct.unpack("!H", data[pos + 2 : pos + 4])
            late_defect = late_defect or length < 126
        elif width == 8:
            (length,) = struct.unpack("!Q", data[pos + 2 : pos + 10])
            late_defect = late_defect or length < 1 << 16 or length >> 63 != 0
        if late_defect:
            dec.fail(1002)
            return
        start = pos + 2 + width + 4
        if start > n:
            return
        key = data[start - 4 : start]
        available = min(length, n - start)
        payload = mask_bytes(data[start : start + available], key)
        complete = available == length
        if control:
            if not complete:
                return
            _control(dec, opcode, payload)
            pos = start + length
            continue
        # A data frame: is it where it may be (§5.4)?
        out_of_place = (opcode == CONT) == (dec.frag_opcode is None)
        if out_of_place:
            # Seen once a payload byte is here; before that a server may fail or wait.
            if (available == 0 and length > 0) and not dec.choose("detection"):
                return
            dec.fail(1002)
            return
        so_far = dec.frag_size if opcode == CONT else 0
        if (
            dec.limit_at_header
            and dec.state == "OPEN"
            and dec.limit is not None
            and so_far + length > dec.limit
        ):
            dec.too_big()  # the rest of the message is still parsed, and discarded
        if available == 0 and length > 0:
            return
        if opcode != CONT:
            dec.frag_opcode = opcode
            dec.frag = bytearray()
            dec.frag_size = 0
            dec.decoder = codecs.getincrementaldecoder("utf-8")() if opcode == TEXT else None
        _data(dec, payload, final=complete and fin)
        if dec.done or not complete:
            return
        if fin:
            dec.frag_opcode = None
        pos = start + length


def _control(dec: _Decoder, opcode: int, payload: bytes) -> None:
    if opcode == PING:
        if dec.state == "OPEN":
            dec.sent.append(("pong", payload))
        return
    if opcode == PONG:
        return
    # Close (§5.5.1, §7.4): no code (1005), or a code a peer may send and a UTF-8 reason.
    code: int | None = None
    if len(payload) == 1:
        dec.fail(1002)
        return
    if payload:
        (code,) = struct.unpack("!H", payload[:2])
        allowed = code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999
        if not allowed or (code == 1014 and dec.choose("detection")):  # finding 5
            dec.fail(1002)
            return
        try:
            payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            dec.fail(1007)
            return
    dec.close_received = True
    if dec.state == "OPEN":
        dec.sent.append(("close", code))
        dec.close_code = 1005 if code is None else code
    else:
        dec.close_code = dec.sent[-1][1]
    dec.state = "CLOSED"
    dec.done = True


def _data(dec: _Decoder, payload: bytes, *, final: bool) -> None:
    bad_at: int | None = None
    if dec.decoder is not None:
        bad_at = _utf8_scan(dec.decoder, payload, final)
    if dec.state != "OPEN":
        # CLOSING (our 1009 is out): data is discarded, but the stream is still parsed.
        if bad_at is not None:
            dec.fail(1007)
        return
    # Where (index into this frame's payload) the message gets over the limit.
    over_at: int | None = None
    if dec.limit is not None and dec.frag_size + len(payload) > dec.limit:
        over_at = dec.limit - dec.frag_size
    if bad_at is not None:
        # A read that ends between the two lets the size show first.
        if over_at is not None and over_at < bad_at and dec.choose("segmentation"):
            dec.too_big()
            dec.fail(1007)
            return
        dec.fail(1007)
        return
    if over_at is not None:
        dec.too_big()
        return
    dec.frag += payload
    dec.frag_size += len(payload)
    if final:
        body = bytes(dec.frag)
        dec.messages.append(body.decode("utf-8") if dec.frag_opcode == TEXT else body)
        dec.frag = bytearray()
        dec.frag_size = 0


def parse_server_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split what a server wrote into (opcode, payload) frames, checking each is well formed
    for a server (unmasked, no RSV bits, a known opcode, control frames whole and <= 125
    bytes); returns the frames and any incomplete rest."""
    frames = []
    pos = 0
    while len(data) - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        assert b0 & 0x70 == 0, f"RSV bits set in a server frame: {data[pos : pos + 2]!r}"
        assert b1 & 0x80 == 0, "a server frame is masked"
        opcode = b0 & 0xF
        assert opcode in KNOWN_OPCODES, f"unknown opcode {opcode:#x} from the server"
        length, width = b1 & 0x7F, 0
        if length == 126:
            width = 2
        elif length == 127:
            width = 8
        if len(data) - pos < 2 + width:
            break
        if width:
            length = int.from_bytes(data[pos + 2 : pos + 2 + width], "big")
        if opcode >= 8:
            assert b0 & 0x80 and length <= 125, "a fragmented or long control frame"
        start = pos + 2 + width
        if len(data) - start < length:
            break
        frames.append((opcode, data[start : start + length]))
        pos = start + length
    return frames, data[pos:]


def describe_sent(frames: Sequence[tuple[int, bytes]]) -> list[tuple[str, Any]]:
    """Server control frames as the oracle lists them: pongs and Close codes."""
    out: list[tuple[str, Any]] = []
    for opcode, payload in frames:
        if opcode == PONG:
            out.append(("pong", payload))
        elif opcode == CLOSE:
            assert len(payload) != 1, "a Close frame with a 1-byte payload"
            out.append(("close", struct.unpack("!H", payload[:2])[0] if payload else None))
            if len(payload) > 2:
                payload[2:].decode("utf-8")  # the reason must be UTF-8
    return out
