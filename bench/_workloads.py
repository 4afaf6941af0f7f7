"""The workloads W1-W6 of issue 5, their bounds, and how each is measured.

Every loop is bounded twice, in count and in time: a slow target is measured
over fewer messages, never for longer. The counts are large enough that one
run lasts a second or more on this kind of machine, so a run's fixed costs
(opening the connection, the first reads) are small against it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ._client import Endpoint, Sample, concurrent, handshakes, roundtrips


@dataclass(frozen=True)
class Workload:
    id: str
    title: str
    #: What one unit is: a round trip, a message, a connection.
    unit: str
    run: Callable[[Endpoint], Sample]


@dataclass(frozen=True)
class Bounds:
    """Counts and seconds per run; ``quick`` ones only prove the suite works."""

    w1: tuple[int, float] = (20_000, 2.0)
    w2: tuple[int, float] = (4_000, 2.0)
    w3: tuple[int, float] = (400, 3.0)
    w4: tuple[int, float] = (40_000, 3.0)
    w4_connections: int = 100
    w5: tuple[int, float] = (1_000, 3.0)
    #: Idle connections held on every target, and on the gevent targets and the reference.
    w6: int = 1_000
    w6_many: int = 10_000


FULL = Bounds()
QUICK = Bounds(
    w1=(300, 0.5),
    w2=(50, 0.5),
    w3=(5, 0.5),
    w4=(500, 0.5),
    w4_connections=10,
    w5=(20, 0.5),
    w6=20,
    w6_many=50,
)

TEXT_16 = b"0123456789abcdef"
#: Binary payloads: not all one byte, so that a wrong unmasking shows in the echo.
BINARY_64K = bytes(range(256)) * 256
BINARY_1M = BINARY_64K * 16


def _roundtrips(
    wid: str, title: str, payload: bytes, text: bool, bound: tuple[int, float], warmup: int
) -> Workload:
    """W1-W3: one connection, one ``payload`` at a time."""
    return Workload(
        wid,
        f"one connection, {title} round trips",
        "round trip",
        lambda ep: roundtrips(
            ep,
            payload=payload,
            text=text,
            max_messages=bound[0],
            max_seconds=bound[1],
            warmup=warmup,
        ),
    )


def workloads(bounds: Bounds) -> list[Workload]:
    """W1-W5, the ones measured as a rate; W6 (memory) is run by the caller."""
    return [
        _roundtrips("W1", "16-byte text", TEXT_16, True, bounds.w1, warmup=50),
        _roundtrips("W2", "64 KiB binary", BINARY_64K, False, bounds.w2, warmup=20),
        _roundtrips("W3", "1 MiB binary", BINARY_1M, False, bounds.w3, warmup=3),
        Workload(
            "W4",
            f"{bounds.w4_connections} concurrent connections, 16-byte text, one in flight each",
            "message",
            lambda ep: concurrent(
                ep,
                connections=bounds.w4_connections,
                payload=TEXT_16,
                text=True,
                max_messages=bounds.w4[0],
                max_seconds=bounds.w4[1],
            ),
        ),
        Workload(
            "W5",
            "connect, handshake, close: one connection after another",
            "connection",
            lambda ep: handshakes(ep, max_connections=bounds.w5[0], max_seconds=bounds.w5[1]),
        ),
    ]


def settle(seconds: float = 0.5) -> None:
    """Let a server finish what the last run left (closing handshakes, frees)."""
    time.sleep(seconds)
