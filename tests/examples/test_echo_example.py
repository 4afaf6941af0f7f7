"""examples/echo.py, run as the README runs it: the page, text and binary echo, a clean close."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.conftest import timeout
from tests.examples._run import EXAMPLES, free_port, wait_until_serving

pytestmark = pytest.mark.live

EXAMPLE = EXAMPLES / "echo.py"


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
