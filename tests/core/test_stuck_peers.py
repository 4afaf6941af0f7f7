"""A peer that stops reading never holds a thread or greenlet: send_timeout, close() and
abort() from another thread or greenlet, keepalive while a send is stuck.

Every scenario (tests/core/_stuck.py) runs once per kit, each in an interpreter
of its own (importing eventlet here would make every later fork warn), over
real TCP sockets on loopback whose client never reads.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT_SCALE, timeout
from tests.core._stuck import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("kit", ["threads", "gevent", "eventlet"])
def test_a_peer_that_stops_reading(kit: str, scenario: str) -> None:
    # Looked up, not imported: importing eventlet here is what must not happen.
    if kit != "threads" and importlib.util.find_spec(kit) is None:
        pytest.skip(f"{kit} is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [sys.executable, "-m", "tests.core._stuck", kit, scenario, str(TIMEOUT_SCALE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )
    assert result.returncode == 0 and result.stdout.startswith("OK") and not result.stderr, (
        f"{kit}/{scenario} failed:\n{result.stdout}\n{result.stderr}"
    )
    print(f"{kit}/{scenario}: {result.stdout.strip()}")
