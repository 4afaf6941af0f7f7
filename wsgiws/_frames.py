"""A lean RFC 6455 frame codec for the server role without extensions, sans I/O.

Why not wsproto here: wsproto's receive and send paths dominated the profiles
of an echo server (issue 5). For a 1 MiB message its send path makes about four
copies of the payload (~800 us), and its receive path grows and slices a buffer,
unmasks in pure Python (~820 us/MiB) and runs a generator and an event object
per 64 KiB read; for a 16-byte message its per-frame objects (header, frame,
event) are a large share of a ~45 us round trip. This codec does only what an
uncompressed server connection needs, with no per-frame objects: the bytes of
a whole frame are unmasked straight from the read (one copy, by
:func:`wsgiws._mask.apply_mask`), a frame split across reads is gathered in one
bytearray first, and a message is sent as (header, payload) without joining
them. wsproto still serves connections that negotiated permessage-deflate
(:mod:`wsgiws._protocol`): compressed traffic is bound by zlib anyway.

Receiving follows wsproto's rules, check for check and close code for close
code (the Autobahn testsuite grades them; ``tests/core/test_frames.py`` runs
both on the same streams):

* 1002 (§5.2-5.5): an unknown opcode; a fragmented control frame or one longer
  than 125 bytes; a length not in its shortest form, or a 64-bit one with the
  top bit set; any RSV bit (no extension gives them a meaning); an unmasked
  frame (§5.1: a client masks every frame); a continuation with no message
  started, or a new data frame while one is unfinished (§5.4); a Close with a
  1-byte payload or a code a peer may not send (§7.4).
* 1007 (§8.1): a text message or a Close reason that is not UTF-8. Text is
  checked as it arrives, mid-frame and mid-message (fail fast, Autobahn 6.4).
* 1009 (§7.4.1): a message longer than ``max_message_size``, found from the
  frame's header, before its payload is buffered (wsproto's path finds it as
  the payload arrives).

After a Close frame or a protocol error nothing more is parsed (§5.5.1,
§7.1.7). The codec answers nothing itself: it reports to its receiver
(:class:`Receiver`), which decides what to send.
"""

from __future__ import annotations

import codecs
import struct
from typing import Protocol, Union

from ._mask import apply_mask

__all__ = ["FrameCodec", "Receiver"]

Data = Union[str, bytes]

_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA
#: Opcodes RFC 6455 §5.2 defines, indexed by opcode (the others are reserved).
_KNOWN = (True, True, True, False, False, False, False, False, True, True, True) + (False,) * 5
#: wsproto's names in its reasons ("expected CONTINUATION, got <Opcode.TEXT: 1>").
_OPCODE_NAMES = {_TEXT: "<Opcode.TEXT: 1>", _BINARY: "<Opcode.BINARY: 2>"}
#: Close codes a peer may send (RFC 6455 §7.4.1-7.4.2): the ones wsproto knows
#: (1004-1006 and 1015 are reserved or local-only; 1014 is unknown to wsproto,
#: which fails the connection on it: tests/core/test_fuzz_protocol.py, finding 5),
#: and 3000-4999 for libraries and applications.
_PEER_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})
#: Close codes that must not be sent (§7.4.1); wsproto sends 1000 instead.
_LOCAL_ONLY = frozenset({1005, 1006, 1015})
_MAX_CONTROL = 125
_UNPACK_H = struct.Struct("!H").unpack_from
_UNPACK_Q = struct.Struct("!Q").unpack_from
_PACK_H = struct.Struct("!BBH").pack
_PACK_Q = struct.Struct("!BBQ").pack
#: Above this many bytes a payload is unmasked through a memoryview rather
#: than a slice: the slice would be one more copy, the view costs ~100 ns.
_VIEW_FROM = 2048


class Receiver(Protocol):
    """What the codec reports to, one call per event, in stream order."""

    def _on_message(self, data: Data) -> None: ...  # a whole text (str) or binary message
    def _on_ping(self, payload: bytes) -> None: ...
    def _on_pong(self, payload: bytes) -> None: ...
    def _on_close(self, code: int, reason: str) -> None: ...  # the peer's Close; 1005: no code
    def _on_error(self, code: int, reason: str) -> None: ...  # parsing has stopped
    def _on_too_big(self) -> None: ...  # over the limit; data is discarded from now on


def _header(opcode: int, length: int) -> bytes:
    """A server frame's header: FIN, no RSV bit, no mask (§5.1: servers do not mask)."""
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return _PACK_H(0x80 | opcode, 126, length)
    return _PACK_Q(0x80 | opcode, 127, length)


def _control_frame(opcode: int, payload: bytes) -> bytes:
    if len(payload) > _MAX_CONTROL:
        raise ValueError("payload too long for control frame")  # §5.5
    return bytes((0x80 | opcode, len(payload))) + payload


class FrameCodec:
    """Server-side frames of one connection with no extension negotiated.

    :meth:`receive` takes bytes as read from the peer and reports whole
    messages and control frames to ``receiver``; the other methods return the
    bytes of frames to send. ``max_message_size`` (an attribute too) bounds a
    received message in bytes (text counted in UTF-8 bytes, as on the wire);
    None: no limit.
    """

    __slots__ = (
        "_decoder",
        "_discard",
        "_fin",
        "_gathered",
        "_left",
        "_leftover",
        "_mask",
        "_message",
        "_offset",
        "_parts",
        "_receiver",
        "_size",
        "_stopped",
        "max_message_size",
    )

    def __init__(self, receiver: Receiver, max_message_size: int | None = None) -> None:
        self._receiver = receiver
        self.max_message_size = max_message_size
        #: The start of a frame whose header (or, for a control frame, whole
        #: frame: at most 139 bytes) has not fully arrived.
        self._leftover = b""
        #: After a Close frame or a protocol error: input is ignored.
        self._stopped = False
        #: Data frames are checked but not kept (we are closing).
        self._discard = False
        # The data frame whose payload is arriving across reads (``_left`` > 0
        # or an empty read still due): its mask, FIN bit, the payload bytes
        # still to come and those already seen (the mask's offset), and, for
        # a binary message, the masked payload gathered so far.
        self._left = 0
        self._mask = b""
        self._fin = False
        self._offset = 0
        self._gathered: bytearray | None = None
        # The message being assembled: its opcode (0: none), its finished
        # frames (bytes, or str pieces for text), its size in bytes so far,
        # and for text split over frames or reads, the UTF-8 decoder.
        self._message = 0
        self._parts: list[Data] = []
        self._size = 0
        self._decoder: codecs.IncrementalDecoder | None = None

    # -- receiving ------------------------------------------------------------------------------

    @property
    def partial_size(self) -> int:
        """Payload bytes received of the message not yet complete."""
        return self._size

    @property
    def bytes_wanted(self) -> int:
        """Bytes still needed to complete the frame being received; 0 when not known.

        A reader can ask for this much at once instead of many small reads.
        """
        if self._left:
            return self._left
        head = self._leftover
        if len(head) < 2 or self._stopped:
            return 0
        short = head[1] & 0x7F
        if short < 126:
            return 6 + short - len(head)
        if short == 126:
            if len(head) < 4:
                return 0
            return 8 + int.from_bytes(head[2:4], "big") - len(head)
        if len(head) < 10:
            return 0
        return 14 + int.from_bytes(head[2:10], "big") - len(head)

    def discard_data(self) -> None:
        """From now on data frames are still parsed and checked, but not delivered or kept."""
        self._discard = True
        self._parts = []
        self._gathered = None
        self._size = 0

    def receive(self, data: bytes) -> None:
        """Parse ``data`` (the next bytes from the peer, not empty) and report what it completes.

        Slices of ``data`` may be kept until the next call: pass ``bytes`` (or a
        bytearray), not a memoryview of a buffer that the caller reuses.
        """
        if self._stopped:
            return
        pos = 0
        if self._left:
            pos = self._take(data, 0)
            if self._left or self._stopped:
                return
        if self._leftover:
            data = self._leftover + data[pos:]
            self._leftover = b""
            pos = 0
        end = len(data)
        receiver = self._receiver
        while pos < end:
            if end - pos < 2:
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            opcode = b0 & 0x0F
            length = b1 & 0x7F
            # The checks in wsproto's order (FrameDecoder.parse_header), each as
            # soon as the bytes it needs are here.
            if not _KNOWN[opcode]:
                return self._error(1002, f"Invalid opcode {opcode:#x}")
            if opcode & 0x08:
                if not b0 & 0x80:
                    return self._error(1002, "Invalid attempt to fragment control frame")
                if length > _MAX_CONTROL:
                    return self._error(1002, "Control frame with payload len > 125")
            start = pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length = _UNPACK_H(data, start)[0]
                if length < 126:
                    return self._error(
                        1002, "Payload length used 2 bytes when 1 would have sufficed"
                    )
                start += 2
            elif length == 127:
                if end - pos < 10:
                    break
                length = _UNPACK_Q(data, start)[0]
                if length < 65536:
                    return self._error(
                        1002, "Payload length used 8 bytes when 2 would have sufficed"
                    )
                if length >> 63:
                    return self._error(1002, "8-byte payload length with non-zero MSB")
                start += 8
            if b0 & 0x70:
                return self._error(1002, "Reserved bit set unexpectedly")  # no extension
            if not b1 & 0x80:
                return self._error(1002, "server received unexpected unmasked frame")  # §5.1
            if end - start < 4:
                break
            mask = data[start : start + 4]
            start += 4
            if opcode & 0x08:
                # A control frame is handled whole (it is at most 125 bytes).
                if end - start < length:
                    break
                pos = start + length
                payload = apply_mask(data[start:pos], mask) if length else b""
                if opcode == _PING:
                    receiver._on_ping(payload)
                elif opcode == _PONG:
                    receiver._on_pong(payload)
                else:
                    self._close(payload)
                    return
                continue
            # A data frame: where it may be (§5.4), and within the limit?
            if opcode:
                if self._message:
                    return self._error(1002, f"expected CONTINUATION, got {_OPCODE_NAMES[opcode]}")
                self._message = opcode
            elif not self._message:
                return self._error(1002, "unexpected CONTINUATION")
            limit = self.max_message_size
            if limit is not None and not self._discard and self._size + length > limit:
                # Found from the header: nothing of this frame is buffered.
                self.discard_data()
                receiver._on_too_big()
            fin = b0 & 0x80
            if end - start >= length:
                pos = start + length
                if fin and self._message == _BINARY and not self._parts and not self._discard:
                    # The common case: a whole one-frame binary message.
                    self._message = 0
                    receiver._on_message(_unmask(data, start, length, mask, 0))
                elif fin and self._message == _TEXT and self._decoder is None:
                    # A whole one-frame text message.
                    self._message = 0
                    payload = _unmask(data, start, length, mask, 0)
                    try:
                        text = payload.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        return self._error(1007, str(exc))
                    if not self._discard:
                        receiver._on_message(text)
                else:
                    self._left = length
                    self._mask = mask
                    self._fin = bool(fin)
                    self._offset = 0
                    self._take(data, start)
                    if self._stopped:
                        return
                continue
            # The frame goes on in the next reads.
            self._left = length
            self._mask = mask
            self._fin = bool(fin)
            self._offset = 0
            self._take(data, start)
            return
        if pos < end:
            self._leftover = data[pos:]

    def _take(self, data: bytes, pos: int) -> int:
        """Take the current data frame's payload from ``data[pos:]``; the position after it.

        Text is decoded (so checked) as it arrives; binary is gathered masked
        and unmasked once, when the frame is complete.
        """
        n = min(self._left, len(data) - pos)
        last = n == self._left
        if self._message == _TEXT:
            decoder = self._decoder
            if decoder is None:
                decoder = self._decoder = codecs.getincrementaldecoder("utf-8")()
            if n or (last and self._fin):
                chunk = _unmask(data, pos, n, self._mask, self._offset)
                try:
                    text = decoder.decode(chunk, last and self._fin)
                except UnicodeDecodeError as exc:
                    self._error(1007, str(exc))
                    return pos + n
                if not self._discard:
                    self._parts.append(text)
        elif not self._discard:
            if last and self._gathered is None:
                # The rest of the frame is all here: no gathering.
                self._parts.append(_unmask(data, pos, n, self._mask, self._offset))
            else:
                if self._gathered is None:
                    self._gathered = bytearray()
                with memoryview(data) as view:
                    self._gathered += view[pos : pos + n]
                if last:
                    self._parts.append(apply_mask(self._gathered, self._mask))
                    self._gathered = None
        self._offset += n
        self._left -= n
        if not self._discard:
            self._size += n
        if last and self._fin:
            self._finish()
        return pos + n

    def _finish(self) -> None:
        """The message's last frame is complete: deliver it."""
        parts = self._parts
        text = self._message == _TEXT
        self._message = 0
        self._decoder = None
        self._parts = []
        self._size = 0
        if self._discard:
            return
        if len(parts) == 1:
            message = parts[0]
        elif text:
            message = "".join(parts)  # type: ignore[arg-type]
        else:
            message = b"".join(parts)  # type: ignore[arg-type]
        self._receiver._on_message(message)

    def _close(self, payload: bytes) -> None:
        """The peer's Close frame (§5.5.1): its code and reason, or the error it is (§7.4)."""
        self._stopped = True
        if not payload:
            self._receiver._on_close(1005, "")  # §7.1.5: no code is "considered to be 1005"
            return
        if len(payload) == 1:
            self._error(1002, "CLOSE with 1 byte payload")
            return
        code = _UNPACK_H(payload)[0]
        if not (code in _PEER_CODES or 3000 <= code <= 4999):
            if code < 1000 or code > 4999:
                self._error(1002, "CLOSE with invalid code")
            elif code in _LOCAL_ONLY:
                self._error(1002, "remote CLOSE with local-only reason")
            else:
                self._error(1002, "CLOSE with unknown reserved code")
            return
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError as exc:
            self._error(1007, f"Error decoding CLOSE reason: {exc}")
            return
        self._receiver._on_close(code, reason)

    def _error(self, code: int, reason: str) -> None:
        """A protocol error (§7.1.7): nothing more is parsed."""
        self._stopped = True
        self._leftover = b""
        self._left = 0
        self._parts = []
        self._gathered = None
        self._size = 0
        self._receiver._on_error(code, reason)

    # -- sending --------------------------------------------------------------------------------

    def frame_message(self, data: Data) -> tuple[bytes, bytes]:
        """The header and payload of one whole message: text for str, binary for bytes."""
        if isinstance(data, str):
            payload = data.encode("utf-8")
            return _header(_TEXT, len(payload)), payload
        return _header(_BINARY, len(data)), data

    def ping(self, payload: bytes) -> bytes:
        return _control_frame(_PING, payload)

    def pong(self, payload: bytes) -> bytes:
        return _control_frame(_PONG, payload)

    def close(self, code: int, reason: str = "") -> bytes:
        """A Close frame as wsproto builds it: 1005 means no code (§7.1.5), a local-only
        code becomes 1000, and the reason is cut to fit 125 bytes on a character boundary."""
        if code == 1005:
            return _control_frame(_CLOSE, b"")
        if code in _LOCAL_ONLY:
            code = 1000
        encoded = reason.encode("utf-8")
        if len(encoded) > _MAX_CONTROL - 2:
            encoded = encoded[: _MAX_CONTROL - 2].decode("utf-8", "ignore").encode("utf-8")
        return _control_frame(_CLOSE, code.to_bytes(2, "big") + encoded)


def _unmask(data: bytes, start: int, length: int, mask: bytes, offset: int) -> bytes:
    """``data[start:start + length]`` unmasked, without an intermediate copy when it is large."""
    if length < _VIEW_FROM:
        return apply_mask(data[start : start + length], mask, offset)
    with memoryview(data) as view:
        return apply_mask(view[start : start + length], mask, offset)
