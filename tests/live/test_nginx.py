"""nginx in front of a live server, configured by ``examples/nginx.conf`` itself.

The example file is what docs/howto/nginx.rst tells users to install; this
module renders it with only the lines it marks ``ADAPT`` changed (the
upstream address, the listening port, a deliberately small
``proxy_read_timeout``), includes it in a minimal main configuration that
keeps every path nginx writes (pid, logs, temp files) in a temporary
directory, and runs ``nginx`` unprivileged in the foreground in front of
the default app on ``gunicorn-gevent`` and ``werkzeug``. Everything then goes
through nginx: echo of every kind, close codes both ways, a first frame sent
with the handshake, plain HTTP, the Origin check, and a connection idle for
longer than ``proxy_read_timeout`` that survives because the server's
keepalive pings keep nginx reading (and one without pings that nginx cuts).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

from tests.conftest import timeout

from . import _scenarios
from ._clients import new_id, payload, wait_state, ws_connect
from ._harness import ROOT, LiveServer, Response, ServerPool, _die_with_parent
from ._wire import TEXT, RawClient, frame, handshake_request, new_key
from .conftest import LiveTest, _live

EXAMPLE = ROOT / "examples" / "nginx.conf"
#: The backends nginx is put in front of: one threaded, one green.
BACKENDS = ("gunicorn-gevent", "werkzeug")
#: nginx's ``proxy_read_timeout`` in the rendered example, in seconds: small,
#: so that an idle connection would be cut within the test.
READ_TIMEOUT = 2
#: The lines of the example that are meant to be adapted, and the values the
#: test gives them: each must occur exactly once.
_UPSTREAM = "server 127.0.0.1:8000;  # ADAPT"
_LISTEN = "listen 8080;  # ADAPT"
_READ_TIMEOUT = "proxy_read_timeout 60s;  # ADAPT"
#: nginx's error log levels that mean something went wrong.
_NGINX_ERROR = re.compile(r"\[(error|crit|alert|emerg)\]")


def _nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    return found


def render_example(upstream: str, port: int, read_timeout: int) -> str:
    """``examples/nginx.conf`` with its ``ADAPT`` lines set for this test, nothing else changed."""
    text = EXAMPLE.read_text()
    for old, new in (
        (_UPSTREAM, f"server {upstream};"),
        (_LISTEN, f"listen 127.0.0.1:{port};"),
        (_READ_TIMEOUT, f"proxy_read_timeout {read_timeout}s;"),
    ):
        assert text.count(old) == 1, f"examples/nginx.conf should contain {old!r} once"
        text = text.replace(old, new)
    return text


def main_config(prefix: Path) -> str:
    """A main nginx.conf that includes the rendered example, every path under ``prefix``."""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / 'temp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;

events {{
    worker_connections 256;
}}

http {{
    access_log {prefix / "access.log"};
{temp}
    include {prefix / "wsgiws.conf"};
}}
"""


class Nginx:
    """An nginx process in front of one backend; quacks like a LiveServer for the scenarios."""

    def __init__(self, binary: str, backend: LiveServer) -> None:
        self.binary = binary
        self.backend = backend
        # Not pytest's tmp_path: its parents are private to this user, and when
        # the tests run as root nginx's workers run as nobody and must reach
        # the temp directories.
        self.prefix = Path(tempfile.mkdtemp(prefix="wsgiws-nginx-"))
        self.prefix.chmod(0o755)
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    # -- what the scenarios use ------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def name(self) -> str:
        return f"nginx in front of {self.backend.name}"

    def ws_url(self, path: str) -> str:
        return f"ws://{self.host}:{self.port}{path}"

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> Response:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout(10))
        try:
            conn.request(method, path, headers={"Connection": "close", **(headers or {})})
            resp = conn.getresponse()
            body = resp.read()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
        finally:
            conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers)

    # -- the log ---------------------------------------------------------------------

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def mark(self) -> int:
        return self.error_log.stat().st_size if self.error_log.exists() else 0

    def log_since(self, mark: int = 0) -> str:
        if not self.error_log.exists():
            return ""
        with self.error_log.open("rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        (self.prefix / "temp").mkdir()
        (self.prefix / "nginx.conf").write_text(main_config(self.prefix))
        # nginx binds the port itself: take a free one, and try again if
        # another process got it in between.
        for _attempt in range(3):
            self.port = _free_port()
            upstream = f"{self.backend.host}:{self.backend.port}"
            conf = render_example(upstream, self.port, READ_TIMEOUT)
            (self.prefix / "wsgiws.conf").write_text(conf)
            output = (self.prefix / "output.log").open("ab")
            with output:
                self.proc = subprocess.Popen(
                    [self.binary, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf")],
                    cwd=self.prefix,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            if self._wait_ready():
                return
            in_use = "Address already in use" in self.log_since()
            self.stop()
            if not in_use:
                break
        raise AssertionError(f"nginx did not start; its logs:\n{self._logs()}")

    def _wait_ready(self) -> bool:
        """Poll GET /health through nginx (which proves the upstream works too)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout(20)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.get("/health").status == 200:
                    return True
            time.sleep(0.05)
        return False

    def _logs(self) -> str:
        output = self.prefix / "output.log"
        text = output.read_text(errors="replace") if output.exists() else ""
        return (text + self.log_since())[-5000:]

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # nginx's fast shutdown
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout(10))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout(10))

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Front:
    """One test's view of nginx: the scenarios talk to it, errors are checked after."""

    def __init__(self, nginx: Nginx, backend: LiveTest) -> None:
        self.nginx = nginx
        self.backend = backend
        self.start_mark = nginx.mark()
        self.allowed: list[re.Pattern[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.nginx, name)

    def allow_errors(self, *patterns: str) -> None:
        """nginx error-log lines matching any of ``patterns`` are expected in this test."""
        self.allowed += [re.compile(p) for p in patterns]

    def unexpected_errors(self) -> list[str]:
        return [
            line
            for line in self.nginx.log_since(self.start_mark).splitlines()
            if _NGINX_ERROR.search(line) and not any(p.search(line) for p in self.allowed)
        ]


@pytest.fixture(scope="module")
def nginx_pool() -> Iterator[dict[tuple[str, int], Nginx]]:
    """nginx processes started on first use, one per backend, stopped after the module."""
    pool: dict[tuple[str, int], Nginx] = {}
    try:
        yield pool
    finally:
        for nginx in pool.values():
            nginx.cleanup()


@pytest.fixture(params=BACKENDS)
def front(
    request: pytest.FixtureRequest,
    server_pool: ServerPool,
    nginx_pool: dict[tuple[str, int], Nginx],
) -> Iterator[Front]:
    binary = _nginx_binary()
    for backend in _live(server_pool, request.param):
        key = backend.server.address
        nginx = nginx_pool.get(key)
        if nginx is None:
            nginx = Nginx(binary, backend.server)
            try:
                nginx.start()
            except BaseException:
                nginx.cleanup()
                raise
            nginx_pool[key] = nginx
        front = Front(nginx, backend)
        yield front
        errors = front.unexpected_errors()
        assert not errors, f"{nginx.name} logged errors:\n" + "\n".join(errors)


# -- the tests ------------------------------------------------------------------------------


def test_the_example_is_the_file_rendered(front):
    """Only the ADAPT lines differ between examples/nginx.conf and what nginx runs."""
    running = (front.prefix / "wsgiws.conf").read_text().splitlines()
    example = EXAMPLE.read_text().splitlines()
    assert len(running) == len(example)
    changed = [old for old, new in zip(example, running) if old != new]
    assert [line.strip() for line in changed] == [_UPSTREAM, _LISTEN, _READ_TIMEOUT]


def test_plain_http_reaches_the_app(front):
    resp = front.get("/hello")
    assert (resp.status, resp.body) == (200, b"hello from the app\n")
    # A plain GET to a WebSocket path is the app's, through nginx as directly.
    resp = front.get("/echo")
    assert (resp.status, resp.body) == (200, b"plain app: GET /echo\n")


@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("size", [0, 125, 65536, 1 << 20], ids=["0", "125", "65536", "1MiB"])
def test_echo(front, kind, size):
    message = payload(kind, size)
    _scenarios.echo_websockets_client(front, "/echo", message, seconds=60)
    _scenarios.echo_raw_socket(front, "/echo", message)


def test_first_frames_sent_with_the_handshake_arrive(front):
    """nginx holds frames sent with the handshake and relays them after the 101 (so this
    checks nginx, as the how-to claims; test_echo.py checks the server's read buffer)."""
    _scenarios.pipelined_first_frame(front, "/echo")


def test_a_lone_first_frame_is_not_held_back(front):
    client = RawClient.connect(front.address, "/echo", early=frame(TEXT, b"alone"))
    try:
        assert client.recv_message() == "alone"
        _scenarios.close_cleanly(client)
    finally:
        client.close()


def test_the_clients_close_code_reaches_the_handler(front):
    _scenarios.client_close_reaches_handler_websockets(front, new_id())
    _scenarios.client_close_reaches_handler_raw(front, new_id())


@pytest.mark.parametrize(("code", "reason"), [(4001, "server bye"), (1000, "")])
def test_the_handlers_close_code_reaches_the_client(front, code, reason):
    raises = ConnectionClosedOK if code == 1000 else ConnectionClosed
    _scenarios.server_close_reaches_client(front, code, reason, raises)
    _scenarios.server_close_then_eof(front, _scenarios.close_path(code, reason), code, reason)


@pytest.mark.parametrize(
    ("origin", "status"), [("https://app.example", 101), ("https://evil.example", 403)]
)
def test_the_origin_check_sees_the_browsers_origin(front, origin, status):
    """nginx passes Origin on unchanged: the allow-list of /strict decides, as without nginx."""
    sock = socket.create_connection(front.address, timeout=timeout(10))
    client = RawClient(sock)
    try:
        host = f"{front.host}:{front.port}"
        sock.sendall(handshake_request(host, "/strict", new_key(), {"Origin": origin}))
        client.read_response_head()
        assert client.status == status
        if status == 101:
            client.send("hello")
            assert client.recv_message() == "hello"
            _scenarios.close_cleanly(client)
    finally:
        client.close()


def _idle(seconds: float) -> None:
    """Let a connection sit without application traffic for ``seconds`` (a duration the
    test needs, longer than nginx's read timeout: not a timeout, so not scaled down)."""
    time.sleep(seconds)


def test_keepalive_pings_keep_an_idle_connection_open(front):
    """/keepalive-quick pings a silent client every 0.2 s: nginx keeps reading from the
    application, and the connection outlives several of its read timeouts."""
    cid = new_id()
    with ws_connect(front, f"/keepalive-quick?id={cid}", ping_interval=None) as ws:
        ws.send("before")
        assert ws.recv(timeout=timeout(10)) == "before"
        _idle(3 * READ_TIMEOUT)
        ws.send("after")
        assert ws.recv(timeout=timeout(10)) == "after"
    _scenarios.assert_handler_ended(front, cid, "end-of-stream", 1000, "")


def test_without_pings_nginx_cuts_an_idle_connection(front):
    """The control: /record pings only after 20 s of silence, so nginx's read timeout
    ends the idle connection, and the handler learns that the peer is gone."""
    front.allow_errors(r"upstream timed out .* while proxying upgraded connection")
    cid = new_id()
    with ws_connect(front, f"/record?id={cid}", ping_interval=None) as ws:
        ws.send("before")
        assert ws.recv(timeout=timeout(10)) == "before"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=timeout(5 * READ_TIMEOUT))
    assert info.value.rcvd is None  # no Close frame: nginx closed TCP
    rec = wait_state(front, cid, "ended")
    assert rec["how"] == "ConnectionClosed" and rec["code"] == 1006, rec
