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
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tests.conftest import timeout

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.live.apps:app"

#: Servers wsgiws supports, and the two that must get a clear 501.
SUPPORTED = (
    "werkzeug",
    "gunicorn-gthread",
    "gunicorn-gevent",
    "gunicorn-eventlet",
    "eventlet-wsgi",
    "gevent-pywsgi",
)
UNSUPPORTED = ("waitress", "wsgiref")

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
    """One server subprocess on its own listening socket."""

    server_id: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"
    port: int = 0
    worker_pid: int | None = None
    _log_file: Any = field(default=None, repr=False)

    # -- addresses ------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://{self.host}:{self.port}{path}"

    @property
    def pids(self) -> list[int]:
        """The server's processes: the one started, and the worker if it is another."""
        assert self.proc is not None
        pids = [self.proc.pid]
        if self.worker_pid is not None and self.worker_pid != self.proc.pid:
            pids.append(self.worker_pid)
        return pids

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
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout(10))
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

    def command(self, fd: int) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        paths = [str(ROOT)]
        gunicorn = [sys.executable, "-m", "gunicorn", "--bind", f"fd://{fd}", "--workers", "1"]
        gunicorn += ["--graceful-timeout", "2", "--log-level", "info", "--chdir", str(ROOT)]
        # Without --no-control-socket every master shares ~/.gunicorn/gunicorn.ctl.
        gunicorn += ["--access-logfile", "-", "--no-control-socket"]
        sid = self.server_id
        if sid == "gunicorn-gthread":
            cmd = [*gunicorn, "-k", "gthread", "--threads", "32", APP]
        elif sid == "gunicorn-gevent":
            cmd = [*gunicorn, "-k", "gevent", APP]
        elif sid == "gunicorn-eventlet":
            if not (GUNICORN25 / "gunicorn" / "__init__.py").is_file():
                raise ServerUnavailable(
                    f"gunicorn 25.3.0 is not installed in {GUNICORN25} (./run-tests installs it; "
                    "or set WSGIWS_GUNICORN25_PATH)"
                )
            paths.insert(0, str(GUNICORN25))
            cmd = [*gunicorn, "-k", "eventlet", APP]
        else:
            cmd = [sys.executable, "-m", "tests.live._launch", sid, APP, str(fd)]
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
                    f"{self.server_id} exited with status {status} before it answered; "
                    f"log:\n{log[-3000:]}"
                )
            try:
                resp = self.get("/health")
                if resp.status == 200:
                    self.worker_pid = self.stats()["pid"]
                    return
                last = resp.status
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        self.stop()
        raise ServerUnavailable(
            f"{self.server_id} did not answer GET /health within {limit:.0f}s (last: {last!r}); "
            f"log:\n{self.log_since()[-3000:]}"
        )

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
    """Servers started on first use, once per session, keyed by id."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: dict[str, LiveServer] = {}
        self.unavailable: dict[str, str] = {}

    def get(self, server_id: str) -> LiveServer:
        """The running server; raises :class:`ServerUnavailable` if it cannot run."""
        if server_id in self.unavailable:
            raise ServerUnavailable(self.unavailable[server_id])
        server = self.servers.get(server_id)
        if server is not None:
            assert server.proc is not None
            status = server.proc.poll()
            if status is not None:
                raise AssertionError(
                    f"{server_id} died (status {status}); log tail:\n{server.log_since()[-3000:]}"
                )
            return server
        server = LiveServer(server_id, self.log_dir / f"{server_id}.log")
        try:
            server.start()
        except BaseException as exc:
            server.stop()
            if isinstance(exc, ServerUnavailable):
                self.unavailable[server_id] = str(exc)
            raise
        self.servers[server_id] = server
        return server

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
