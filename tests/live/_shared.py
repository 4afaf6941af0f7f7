"""What the test app and the tests must agree on; imports nothing (the app runs monkey-patched)."""

from __future__ import annotations


def duplex_message(side: str, i: int) -> str | bytes:
    """The ``i``th message ``side`` sends in the duplex test: text and binary, 6 to 600 bytes.

    Sizes cross the 125/126 frame-length boundary, and every message carries
    its side and index, so a lost, reordered or corrupted one is told apart.
    """
    body = f"{side}-{i}-".encode() + bytes((i * 7 + k) % 256 for k in range((i * 37) % 300))
    return body if i % 2 else body.hex()
