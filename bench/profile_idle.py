"""Where an idle WebSocket's memory goes: ``python -m bench.profile_idle [N]``.

Serves ``bench.apps:wsgiws_app`` with gevent.pywsgi in this process, opens N
idle WebSockets from a child process (default 1,000), and prints what
tracemalloc saw allocated per connection, by file and by line, with the
traceback of the largest. It is the profile behind W6's figure in
docs/performance.rst: resident memory includes what tracemalloc cannot see
(malloc's own overhead), so its total is lower than W6's.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402 - after monkey-patching, as gevent requires
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tracemalloc  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from bench.apps import wsgiws_app  # noqa: E402

_CLIENT = """
import socket, sys
hs = (b"GET /echo HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
      b"Sec-WebSocket-Version: 13\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n\\r\\n")
held = []
for _ in range(int(sys.argv[2])):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
    s.sendall(hs)
    data = b""
    while b"\\r\\n\\r\\n" not in data:
        data += s.recv(4096)
    assert data.startswith(b"HTTP/1.1 101"), data
    held.append(s)
print("open", flush=True)
sys.stdin.readline()
"""


def _hold(port: int, count: int) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(
        [sys.executable, "-c", _CLIENT, str(port), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != b"open":
        raise SystemExit(f"the client could not open {count} connections")
    return child


def _release(child: subprocess.Popen[bytes]) -> None:
    assert child.stdin is not None
    child.stdin.write(b"\n")
    child.stdin.flush()
    child.wait(timeout=60)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)
    server = WSGIServer(listener, wsgiws_app, log=None)
    server.start()
    port = listener.getsockname()[1]
    _release(_hold(port, 5))  # imports and first-use caches, not per connection
    gevent.sleep(0.5)
    gc.collect()
    tracemalloc.start(30)
    before = tracemalloc.take_snapshot()
    child = _hold(port, count)
    gevent.sleep(1.0)
    gc.collect()
    during = tracemalloc.take_snapshot()
    _release(child)
    total = sum(s.size_diff for s in during.compare_to(before, "filename"))
    print(f"{count} idle connections: {total / count / 1024:.1f} KiB per connection traced\n")
    print("by file:")
    for stat in during.compare_to(before, "filename")[:12]:
        print(f"  {stat.size_diff / count:7.0f} B  {stat.traceback[0].filename}")
    print("\nby line:")
    for stat in during.compare_to(before, "lineno")[:12]:
        print(f"  {stat.size_diff / count:7.0f} B  {stat.traceback[0]}")
    largest = during.compare_to(before, "traceback")[0]
    print(f"\nthe largest ({largest.size_diff / count:.0f} B), allocated at:")
    for frame in list(largest.traceback)[-10:]:
        print(f"    {frame}")


if __name__ == "__main__":
    main()
