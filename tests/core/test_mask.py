"""wsgiws._mask: the C and the pure-Python unmasking give identical bytes.

RFC 6455 §5.3: payload octet *i* is XORed with masking-key octet *i* MOD 4.
Both implementations are checked against :func:`reference` (that rule, one byte
at a time) and against each other, on random and on boundary sizes (the C loop
works 8 bytes at a time, then a tail; it releases the GIL above 64 KiB).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import timeout
from wsgiws import _mask

Unmask = Callable[..., bytes]


def _native() -> Unmask:
    try:
        from wsgiws import _speedups
    except ImportError as exc:
        pytest.skip(
            f"wsgiws._speedups was not built: {exc} (pip install -e . builds it; it needs a "
            "C compiler and the Python headers)"
        )
    return _speedups.apply_mask


# Module scope: Hypothesis refuses function-scoped fixtures in @given tests.
@pytest.fixture(params=["native", "python"], scope="module")
def unmask(request: pytest.FixtureRequest) -> Unmask:
    """Each implementation in turn (the native one skips when it was not built)."""
    if request.param == "native":
        return _native()
    return _mask.python_apply_mask


def reference(data: bytes, mask: bytes, offset: int = 0) -> bytes:
    """RFC 6455 §5.3, literally."""
    return bytes(b ^ mask[(i + offset) % 4] for i, b in enumerate(data))


MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 §5.7's example key


def test_native_module_is_built_and_selected() -> None:
    native = _native()
    if os.environ.get("WSGIWS_NO_SPEEDUPS"):
        pytest.skip("WSGIWS_NO_SPEEDUPS is set in this environment")
    assert _mask.NATIVE is True
    assert _mask.apply_mask is native


def test_rfc_example(unmask: Unmask) -> None:
    # RFC 6455 §5.7: a masked "Hello" is 7f 9f 4d 51 58 under key 37 fa 21 3d.
    assert unmask(bytes.fromhex("7f9f4d5158"), MASK) == b"Hello"
    assert unmask(b"Hello", MASK) == bytes.fromhex("7f9f4d5158")


# Both of python_apply_mask's methods: it changes at 512 bytes.
PAYLOADS = st.one_of(st.binary(max_size=300), st.binary(min_size=500, max_size=1200))


@given(
    data=PAYLOADS,
    mask=st.binary(min_size=4, max_size=4),
    offset=st.integers(min_value=0, max_value=7),
)
def test_random_inputs_match_the_reference(
    unmask: Unmask, data: bytes, mask: bytes, offset: int
) -> None:
    assert unmask(data, mask, offset) == reference(data, mask, offset)


# Around the C loop's 8-byte word and 64 KiB GIL threshold, and a large frame.
# python_apply_mask changes method at 512 bytes.
SIZES = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 23, 24, 25, 511, 512, 513]
SIZES += [65535, 65536, 65537, 65543, 65544, 65545, 1 << 20, (1 << 20) + 5]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 6])
def test_boundary_sizes(unmask: Unmask, size: int, offset: int) -> None:
    data = os.urandom(size)
    result = unmask(data, MASK, offset)
    assert type(result) is bytes
    assert result == reference(data, MASK, offset)


@pytest.mark.parametrize("size", [65537, (1 << 20) + 5])
def test_native_and_python_agree_on_large_payloads(size: int) -> None:
    data = os.urandom(size)
    for offset in range(4):
        assert _native()(data, MASK, offset) == _mask.python_apply_mask(data, MASK, offset)


def test_buffer_types(unmask: Unmask) -> None:
    raw = bytes(range(256)) * 3
    expected = reference(raw[5:700], MASK, 2)
    # A memoryview slice that starts inside its buffer (unaligned for the C loads).
    assert unmask(memoryview(raw)[5:700], MASK, 2) == expected
    source = bytearray(raw)
    assert unmask(memoryview(source)[5:700], MASK, 2) == expected
    assert unmask(bytearray(raw[5:700]), MASK, 2) == expected
    assert source == bytearray(raw)  # the input is not modified
    # A multi-byte format is still taken as its bytes.
    assert unmask(memoryview(raw[:256]).cast("I"), MASK) == reference(raw[:256], MASK)
    # The mask may be any 4-byte buffer, and arguments may be named.
    assert unmask(data=raw[:9], mask=bytearray(MASK), offset=1) == reference(raw[:9], MASK, 1)


def test_empty_data(unmask: Unmask) -> None:
    assert unmask(b"", MASK) == b""
    assert unmask(memoryview(b"abc")[3:], MASK, 5) == b""


@pytest.mark.parametrize("offset", [-1, -6, 2**64 + 3, -(2**70) + 1, True])
def test_offset_is_taken_mod_4(unmask: Unmask, offset: int) -> None:
    data = bytes(range(37))
    assert unmask(data, MASK, offset) == reference(data, MASK, offset % 4)


@given(
    data=PAYLOADS,
    mask=st.binary(min_size=4, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=1200), max_size=6),
)
def test_chunked_equals_whole(unmask: Unmask, data: bytes, mask: bytes, cuts: list[int]) -> None:
    # A payload unmasked as it arrives, each piece at the count of bytes before it.
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    pieces = [unmask(data[a:b], mask, a) for a, b in zip(bounds, bounds[1:])]
    assert b"".join(pieces) == unmask(data, mask) == reference(data, mask)


@pytest.mark.parametrize("mask", [b"", b"abc", b"abcde", bytes(8)])
def test_mask_must_be_4_bytes(unmask: Unmask, mask: bytes) -> None:
    with pytest.raises(ValueError, match=f"mask must be 4 bytes, not {len(mask)}"):
        unmask(b"payload", mask)
    with pytest.raises(ValueError, match="mask must be 4 bytes"):
        unmask(b"", mask)


@pytest.mark.parametrize(
    "args",
    [
        ("text", MASK),  # str is not a buffer
        (b"data", 4),  # not bytes(4)
        (b"data", MASK, 1.0),  # offset must be an integer
        (memoryview(bytes(16))[::2], MASK),  # not contiguous
    ],
)
def test_bad_argument_types(unmask: Unmask, args: tuple[object, ...]) -> None:
    with pytest.raises(TypeError):
        unmask(*args)


def test_no_speedups_variable_selects_python() -> None:
    _native()  # only meaningful when there is a native one to turn off
    code = (
        "from wsgiws import _mask; print(_mask.NATIVE, _mask.apply_mask is _mask.python_apply_mask)"
    )
    env = {**os.environ, "WSGIWS_NO_SPEEDUPS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout(60),
    )
    assert out.stdout.split() == ["False", "True"]
    # An empty value does not count as set.
    env["WSGIWS_NO_SPEEDUPS"] = ""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout(60),
    )
    assert out.stdout.split() == ["True", "False"]
