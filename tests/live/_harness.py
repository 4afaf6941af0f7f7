"""Live WSGI servers in subprocesses: start, probe, read logs, stop.

Each server listens on a socket the test process binds (127.0.0.1, port 0)
and hands down by file descriptor, so the port is known before the child runs
and no other process can take it. The child's stdout and stderr go to one log
file; tests read the slice of it written since a mark.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tests.conftest import timeout

from . import _tls

ROOT = Path(__file__).resolve().parents[2]
#: The app a server runs unless a test asks for another (``MODULE:NAME``).
APP = "tests.live.apps:app"

#: Servers wsgiws supports, and the two that must get a clear 501. The
#: ``-unpatched`` green servers run without monkey-patching: the library must
#: find gevent's or eventlet's primitives from the socket alone.
SUPPORTED = (
    "werkzeug",
    "gunicorn-gthread",
    "gunicorn-gevent",
    "gunicorn-eventlet",
    "eventlet-wsgi",
    "gevent-pywsgi",
    "gevent-pywsgi-unpatched",
    "eventlet-wsgi-unpatched",
)
UNSUPPORTED = ("waitress", "wsgiref")
#: gunicorn's sync worker: two workers, each serving one connection at a time.
#: Not in SUPPORTED: the tests run there assume a server that serves any number
#: of connections at once (20 WebSockets together; HTTP requests to /stats and
#: /last-close while WebSockets are open). See test_sync_worker.py.
SYNC = "gunicorn-sync"
SYNC_WORKERS = 2
#: One sync worker with ``--timeout 2``, started by the one test that lets the
#: arbiter abort a worker in the middle of a WebSocket.
SYNC_TIMEOUT = "gunicorn-sync-timeout"
SYNC_TIMEOUT_SECONDS = 2

#: The framework apps (``tests/live/frameworks``), each run on every supported
#: server and on gunicorn-sync: their tests open one WebSocket at a time, and
#: make HTTP requests beside it that the second sync worker answers.
FRAMEWORKS = {
    "flask": "tests.live.frameworks.flask_app:app",
    "bottle": "tests.live.frameworks.bottle_app:app",
    "pyramid": "tests.live.frameworks.pyramid_app:app",
}
FRAMEWORK_SERVERS = (*SUPPORTED, SYNC)

#: Environment per server id: which green library an unpatched server's app uses.
_SERVER_ENV = {
    "gevent-pywsgi-unpatched": {"WSGIWS_TEST_GREEN": "gevent"},
    "eventlet-wsgi-unpatched": {"WSGIWS_TEST_GREEN": "eventlet"},
}

#: Where ./run-tests installs gunicorn 25.3.0, the last with the eventlet worker.
GUNICORN25 = Path(os.environ.get("WSGIWS_GUNICORN25_PATH") or ROOT / ".cache" / "gunicorn25")

#: The launcher's exit status for "this server cannot be imported here".
CANNOT_IMPORT = 3

#: Lines that say something went wrong in the server process. Deprecation
#: noise (any line naming a Warning) is not an error line.
_ERROR_PATTERNS = [
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"\b(ERROR|CRITICAL|FATAL|EXCEPTION)\b"),
    re.compile(r"^\s*([\w.]+\.)?\w*(Error|Exception|Exit|Interrupt)\b(:|$)"),  # an exception
    re.compile(r"\bfailed with\b"),  # gevent: "<Greenlet ...> failed with X"
    re.compile(r"Error on request"),  # werkzeug
    re.compile(r'HTTP/1\.[01]" 5\d\d\b'),  # an access-log line for a 5xx answer
    re.compile(r"WORKER TIMEOUT|was sent SIG|Worker exiting|Booting worker"),  # gunicorn
]
_NOISE = re.compile(r"Warning\b")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_lines(text: str) -> list[str]:
    """The lines of a server log slice that report an error."""
    lines = _ANSI.sub("", text).splitlines()
    return [
        line
        for line in lines
        if not _NOISE.search(line) and any(p.search(line) for p in _ERROR_PATTERNS)
    ]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the test process dies (Linux), so that a
    killed pytest leaves no server behind. gunicorn's master passes SIGTERM on to its worker."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux ``/proc``; empty elsewhere)."""
    found = set()
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = entry.read_text()
        except OSError:  # the process is gone
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.add(int(entry.parent.name))
    return found


class ServerUnavailable(Exception):
    """The server cannot run here (not importable, or it did not start)."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def wait_for(
    predicate: Callable[[], Any], seconds: float, what: str, interval: float = 0.02
) -> Any:
    """Poll ``predicate`` until it returns something truthy, for ``timeout(seconds)``.

    Fails with ``what`` (and the last value seen) when the time is up.
    """
    limit = timeout(seconds)
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {limit:.1f}s for {what}; last seen: {value!r}")
        time.sleep(interval)


@dataclass
class LiveServer:
    """One server subprocess on its own listening socket, running ``app``."""

    server_id: str
    log_path: Path
    app: str = APP
    proc: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"
    port: int = 0
    #: The worker that answered the readiness probe, and every worker then.
    worker_pid: int | None = None
    workers: frozenset[int] = frozenset()
    state_dir: Path | None = None
    #: Set: the server terminates TLS itself (https://, wss://); see tests/live/_tls.py.
    tls: _tls.TLS | None = None
    _log_file: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The server id (``+tls`` or ``+adhoc`` over TLS), and the app's module when it
        is not the default app."""
        sid = self.server_id if self.tls is None else f"{self.server_id}+{self.tls.mode}"
        if self.app == APP:
            return sid
        return f"{sid}[{self.app.rpartition('.')[2].partition(':')[0]}]"

    # -- addresses ------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://{self.host}:{self.port}"

    def ws_url(self, path: str) -> str:
        scheme = "ws" if self.tls is None else "wss"
        return f"{scheme}://{self.host}:{self.port}{path}"

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The client context that verifies this server's certificate; None without TLS."""
        return None if self.tls is None else self.tls.client_context(self.address)

    @property
    def pids(self) -> list[int]:
        """The server's processes: the one started, and the worker if it is another."""
        assert self.proc is not None
        pids = [self.proc.pid]
        if self.worker_pid is not None and self.worker_pid != self.proc.pid:
            pids.append(self.worker_pid)
        return pids

    def current_workers(self) -> frozenset[int]:
        """The worker processes now: the master's children (gunicorn), or the server itself."""
        assert self.proc is not None
        return frozenset(_children(self.proc.pid)) or frozenset({self.proc.pid})

    # -- the log --------------------------------------------------------------------

    def mark(self) -> int:
        """A position in the log; :meth:`log_since` reads from there."""
        return self.log_path.stat().st_size

    def log_since(self, mark: int = 0) -> str:
        with self.log_path.open("rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    # -- HTTP -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        """One request on its own connection (``Connection: close``)."""
        conn: http.client.HTTPConnection
        if self.tls is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout(10))
        else:
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout(10), context=self.ssl_context
            )
        try:
            all_headers = {"Connection": "close", **(headers or {})}
            conn.request(method, path, body=body, headers=all_headers)
            resp = conn.getresponse()
            body_bytes = resp.read()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body_bytes)
        finally:
            conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers)

    def stats(self) -> dict[str, Any]:
        resp = self.get("/stats")
        assert resp.status == 200, resp
        return resp.json()  # type: ignore[no-any-return]

    # -- life cycle ---------------------------------------------------------------------

    @property
    def expected_workers(self) -> int:
        """How many worker processes gunicorn forks (0: the server is one process)."""
        if self.server_id == SYNC:
            return SYNC_WORKERS
        return 1 if self.server_id.startswith("gunicorn-") else 0

    def command(self, fd: int) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for name in ("WSGIWS_TEST_GREEN", "WSGIWS_TEST_STATE_DIR", _tls.ENV):
            env.pop(name, None)
        env.update(_SERVER_ENV.get(self.server_id, {}))
        if self.tls is not None:
            env[_tls.ENV] = self.tls.launcher_env()
        if self.state_dir is not None:
            env["WSGIWS_TEST_STATE_DIR"] = str(self.state_dir)
        paths = [str(ROOT)]
        workers = str(self.expected_workers)
        gunicorn = [sys.executable, "-m", "gunicorn", "--bind", f"fd://{fd}", "--workers", workers]
        gunicorn += ["--graceful-timeout", "2", "--log-level", "info", "--chdir", str(ROOT)]
        # Without --no-control-socket every master shares ~/.gunicorn/gunicorn.ctl.
        gunicorn += ["--access-logfile", "-", "--no-control-socket"]
        if self.tls is not None and self.server_id.startswith("gunicorn-"):
            gunicorn += self.tls.gunicorn_args()
        sid, app = self.server_id, self.app
        if sid == "gunicorn-gthread":
            cmd = [*gunicorn, "-k", "gthread", "--threads", "32", app]
        elif sid == "gunicorn-gevent":
            cmd = [*gunicorn, "-k", "gevent", app]
        elif sid == SYNC:
            cmd = [*gunicorn, "-k", "sync", "--timeout", "30", app]
        elif sid == SYNC_TIMEOUT:
            cmd = [*gunicorn, "-k", "sync", "--timeout", str(SYNC_TIMEOUT_SECONDS), app]
        elif sid == "gunicorn-eventlet":
            if not (GUNICORN25 / "gunicorn" / "__init__.py").is_file():
                raise ServerUnavailable(
                    f"gunicorn 25.3.0 is not installed in {GUNICORN25} (./run-tests installs it; "
                    "or set WSGIWS_GUNICORN25_PATH)"
                )
            paths.insert(0, str(GUNICORN25))
            cmd = [*gunicorn, "-k", "eventlet", app]
        else:
            cmd = [sys.executable, "-m", "tests.live._launch", sid, app, str(fd)]
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))
        return cmd, env

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, 0))
            listener.listen(128)
            self.port = listener.getsockname()[1]
            fd = listener.fileno()
            cmd, env = self.command(fd)
            self._log_file = self.log_path.open("ab")
            self._log_file.write(f"$ {' '.join(cmd)}\n".encode())
            self._log_file.flush()
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                pass_fds=(fd,),
                start_new_session=True,  # its own process group: teardown reaches workers
                preexec_fn=_die_with_parent,
            )
        finally:
            # The child holds its copy; with ours closed, a dead child means
            # "connection refused", not a connection that hangs.
            listener.close()
        self._wait_ready()

    def _wait_ready(self, seconds: float = 30) -> None:
        assert self.proc is not None
        limit = timeout(seconds)
        deadline = time.monotonic() + limit
        last: object = None
        while time.monotonic() < deadline:
            status = self.proc.poll()
            if status is not None:
                log = self.log_since()
                if status == CANNOT_IMPORT:
                    reason = next(
                        (line for line in log.splitlines() if line.startswith("SKIP: ")), log
                    )
                    raise ServerUnavailable(reason.removeprefix("SKIP: "))
                raise ServerUnavailable(
                    f"{self.name} exited with status {status} before it answered; "
                    f"log:\n{log[-3000:]}"
                )
            try:
                resp = self.get("/health")
                if resp.status == 200 and self._all_workers_booted():
                    self.worker_pid = self.stats()["pid"]
                    self.workers = self.current_workers()
                    return
                last = resp.status
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        self.stop()
        raise ServerUnavailable(
            f"{self.name} did not answer GET /health within {limit:.0f}s (last: {last!r}); "
            f"log:\n{self.log_since()[-3000:]}"
        )

    def _all_workers_booted(self) -> bool:
        """Every gunicorn worker has booted: none of their boot lines lands in a test's log."""
        if self.expected_workers < 2:
            return True
        booted = self.log_since().count("Booting worker with pid")
        return booted == self.expected_workers == len(self.current_workers())

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL whatever is left after a deadline."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout(10))
        # The group outlives its leader if a worker lingers: SIGKILL the rest.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout(10))
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class ServerPool:
    """Servers started on first use, once per session, keyed by server id and app."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: dict[tuple[str, ...], LiveServer] = {}
        self.unavailable: dict[tuple[str, ...], str] = {}

    def get(self, server_id: str, app: str = APP, tls: _tls.TLS | None = None) -> LiveServer:
        """The server running ``app`` (over ``tls`` if given); raises
        :class:`ServerUnavailable` if it cannot run."""
        key = (server_id, app) if tls is None else (server_id, app, tls.mode)
        if key in self.unavailable:
            raise ServerUnavailable(self.unavailable[key])
        server = self.servers.get(key)
        if server is not None:
            assert server.proc is not None
            status = server.proc.poll()
            if status is not None:
                raise AssertionError(
                    f"{server.name} died (status {status}); log tail:\n{server.log_since()[-3000:]}"
                )
            return server
        server = LiveServer(server_id, Path(), app, tls=tls)
        server.log_path = self.log_dir / f"{server.name}.log"
        if server.expected_workers > 1:
            server.state_dir = self.log_dir / f"{server.name}.state"
            server.state_dir.mkdir()
        try:
            server.start()
        except BaseException as exc:
            server.stop()
            if isinstance(exc, ServerUnavailable):
                self.unavailable[key] = str(exc)
            raise
        self.servers[key] = server
        return server

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
