"""Graceful shutdown: a stopping server closes its WebSockets with 1001, then exits.

Each case is a server process of its own (these tests stop servers) running
``tests.live.shutdown_app:app``, with three raw-socket clients on ``/hold``.
Then the server is stopped, and each client must get a Close frame with 1001
(going away) before EOF; each handler must log ``ConnectionClosed(1001)``; the
server must exit (or, on a reload or ``--max-requests``, its old worker be
replaced) within its graceful timeout; and the log must hold no error line
but the server's own shutdown lines.

The cases:

* gunicorn's gthread, gevent and eventlet workers on SIGTERM (graceful stop),
  SIGHUP (a reload: new workers replace the old), ``--max-requests`` (the
  worker retires itself, no signal), and SIGINT and SIGQUIT (the quick stop:
  only the Close frames are required there, the process does not wait for
  the answers);
* the launcher (``python -m wsgiws``) with each of its servers, on Ctrl-C
  (SIGINT to its process group, as a terminal sends it) and SIGTERM;
* the example scripts that start gevent.pywsgi, eventlet.wsgi and Werkzeug
  themselves and call ``wsgiws.shutdown()`` from their shutdown path.

The cases run four at a time, each on its own ports: one run of them all
(a module fixture) feeds the parametrised tests, which assert one case each.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import timeout

from ._harness import ROOT, LiveServer, ServerUnavailable, _children, error_lines, wait_for
from ._tls import TLS, make_certificates
from ._wire import CLOSE, Frame, RawClient

APP = "tests.live.shutdown_app:app"
CLIENTS = 3
#: The graceful timeout the gunicorn cases run with (the launcher's is wsgiws._run.GRACE).
GRACEFUL = 5
LAUNCHER_GRACE = 2
#: The worker retires after this many requests: the readiness probe makes 2
#: (/health, /stats), the WebSockets 3; the test then requests until it does.
MAX_REQUESTS = 6
#: Cases run at once (2 cores: the timings stay meaningful).
PARALLEL = 4

WORKERS = ("gthread", "gevent", "eventlet")
GUNICORN_STOPS = ("SIGTERM", "SIGHUP", "max-requests", "SIGINT", "SIGQUIT")
#: The quick stops: the worker exits 0.1 s after the signal, without waiting.
QUICK = ("SIGINT", "SIGQUIT")
LAUNCHED = ("gevent", "eventlet", "gunicorn", "werkzeug")
LAUNCHER_STOPS = ("SIGINT", "SIGTERM")
SCRIPTS = {
    "gevent": "gevent_server",
    "eventlet": "eventlet_server",
    "werkzeug": "werkzeug_server",
}

#: gunicorn's own lines about stopping and replacing workers: expected here.
_SHUTDOWN_LINES = re.compile(
    r"Worker exiting|Booting worker|Handling signal|Shutting down|Autorestarting|"
    r"was sent SIG(TERM|QUIT|INT)|Worker reloading|Hang up"
)

Case = tuple[str, str, str]  # (kind, server, stop)


def _cases() -> list[Case]:
    cases: list[Case] = []
    cases += [("gunicorn", worker, stop) for worker in WORKERS for stop in GUNICORN_STOPS]
    # Over wss://, gunicorn terminating TLS itself (--certfile): the Close frames
    # and the answers go through the SSL objects.
    cases += [("gunicorn", f"{worker}+tls", "SIGTERM") for worker in WORKERS]
    cases += [("launcher", server, stop) for server in LAUNCHED for stop in LAUNCHER_STOPS]
    cases += [("script", server, stop) for server in SCRIPTS for stop in LAUNCHER_STOPS]
    return cases


CASES = _cases()


def _case_id(case: Case) -> str:
    return "-".join(case)


@dataclass
class Outcome:
    """What one case saw."""

    case: Case
    #: Why the case could not run (a server not installed), or None.
    skipped: str | None = None
    #: The close code each client got before EOF (None: EOF or a reset first).
    codes: list[int | None] = field(default_factory=list)
    #: What went wrong on each client's side, if anything.
    client_errors: list[str] = field(default_factory=list)
    #: Seconds from the stop to the last client's Close frame.
    close_after: float | None = None
    #: Seconds from the stop to the exit (or the old worker's replacement); None: not in time.
    exit_after: float | None = None
    exit_status: int | None = None
    log: str = ""
    error: str | None = None

    @property
    def quick(self) -> bool:
        return self.case[2] in QUICK and self.case[0] == "gunicorn"


# -- the servers --------------------------------------------------------------------------


@dataclass
class GunicornServer(LiveServer):
    """A LiveServer running gunicorn with extra options (the last of an option wins)."""

    extra: tuple[str, ...] = ()

    def command(self, fd: int) -> tuple[list[str], dict[str, str]]:
        cmd, env = super().command(fd)
        return [*cmd[:-1], *self.extra, cmd[-1]], env


@dataclass
class Process:
    """A server started by a command that prints the URL it serves (port 0 given)."""

    argv: list[str]
    log_path: Path
    announce: re.Pattern[str]
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def port() -> int | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServerUnavailable(f"exited {self.proc.returncode}: {self.log()[-2000:]}")
            found = self.announce.search(self.log())
            return int(found.group(1)) if found else None

        self.port = wait_for(port, 30, f"{self.argv} to announce its port")

        def healthy() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout(5)) as sock:
                    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return sock.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                return False

        wait_for(healthy, 30, f"{self.argv} to answer /health")

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout(10))


# -- one case -----------------------------------------------------------------------------


def _watch_client(client: RawClient, started: threading.Event, out: dict[str, object]) -> None:
    """Read until the Close (echo it, as a client does) and the EOF; note what came when."""
    started.wait()
    try:
        while True:
            message = client.recv_message()
            if isinstance(message, Frame):
                break
        assert message.opcode == CLOSE
        out["code"] = message.close_code
        out["at"] = time.monotonic()
        with contextlib.suppress(OSError):
            client.send_close(message.close_code or 1000)
        with contextlib.suppress(AssertionError):  # a quick stop may reset
            client.read_until_eof(GRACEFUL + 5)
    except (EOFError, OSError, AssertionError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        client.close()


def _open_clients(
    port: int, name: str, ssl_context: ssl.SSLContext | None = None
) -> list[RawClient]:
    clients = []
    for i in range(CLIENTS):
        client = RawClient.connect(
            ("127.0.0.1", port), f"/hold?id={name}{i}", ssl_context=ssl_context
        )
        assert client.recv_message() == "ready"
        clients.append(client)
    return clients


def _run_case(case: Case, log_dir: Path) -> Outcome:
    kind, server_id, stop = case
    outcome = Outcome(case)
    log_path = log_dir / f"{_case_id(case)}.log"
    live: GunicornServer | None = None
    process: Process | None = None
    client_context: ssl.SSLContext | None = None
    try:
        if kind == "gunicorn":
            extra = ["--graceful-timeout", str(GRACEFUL)]
            if stop == "max-requests":
                extra += ["--max-requests", str(MAX_REQUESTS)]
            worker, _, over = server_id.partition("+")
            tls = None
            if over == "tls":
                (log_dir / _case_id(case)).mkdir()
                tls = TLS(make_certificates(log_dir / _case_id(case)))
            live = GunicornServer(f"gunicorn-{worker}", log_path, APP, tls=tls, extra=tuple(extra))
            live.start()
            client_context = live.ssl_context
            port, pid = live.port, live.proc.pid  # type: ignore[union-attr]
            mark = live.mark()
        else:
            if kind == "launcher":
                argv = [sys.executable, "-m", "wsgiws", APP, "--server", server_id, "--port", "0"]
                announce = re.compile(r"serving on http://127\.0\.0\.1:(\d+)/")
            else:
                # The example's serve() with the test app (importing it patches first).
                code = (
                    "import sys; sys.path.insert(0, 'examples'); "
                    f"import {SCRIPTS[server_id]} as s; "
                    "from tests.live.shutdown_app import app; s.serve(app, '127.0.0.1', 0)"
                )
                argv = [sys.executable, "-c", code]
                announce = re.compile(r"on http://127\.0\.0\.1:(\d+)/")
            process = Process(argv, log_path, announce)
            process.start()
            assert process.proc is not None
            port, pid = process.port, process.proc.pid
            mark = log_path.stat().st_size
    except ServerUnavailable as exc:
        outcome.skipped = str(exc)
        return outcome

    try:
        old_workers = frozenset(_children(pid)) if kind == "gunicorn" else frozenset()
        clients = _open_clients(port, "c", client_context)
        over_tls = [isinstance(c.sock, ssl.SSLSocket) for c in clients]
        assert over_tls == [client_context is not None] * CLIENTS, over_tls
        started = threading.Event()
        results: list[dict[str, object]] = [{} for _ in clients]
        threads = [
            threading.Thread(target=_watch_client, args=(c, started, r))
            for c, r in zip(clients, results)
        ]
        for thread in threads:
            thread.start()
        t0 = time.monotonic()
        started.set()
        if stop == "max-requests":
            _exhaust(port, log_path)
        elif kind != "gunicorn" and stop == "SIGINT":
            os.killpg(pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        else:
            os.kill(pid, getattr(signal, stop))
        limit = (LAUNCHER_GRACE if kind != "gunicorn" else GRACEFUL) + 1.0
        replaced = kind == "gunicorn" and stop in ("SIGHUP", "max-requests")
        proc = live.proc if live is not None else process.proc  # type: ignore[union-attr]
        assert proc is not None
        deadline = t0 + timeout(limit)
        while time.monotonic() < deadline:
            if replaced:
                now = frozenset(_children(pid))
                if now and not now & old_workers:
                    outcome.exit_after = time.monotonic() - t0
                    break
            elif proc.poll() is not None:
                outcome.exit_after = time.monotonic() - t0
                outcome.exit_status = proc.returncode
                break
            time.sleep(0.02)
        for thread in threads:
            thread.join(timeout(GRACEFUL + 10))
        outcome.codes = [r.get("code") for r in results]  # type: ignore[misc]
        outcome.client_errors = [str(r["error"]) for r in results if "error" in r]
        times = [r["at"] for r in results if "at" in r]
        if times:
            outcome.close_after = max(times) - t0  # type: ignore[operator]
        if replaced and outcome.exit_after is not None:
            # The new worker must have booted before the log is read: its boot line is expected.
            time.sleep(0.2)
        outcome.log = log_path.read_bytes()[mark:].decode("utf-8", "replace")
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):
            outcome.log = log_path.read_bytes().decode("utf-8", "replace")
    finally:
        if live is not None:
            live.stop()
        if process is not None:
            process.stop()
    return outcome


def _exhaust(port: int, log_path: Path) -> None:
    """Make plain requests until the worker says it retires (``--max-requests``)."""
    for _ in range(MAX_REQUESTS + 2):
        if b"Autorestarting worker" in log_path.read_bytes():
            return
        with socket.create_connection(("127.0.0.1", port), timeout(10)) as sock:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            with contextlib.suppress(OSError):
                while sock.recv(65536):
                    pass
    raise AssertionError("the worker never said it would retire after --max-requests")


# -- the run, and one test per case ----------------------------------------------------------


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Case, Outcome]]:
    # Only the cases whose tests were selected (-k) run.
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if item.module is sys.modules[__name__] and hasattr(item, "callspec")
    ]
    log_dir = tmp_path_factory.mktemp("shutdown")
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = dict(zip(selected, pool.map(lambda c: _run_case(c, log_dir), selected)))
    report = os.environ.get("WSGIWS_SHUTDOWN_REPORT")
    if report:
        with open(report, "w", encoding="utf-8") as f:
            for case, o in results.items():
                f.write(
                    f"{_case_id(case)}\t{o.skipped or o.error or 'ran'}\tcodes={o.codes}\t"
                    f"close={o.close_after}\texit={o.exit_after}\tstatus={o.exit_status}\n"
                )
    yield results


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_shutdown(case: Case, outcomes: dict[Case, Outcome]) -> None:
    o = outcomes[case]
    if o.skipped:
        pytest.skip(o.skipped)
    where = f"\n--- log ---\n{o.log[-4000:]}"
    assert o.error is None, o.error + where
    assert o.codes == [1001] * CLIENTS, f"close codes {o.codes}; {o.client_errors}{where}"
    kind, _, stop = case
    grace = GRACEFUL if kind == "gunicorn" else LAUNCHER_GRACE
    assert o.exit_after is not None, f"still running {grace + 1}s after {stop}{where}"
    if kind != "gunicorn" or stop in ("SIGTERM", "SIGINT", "SIGQUIT"):
        assert o.exit_status == 0, f"exit status {o.exit_status}{where}"
    if not o.quick:
        assert not o.client_errors, f"{o.client_errors}{where}"
        ended = re.findall(r"handler c\d: (.*)", o.log)
        assert sorted(ended) == ["ConnectionClosed(1001)"] * CLIENTS, f"handlers: {ended}{where}"
        assert "graceful timeout" not in o.log, where
    errors = [line for line in error_lines(o.log) if not _SHUTDOWN_LINES.search(line)]
    assert not errors, "\n".join(errors) + where
