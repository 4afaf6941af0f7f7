"""Payload masking (RFC 6455 §5.3): XOR with a 4-byte key, repeated.

:func:`apply_mask` masks or unmasks (the operation is its own inverse) a payload
or a piece of one. ``offset`` is how many bytes of the same frame's payload came
before ``data``, so a payload unmasked in chunks as it arrives gives the same
bytes as one unmasked whole (RFC 6455 §5.3: octet *i* is XORed with key octet
*i* MOD 4).

Two implementations with one contract:

* ``wsgiws._speedups.apply_mask``, a small C extension, built when the package
  is installed if a compiler is there (``setup.py`` marks it optional, so an
  install without one still succeeds);
* :func:`python_apply_mask`, pure Python, always available.

:data:`apply_mask` is the C one when it was built, else the Python one;
:data:`NATIVE` says which. Setting the environment variable
``WSGIWS_NO_SPEEDUPS`` to a non-empty value before this module is first
imported forces the Python one: for debugging, and for the tests, which check
that both give identical bytes.
"""

from __future__ import annotations

import operator
import os
from typing import Protocol, Union

__all__ = ["NATIVE", "apply_mask", "python_apply_mask"]

_Data = Union[bytes, bytearray, memoryview]


def python_apply_mask(data: _Data, mask: bytes, offset: int = 0) -> bytes:
    """Return ``data`` XORed with ``mask`` repeated, starting at key octet ``offset % 4``.

    ``data`` is any C-contiguous bytes-like object and is not modified; the
    result is a new :class:`bytes` of the same length (``b""`` for empty data).
    ``mask`` must be 4 bytes long, else :class:`ValueError`; ``offset`` is any
    integer (negative ones too: only ``offset % 4`` matters).
    """
    if type(mask) is not bytes:
        # memoryview, not bytes(mask): bytes(4) would be four zero bytes.
        mask = bytes(memoryview(mask).cast("B"))
    if len(mask) != 4:
        raise ValueError(f"mask must be 4 bytes, not {len(mask)}")
    shift = operator.index(offset) & 3  # == offset % 4, negative offsets too
    if not isinstance(data, (bytes, bytearray)):
        # len() of a memoryview counts items, not bytes; the C version sees bytes.
        data = memoryview(data).cast("B")
    n = len(data)
    key = mask[shift:] + mask[:shift]
    # Two methods, by size. Measured (CPython 3.11, x86-64, us per call):
    #
    #   bytes       16    256    512    768    4 KiB   64 KiB   1 MiB
    #   big int    0.34   0.75   1.26   1.68    7.1      163    2580
    #   translate  0.79   1.03   1.25   1.49    3.8       50     837 (*)
    #
    # (*) 1330 when the result's fresh megabyte must be faulted in, as in a
    # loop that frees each result; the C version: 32 us per MiB, 0.05 at 16.
    # (a per-byte ``bytes(b ^ key[i & 3] for ...)`` is slower than both at
    # every size: 1.09 us at 16 bytes, 6.2 us at 128.)
    if n < _TRANSLATE_FROM:
        # One big-integer XOR: from_bytes, ^ and to_bytes are C loops in
        # CPython, but the conversions grow worse than linearly with size.
        keys = (key * (n // 4 + 1))[:n]
        x = int.from_bytes(data, "little") ^ int.from_bytes(keys, "little")
        return x.to_bytes(n, "little")
    # Every 4th byte, from byte i, is XORed with key[i]: a byte translation
    # (the method wsproto's XorMaskerSimple uses), done on extended slices.
    out = bytearray(data)
    for i in range(4):
        out[i::4] = out[i::4].translate(_table(key[i]))
    return bytes(out)


#: From this length on, python_apply_mask translates instead (see the figures).
_TRANSLATE_FROM = 512

#: _TABLES[k][b] == b ^ k, built as needed (256 bytes each).
_TABLES: list[bytes | None] = [None] * 256


def _table(k: int) -> bytes:
    table = _TABLES[k]
    if table is None:
        table = _TABLES[k] = bytes(b ^ k for b in range(256))
    return table


class _ApplyMask(Protocol):
    def __call__(self, data: _Data, mask: bytes, offset: int = 0) -> bytes: ...


def _select() -> tuple[_ApplyMask, bool]:
    if os.environ.get("WSGIWS_NO_SPEEDUPS"):
        return python_apply_mask, False
    try:
        from wsgiws._speedups import apply_mask as native
    except ImportError:
        return python_apply_mask, False
    return native, True


#: The C implementation when it was built and not disabled, else :func:`python_apply_mask`.
apply_mask: _ApplyMask
#: True when :data:`apply_mask` is the C extension's.
NATIVE: bool
apply_mask, NATIVE = _select()
