"""What the test app and the tests must agree on; imports nothing (the app runs monkey-patched)."""

from __future__ import annotations


def duplex_message(side: str, i: int) -> str | bytes:
    """The ``i``th message ``side`` sends in the duplex test: text and binary, 6 to 600 bytes.

    Sizes cross the 125/126 frame-length boundary, and every message carries
    its side and index, so a lost, reordered or corrupted one is told apart.
    """
    body = f"{side}-{i}-".encode() + bytes((i * 7 + k) % 256 for k in range((i * 37) % 300))
    return body if i % 2 else body.hex()


#: The options of the ``/stuck-*`` endpoints (tests/live/test_stuck.py): small, so that
#: every release of a send stuck on a client that stops reading comes within seconds.
STUCK_SEND_TIMEOUT = 1.5
STUCK_CLOSE_TIMEOUT = 1.0
STUCK_PING_INTERVAL = 0.3
STUCK_PING_TIMEOUT = 0.5
#: A send in progress for this long is stuck: a 64 KiB send to a client that reads takes
#: well under a millisecond on loopback.
STUCK_AFTER = 0.2
