"""The harness's own checks: the log scan must catch what it is meant to catch."""

from __future__ import annotations

import re

import pytest

from ._harness import error_lines
from ._wire import CLOSE, TEXT, Frame, frame, mask


@pytest.mark.parametrize(
    "line",
    [
        "Traceback (most recent call last):",
        "RuntimeError: handler failed on purpose: x",
        "ConnectionResetError: [Errno 104] Connection reset by peer",
        "ERROR:wsgiws:WebSocket handler for /fail raised; closing the connection with 1011",
        "[2026-11-20 23:50:22 +0000] [5409] [ERROR] Error handling request /echo",
        "[2026-11-20 23:50:22 +0000] [5409] [CRITICAL] WORKER TIMEOUT (pid:5409)",
        "[2026-11-20 23:50:22 +0000] [5408] [INFO] Booting worker with pid: 5410",
        "<Greenlet at 0x7f: _handle_and_close_when_done> failed with OSError",
        "INFO:werkzeug:Error on request:",
        '127.0.0.1 - - [20/Nov/2026 23:50:21] "\x1b[35m\x1b[1mGET /x HTTP/1.1\x1b[0m" 500 -',
        '127.0.0.1 - - [2026-11-20 23:50:26] "GET /echo HTTP/1.1" 500 161 0.000908',
        "AssertionError: write() before start_response",
    ],
)
def test_error_lines_are_caught(line):
    plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
    assert error_lines(f"ok line\n{line}\nanother ok line\n") == [plain]


@pytest.mark.parametrize(
    "line",
    [
        '127.0.0.1 - - [2026-11-20 23:50:26] "GET /echo HTTP/1.1" 101 - 0.001171',
        'INFO:werkzeug:127.0.0.1 - - [20/Nov/2026 23:50:21] "GET /health HTTP/1.1" 200 -',
        "/x/geventlet.py:23: EventletDeprecationWarning: ",
        "[2026-11-20 23:49:07 +0000] [4630] [WARNING] The eventlet worker is DEPRECATED",
        "(4631) accepted ('127.0.0.1', 35254)",
        "INFO:wsgiws:rejected WebSocket handshake for /echo: missing Sec-WebSocket-Key header",
    ],
)
def test_ordinary_lines_pass(line):
    assert error_lines(line) == []


def test_frames_round_trip():
    key = b"\x01\x02\x03\x04"
    for size in (0, 1, 5, 125, 126, 65536):
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        assert mask(mask(data, key), key) == data
    assert frame(TEXT, b"hi", masked=False) == b"\x81\x02hi"
    assert frame(CLOSE, b"", masked=False) == b"\x88\x00"
    assert len(frame(TEXT, b"x" * 126)) == 2 + 2 + 4 + 126
    assert len(frame(TEXT, b"x" * 65536)) == 2 + 8 + 4 + 65536
    assert Frame(True, CLOSE, b"\x0f\xa0bye").close_code == 4000


#: Whether each green server's process is monkey-patched, and the green library
#: its app must spawn and sleep with (tests/live/_instrument.py).
GREEN = {
    "gunicorn-gevent": (True, None),
    "gunicorn-eventlet": (True, None),
    "gevent-pywsgi": (True, None),
    "eventlet-wsgi": (True, None),
    "gevent-pywsgi-unpatched": (False, "gevent"),
    "eventlet-wsgi-unpatched": (False, "eventlet"),
}


def test_green_servers_are_patched_as_named(server):
    """The launcher patches what it says it patches, and nothing else."""
    stats = server.stats()
    patched, green = GREEN.get(server.id, (None, None))  # None: no green library loaded
    assert (stats["patched"], stats["green"]) == (patched, green), stats
