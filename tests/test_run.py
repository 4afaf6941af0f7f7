"""The launcher: ``python -m wsgiws MODULE:APP`` and ``wsgiws.run()``, live.

Every test starts a real process (``python -m wsgiws`` on
``tests/run_apps/echo.py``, or ``tests/run_apps/script.py``, which calls
``wsgiws.run()``) on port 0, reads the port from the launcher's one line,
and talks to it over HTTP and WebSocket; then stops it with SIGTERM or SIGINT.
The line is printed once the port is listened on, so connections made after it
queue until the server accepts them: it is the readiness probe.

Servers are hidden from a process, as if not installed, by
``tests/run_apps/hide/sitecustomize.py`` on ``PYTHONPATH``: a finder first on
``sys.meta_path`` answers the packages ``WSGIWS_TEST_HIDE`` names with
ModuleNotFoundError, to imports and to ``importlib.util.find_spec`` alike.
"""

from __future__ import annotations

import errno
import http.client
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import wsgiws
from tests.conftest import timeout

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parent.parent
ECHO = "tests/run_apps/echo.py"
SCRIPT = "tests/run_apps/script.py"
HIDE = ROOT / "tests" / "run_apps" / "hide"

#: The launcher's line, with the port, the server's label and the reason.
LINE = re.compile(r"^wsgiws: serving on http://127\.0\.0\.1:(\d+)/ with (.+?) \((.*)\)$", re.M)
LABELS = {
    "gevent": "gevent.pywsgi",
    "eventlet": "eventlet.wsgi",
    "gunicorn": "gunicorn, one gthread worker of 256 threads",
    "werkzeug": "the threaded Werkzeug development server",
}
#: What ``socket.socket`` is when the app module is imported: patched first, or not.
PATCHED_SOCKET = {
    "gevent": "gevent.",
    "eventlet": "eventlet.",
    "gunicorn": "socket.socket",
    "werkzeug": "socket.socket",
}
#: Every server closes the open WebSockets with 1001 as it stops (wsgiws.shutdown;
#: tests/live/test_shutdown.py checks the handlers' side too).
GOING_AWAY = {"gevent": 1001, "eventlet": 1001, "gunicorn": 1001, "werkzeug": 1001}


def need(*packages: str) -> None:
    """Skip unless every one of ``packages`` is installed here (and so in the launched process)."""
    for package in packages:
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install -e '.[test]')")


def _die_with_parent() -> None:
    """In the child: SIGTERM it if pytest dies (Linux), so that no server outlives the run."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Launched:
    """One launcher process; its stdout and stderr go to ``log``."""

    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def line(self) -> re.Match[str]:
        """The launcher's line, once printed (bounded wait)."""
        deadline = time.monotonic() + timeout(30)
        while time.monotonic() < deadline:
            found = LINE.search(self.output())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no launcher line; exit status {self.proc.poll()}:\n{self.output()}")

    @property
    def port(self) -> int:
        return int(self.line().group(1))

    def stop(self, signum: int = signal.SIGTERM, *, group: bool = False) -> int:
        """Send ``signum`` (to the process group: Ctrl-C in a terminal); the exit status."""
        (os.killpg if group else os.kill)(self.proc.pid, signum)
        try:
            return self.proc.wait(timeout(30))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {signum!r}:\n{self.output()}") from None


def _env(hide: Sequence[str]) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("WSGIWS_TEST_HIDE", None)
    if hide:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HIDE), env.get("PYTHONPATH")]))
        env["WSGIWS_TEST_HIDE"] = ",".join(hide)
    return env


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Launched]]:
    """Start ``python ARGS...`` in the repository root; kill what is left at the end."""
    started: list[Launched] = []

    def start(*args: str, hide: Sequence[str] = ()) -> Launched:
        log = tmp_path / f"launcher-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env=_env(hide),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: gunicorn's worker too
                preexec_fn=_die_with_parent,
            )
        started.append(Launched(proc, log))
        return started[-1]

    yield start
    for launched in started:
        if launched.proc.poll() is None:
            os.killpg(launched.proc.pid, signal.SIGKILL)
            launched.proc.wait(timeout(10))


def get(port: int, path: str = "/") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout(20))
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_serves(
    launched: Launched, server: str, signum: int = signal.SIGTERM, *, patched: str | None = None
) -> str:
    """HTTP and a WebSocket echo, then ``signum`` with the WebSocket open: a clean stop.

    ``patched``: the start of the class name ``socket.socket`` had when the app
    was imported (default: what the command line gives ``server``). Returns
    the process's output.
    """
    port = launched.port
    status, body = get(port)
    assert status == 200, body
    info = json.loads(body)
    assert info["socket_at_import"].startswith(patched or PATCHED_SOCKET[server]), info
    url = f"ws://127.0.0.1:{port}/echo"
    with connect(url, open_timeout=timeout(20), close_timeout=timeout(10)) as ws:
        for message in ("hello", "é ✓", b"\x00\xff" * 1000):
            ws.send(message)
            assert ws.recv(timeout=timeout(10)) == message
        status = launched.stop(signum, group=signum == signal.SIGINT)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=timeout(30))
    output = launched.output()
    assert status == 0, output
    assert "Traceback" not in output, output
    rcvd = closed.value.rcvd
    assert (rcvd.code if rcvd else None) == GOING_AWAY[server], output
    return output


# -- python -m wsgiws -------------------------------------------------------------------------


def test_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wsgiws", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(30),
    )
    assert result.returncode == 0, result.stderr
    assert "MODULE:APP" in result.stdout
    for server in LABELS:
        assert f"\n  {server} " in result.stdout, result.stdout


@pytest.mark.parametrize("server", list(LABELS))
def test_cli_serves_on_the_server_asked_for(launch: Callable[..., Launched], server: str) -> None:
    need(server)
    launched = launch("-m", "wsgiws", ECHO, "--port", "0", "--server", server)
    line = launched.line()
    assert line.group(2) == LABELS[server]
    if server in ("gevent", "eventlet"):
        assert (
            line.group(3)
            == f"asked for with --server {server}; monkey-patched before importing the app"
        )
    else:
        assert line.group(3) == f"asked for with --server {server}"
    check_serves(launched, server)


def test_cli_auto_picks_gevent_and_patches_first(launch: Callable[..., Launched]) -> None:
    need("gevent")
    # A dotted module name this time, and Ctrl-C (SIGINT to the process group) to stop.
    launched = launch("-m", "wsgiws", "tests.run_apps.echo:app", "--port", "0")
    line = launched.line()
    assert line.group(2) == "gevent.pywsgi"
    assert line.group(3) == "gevent is installed; monkey-patched before importing the app"
    check_serves(launched, "gevent", signal.SIGINT)


def test_cli_takes_application_before_app(launch: Callable[..., Launched]) -> None:
    """examples/echo.py has ``app`` (the plain app) and ``application`` (it wrapped): the
    WebSocket must be served, as gunicorn would serve it by default."""
    need("werkzeug")
    launched = launch("-m", "wsgiws", "examples/echo.py", "--port", "0", "--server", "werkzeug")
    port = launched.port
    url = f"ws://127.0.0.1:{port}/echo"
    with connect(url, open_timeout=timeout(20), close_timeout=timeout(10)) as ws:
        ws.send("which app?")
        assert ws.recv(timeout=timeout(10)) == "which app?"
    assert launched.stop() == 0, launched.output()


@pytest.mark.parametrize(
    ("hide", "server", "reason"),
    [
        (("gevent",), "eventlet", "gevent is not installed; eventlet is installed; "),
        (("gevent", "eventlet"), "gunicorn", "gevent and eventlet are not installed"),
        (
            ("gevent", "eventlet", "gunicorn"),
            "werkzeug",
            "gevent, eventlet and gunicorn are not installed; "
            "install gevent for many concurrent connections",
        ),
    ],
    ids=["eventlet", "gunicorn", "werkzeug"],
)
def test_cli_auto_falls_back(
    launch: Callable[..., Launched], hide: tuple[str, ...], server: str, reason: str
) -> None:
    need(server)
    launched = launch("-m", "wsgiws", ECHO, "--port", "0", hide=hide)
    line = launched.line()
    assert line.group(2) == LABELS[server]
    assert line.group(3).startswith(reason), line.group(0)
    check_serves(launched, server)


# -- wsgiws.run() from a program ----------------------------------------------------------------

NOT_PATCHED = (
    "gevent is installed but this process is not monkey-patched: call "
    "gevent.monkey.patch_all() before importing anything else, or start with python -m wsgiws"
)


@pytest.mark.parametrize(
    ("args", "server", "reason", "warns"),
    [
        (("auto",), "gunicorn", NOT_PATCHED, False),
        (("auto", "gevent"), "gevent", "the process is monkey-patched by gevent", False),
        (("auto", "eventlet"), "eventlet", "the process is monkey-patched by eventlet", False),
        (
            ("gevent",),
            "gevent",
            "asked for with server='gevent'; the process is not monkey-patched",
            True,
        ),
        (
            ("eventlet",),
            "eventlet",
            "asked for with server='eventlet'; the process is not monkey-patched",
            True,
        ),
        (("werkzeug",), "werkzeug", "asked for with server='werkzeug'", False),
    ],
    ids=["auto-unpatched", "auto-gevent", "auto-eventlet", "gevent", "eventlet", "werkzeug"],
)
def test_run_from_a_program(
    launch: Callable[..., Launched],
    args: tuple[str, ...],
    server: str,
    reason: str,
    warns: bool,
) -> None:
    need(server, *args[1:], *(["gevent"] if args == ("auto",) else []))  # its reason names gevent
    launched = launch(SCRIPT, *args)
    line = launched.line()
    assert (line.group(2), line.group(3)) == (LABELS[server], reason)
    # run() cannot patch after the fact: the app module got what the program did.
    patched = PATCHED_SOCKET[args[1]] if len(args) > 1 else "socket.socket"
    output = check_serves(launched, server, patched=patched)
    warning = f"wsgiws: warning: {server} runs without monkey-patching: a blocking call"
    assert (warning in output) == warns, output
    # run() returned, in the program's process only: a gunicorn worker, forked
    # from it, must not come back into the program's code.
    returned = re.findall(r"^script: run\(\) returned in (\d+)$", output, re.M)
    assert returned == [str(launched.proc.pid)], output


# -- mistakes -----------------------------------------------------------------------------------


def _run_cli(*args: str, hide: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsgiws", *args],
        cwd=ROOT,
        env=_env(hide),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout(30),
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "hide", "message"),
    [
        (("no_such_module_here:app",), (), "no module named 'no_such_module_here'"),
        (("tests/run_apps/no_such_file.py",), (), "no such file: tests/run_apps/no_such_file.py"),
        (("tests.run_apps.echo:nope",), (), "module 'tests.run_apps.echo' has no attribute 'nope'"),
        (("tests.run_apps.noapp",), (), "module 'tests.run_apps.noapp' has neither 'application'"),
        (("tests.run_apps.noapp:wsgi",), (), "tests.run_apps.noapp:wsgi is a NoneType, not a WSGI"),
        ((ECHO, "--server", "nope"), (), "argument --server: invalid choice: 'nope'"),
        ((ECHO, "--port", "70000"), (), "argument --port: not a port number"),
        (
            (ECHO, "--server", "gevent"),
            ("gevent",),
            "--server gevent, but gevent is not installed (pip install gevent)",
        ),
        (
            (ECHO,),
            ("gevent", "eventlet", "gunicorn", "werkzeug"),
            "no supported server can be imported: gevent, eventlet, gunicorn and werkzeug are "
            "not installed",
        ),
        ((ECHO, "--port", "BUSY"), (), "cannot listen on 127.0.0.1:BUSY: Address already in use"),
    ],
    ids=[
        "module",
        "file",
        "attribute",
        "default-attribute",
        "not-callable",
        "server",
        "port",
        "not-installed",
        "none-installed",
        "busy-port",
    ],
)
def test_cli_mistake_is_one_line_and_status_2(
    args: tuple[str, ...], hide: tuple[str, ...], message: str, busy_port: int
) -> None:
    args = tuple(arg.replace("BUSY", str(busy_port)) for arg in args)
    result = _run_cli(*args, hide=hide)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wsgiws: error: " + message.replace("BUSY", str(busy_port))), lines


def test_cli_error_in_the_app_module_shows_its_traceback() -> None:
    # The module's own bug: its traceback, from its own frames, then the line.
    result = _run_cli("tests/run_apps/broken.py")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):", result.stderr
    assert "tests/run_apps/broken.py" in lines[1], result.stderr
    assert "KeyError: 'threads'" in lines, result.stderr
    assert lines[-1] == (
        "wsgiws: error: importing tests/run_apps/broken.py raised KeyError (traceback above)"
    )


# -- run() in this process: the mistakes it raises before serving ------------------------------


def _app(environ: Any, start_response: Any) -> list[bytes]:
    return []


def test_run_unknown_server_raises() -> None:
    with pytest.raises(ValueError, match="unknown server 'nope': choose one of auto, gevent"):
        wsgiws.run(_app, port=0, server="nope")  # type: ignore[arg-type]


def test_run_busy_port_raises(busy_port: int) -> None:
    need("werkzeug")
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{busy_port}") as raised:
        wsgiws.run(_app, port=busy_port, server="werkzeug")
    assert raised.value.errno == errno.EADDRINUSE
