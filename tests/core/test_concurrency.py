"""wsgiws._concurrency: the readiness waits work for any descriptor a busy server hands out.

Each kit is checked in its own interpreter: importing eventlet registers an
at-fork hook that warns on every later fork, and the test process forks the
live servers.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import timeout

ROOT = Path(__file__).resolve().parents[2]

#: Above FD_SETSIZE (1024): select() refuses it, poll() does not.
HIGH_FD = 1500

_CHECK = """
import os, resource, socket, sys
from wsgiws._concurrency import EVENTLET, GEVENT, THREADS

kit_name, high_fd = sys.argv[1], int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard <= high_fd:
    print(f"SKIP RLIMIT_NOFILE's hard limit is {hard}: cannot open descriptor {high_fd}")
    sys.exit(0)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, high_fd + 1), hard))
ours, peer = socket.socketpair()
fd = os.dup2(ours.fileno(), high_fd)
ours.close()
if kit_name == "threads":
    kit, sock = THREADS, socket.socket(fileno=fd)
elif kit_name == "gevent":
    import gevent.socket
    kit, sock = GEVENT, gevent.socket.socket(fileno=fd)
else:
    import eventlet.greenio
    kit, sock = EVENTLET, eventlet.greenio.GreenSocket(socket.socket(fileno=fd))
assert sock.fileno() == high_fd
wait = kit.waiter(sock)
assert wait(0) is False, "zero-timeout check on an empty socket"
assert wait(0.01) is False, "short wait on an empty socket"
peer.sendall(b"x")
assert wait(float(sys.argv[3])) is True, "wait on a readable socket"
assert wait(0) is True, "zero-timeout check on a readable socket"
print("OK")
"""


@pytest.mark.parametrize("kit", ["threads", "gevent", "eventlet"])
def test_waiter_works_for_a_descriptor_above_fd_setsize(kit: str) -> None:
    # Looked up, not imported: importing eventlet here is what must not happen.
    if kit != "threads" and importlib.util.find_spec(kit) is None:
        pytest.skip(f"{kit} is not installed (pip install -e '.[test]')")
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK, kit, str(HIGH_FD), str(timeout(5))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )
    if proc.stdout.startswith("SKIP "):
        pytest.skip(proc.stdout[5:].strip())
    assert proc.returncode == 0 and proc.stdout.strip() == "OK", proc.stdout + proc.stderr
