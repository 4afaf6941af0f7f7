"""examples/echo.py, run as the README runs it: the page, text and binary echo, a clean close."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.conftest import timeout

pytestmark = pytest.mark.live

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "echo.py"


def free_port() -> int:
    """A port nothing listens on right now (the example wants a real number, not 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(url: str, proc: subprocess.Popen[bytes]) -> bytes:
    """Poll ``GET url`` until it answers 200; return the body."""
    deadline = time.monotonic() + timeout(20)
    while True:
        assert proc.poll() is None, f"the example exited with code {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=timeout(5)) as response:
                if response.status == 200:
                    return response.read()  # type: ignore[no-any-return]
        except (urllib.error.URLError, ConnectionError):
            pass
        assert time.monotonic() < deadline, f"the example did not answer at {url}"
        time.sleep(0.05)


def test_echo_example(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    output = tmp_path / "output.txt"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        page = wait_until_serving(url, proc)
        assert b"new WebSocket(" in page
        assert b'"/echo"' in page
        assert url in output.read_text(), "the example should print the URL it serves"

        with connect(
            f"ws://127.0.0.1:{port}/echo",
            open_timeout=timeout(10),
            close_timeout=timeout(10),
        ) as client:
            client.send("hello, wsgiws")
            assert client.recv(timeout=timeout(10)) == "hello, wsgiws"
            client.send(b"\x00\x01\xfe\xff")
            assert client.recv(timeout=timeout(10)) == b"\x00\x01\xfe\xff"
        # The server answered our Close with its own: a clean closing handshake.
        assert client.close_code == 1000
    except BaseException:
        print(output.read_text())
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout(10))
