"""The servers under test: which exist, whether each can run here, and starting one.

A :class:`Target` is one library under one server, serving an echo at
``/echo`` on 127.0.0.1 (see :mod:`bench.apps`, :mod:`bench.floor`). :func:`start`
runs it in a subprocess tree of its own (one gunicorn worker under its master,
or one process), pinned to one CPU, and returns a :class:`Server` once a real
WebSocket handshake got 101 and a message came back. The :class:`Server` reads
the tree's CPU time and memory with psutil, and stops it.

Launch details (as tests/live/_harness.py does, for the same reasons): the
parent binds the listening socket on port 0 and hands it down by file
descriptor, so the port is known before the child runs and nothing else can
take it; the child runs in its own session (teardown reaches gunicorn's worker
through the process group) and gets SIGTERM if the thread that started it dies
(Linux ``PR_SET_PDEATHSIG``: call :func:`start` from a thread that outlives the
server, such as the main thread). Its stdout and stderr go to a log file of
its own, named in every error.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import psutil

from . import _frames

__all__ = [
    "REFERENCE",
    "TARGETS",
    "Server",
    "ServerFailed",
    "Target",
    "TargetUnavailable",
    "get",
    "start",
    "unavailable",
    "versions",
]

ROOT = Path(__file__).resolve().parents[1]
#: gunicorn 25.3.0, the last with the eventlet worker (26 removed it); ./run-tests
#: installs it there (tests/live/_harness.py reads the same variable).
GUNICORN25 = Path(os.environ.get("WSGIWS_GUNICORN25_PATH") or ROOT / ".cache" / "gunicorn25")
HOST = "127.0.0.1"
PATH = "/echo"
#: The listening socket's backlog, gunicorn's default. (asyncio's create_server
#: calls listen() again with its own default, 100: websockets/asyncio keeps it.)
BACKLOG = 2048


@dataclass(frozen=True)
class Target:
    """One library under one server."""

    id: str  # "wsgiws/gunicorn-gevent"
    library: str  # "wsgiws" | "flask-sock" | "websockets" | "floor"
    server: str  # "werkzeug" | "gunicorn-gthread" | ... | "asyncio" | "sync" | "threads"
    model: str  # "threads" | "gevent" | "eventlet" | "asyncio"

    @property
    def gunicorn(self) -> bool:
        return self.server.startswith("gunicorn-")


#: The WSGI servers, each with its concurrency model.
WSGI_SERVERS = (
    ("werkzeug", "threads"),
    ("gunicorn-gthread", "threads"),
    ("gunicorn-gevent", "gevent"),
    ("gunicorn-eventlet", "eventlet"),
    ("eventlet-wsgi", "eventlet"),
    ("gevent-pywsgi", "gevent"),
)

TARGETS: tuple[Target, ...] = (
    *(Target(f"wsgiws/{s}", "wsgiws", s, m) for s, m in WSGI_SERVERS),
    *(Target(f"flask-sock/{s}", "flask-sock", s, m) for s, m in WSGI_SERVERS),
    Target("websockets/asyncio", "websockets", "asyncio", "asyncio"),
    Target("websockets/sync", "websockets", "sync", "threads"),
    Target("floor/threads", "floor", "threads", "threads"),
)
#: The target every ratio is taken against.
REFERENCE = "websockets/asyncio"


def get(target_id: str) -> Target:
    """The target with this id (KeyError naming the known ones otherwise)."""
    for target in TARGETS:
        if target.id == target_id:
            return target
    raise KeyError(f"no target {target_id!r}; known: {', '.join(t.id for t in TARGETS)}")


class TargetUnavailable(Exception):
    """The target cannot run here (a module or gunicorn 25.3 is missing)."""


class ServerFailed(Exception):
    """The target's server exited, or never answered the readiness probe."""


# -- availability ----------------------------------------------------------------

_LIBRARY_MODULES = {
    "wsgiws": ("wsgiws", "wsproto", "webob"),
    "flask-sock": ("flask", "flask_sock", "simple_websocket"),
    "websockets": ("websockets",),
    "floor": (),
}
_SERVER_MODULES = {
    "werkzeug": ("werkzeug",),
    "gunicorn-gthread": ("gunicorn",),
    "gunicorn-gevent": ("gunicorn", "gevent"),
    "gunicorn-eventlet": ("eventlet",),  # gunicorn itself: GUNICORN25
    "eventlet-wsgi": ("eventlet",),
    "gevent-pywsgi": ("gevent",),
}


def unavailable(target: Target) -> str | None:
    """Why ``target`` cannot run here, in one line; None when it can."""
    modules = _LIBRARY_MODULES[target.library] + _SERVER_MODULES.get(target.server, ())
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if target.library == "websockets" and not missing:
        # websockets.asyncio.server came in websockets 13.
        with contextlib.suppress(ImportError):
            if importlib.util.find_spec(f"websockets.{target.server}.server") is None:
                return f"websockets {_version('websockets')} has no {target.server} server"
    if missing:
        return f"not installed: {', '.join(missing)} (pip install -e '.[bench]')"
    if target.server == "gunicorn-eventlet" and not (GUNICORN25 / "gunicorn").is_dir():
        return (
            f"gunicorn 25.3.0 (the last with the eventlet worker) is not in {GUNICORN25}; "
            "./run-tests installs it, or set WSGIWS_GUNICORN25_PATH"
        )
    return None


def _version(dist: str, path: Sequence[str] | None = None) -> str:
    if path is not None:
        found = [d for d in importlib.metadata.distributions(path=list(path)) if d.name == dist]
        return found[0].version if found else "not installed"
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """The installed version of every library and server the targets run."""
    found = {"python": platform.python_version()}
    for dist in (
        "wsgiws",
        "wsproto",
        "flask",
        "flask-sock",
        "simple-websocket",
        "websockets",
        "werkzeug",
        "gunicorn",
    ):
        found[dist] = _version(dist)
    found["gunicorn (eventlet worker)"] = _version("gunicorn", [str(GUNICORN25)])
    for dist in ("gevent", "eventlet", "psutil"):
        found[dist] = _version(dist)
    return found


# -- the command line -----------------------------------------------------------

_APPS = {"wsgiws": "wsgiws_app", "flask-sock": "flask_sock_app"}
_GUNICORN_WORKERS = {
    # W6 holds 1,000 idle WebSockets, and gthread gives each one a thread.
    "gunicorn-gthread": ["-k", "gthread", "--threads", "1100", "--worker-connections", "12000"],
    "gunicorn-gevent": ["-k", "gevent", "--worker-connections", "12000"],
    "gunicorn-eventlet": ["-k", "eventlet", "--worker-connections", "12000"],
}


def command(target: Target, fd: int, app_module: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that serve ``target`` on listening socket ``fd``."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    paths = [str(ROOT)]
    if target.gunicorn:
        if target.server == "gunicorn-eventlet":
            paths.insert(0, str(GUNICORN25))
        cmd = [sys.executable, "-m", "gunicorn", "--bind", f"fd://{fd}", "--workers", "1"]
        # No shared ~/.gunicorn/gunicorn.ctl; no access log (the default).
        cmd += ["--no-control-socket", "--log-level", "warning", "--timeout", "120"]
        cmd += ["--graceful-timeout", "2", "--chdir", str(ROOT)]
        cmd += [*_GUNICORN_WORKERS[target.server], f"{app_module}:{_APPS[target.library]}"]
    else:
        cmd = [sys.executable, "-m", "bench._serve", target.id, str(fd)]
        if app_module != "bench.apps":
            cmd.append(app_module)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))
    return cmd, env


def _nofile_limit() -> tuple[int, int]:
    """RLIMIT_NOFILE with the soft limit raised to the hard one (W6 holds 10,000 sockets)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        try:
            hard = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            hard = 1048576
    return hard, hard


def _preexec(cpu: int | None) -> Callable[[], None]:
    """What the child does between fork and exec; prepared here, in the parent, so that
    the child only makes system calls (no import, no allocation of note)."""
    nofile = _nofile_limit()
    prctl: Any = None
    if sys.platform.startswith("linux"):
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def setup() -> None:
        if cpu is not None:
            # Inherited by every process the server forks (gunicorn's worker).
            os.sched_setaffinity(0, {cpu})
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
        if prctl is not None:
            prctl(pr_set_pdeathsig, signal.SIGTERM)

    return setup


# -- the server -------------------------------------------------------------------


def _log_tail(path: Path, lines: int = 40, chars: int = 4000) -> str:
    try:
        text = path.read_bytes()[-chars:].decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read the log: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(the log is empty)"


class Server:
    """A running target: its address, its process tree, and how to stop it.

    Also a context manager that stops it on exit.
    """

    host: str = HOST
    path: str = PATH

    def __init__(
        self,
        target: Target,
        proc: subprocess.Popen[bytes],
        port: int,
        log_path: Path,
        log_file: IO[bytes],
    ) -> None:
        self.target = target
        self.port = port
        self.log_path = log_path
        self._proc = proc
        self._log_file: IO[bytes] | None = log_file
        self._root = psutil.Process(proc.pid)
        self._stopped = False
        #: What the readiness probe saw that is not a failure but departs from
        #: RFC 6455 (bytes after the Close frame, a TCP connection left open).
        self.notes: list[str] = []

    @property
    def pid(self) -> int:
        """The process started (gunicorn's master, or the one server process)."""
        return self._proc.pid

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{self.path}"

    def __repr__(self) -> str:
        return f"<Server {self.target.id} pid={self.pid} {self.url}>"

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self) -> str:
        """The last lines the server wrote."""
        return _log_tail(self.log_path)

    def processes(self) -> list[psutil.Process]:
        """The live tree now: the process started and its descendants (gunicorn's worker)."""
        try:
            return [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU time of the tree, in seconds (a process's reaped children
        count too, so a worker that gunicorn replaced is not lost)."""
        total = 0.0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    def rss_bytes(self) -> int:
        """Resident memory of the tree: the sum of each process's RSS (pages a gunicorn
        worker shares with its master count twice; a difference between two readings
        does not see them)."""
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def exited(self) -> int | None:
        """The exit status of the process started, or None while it runs."""
        return self._proc.poll()

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL what is left after a bounded wait; idempotent.

        Returns once every process of the tree has exited (or is a zombie left to
        a parent that does not reap it).
        """
        if self._stopped:
            return
        self._stopped = True
        tree = self.processes()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(10)  # gunicorn: --graceful-timeout 2
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(5)
        _, alive = psutil.wait_procs(tree, timeout=5)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    proc.kill()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _open_log(log_dir: Path, target: Target) -> tuple[Path, IO[bytes]]:
    """A new log file for this run of ``target``: ``<library>--<server>.<n>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stem = target.id.replace("/", "--")
    for n in range(1, 100000):
        path = log_dir / f"{stem}.{n}.log"
        try:
            return path, path.open("xb")
        except FileExistsError:
            continue
    raise RuntimeError(f"too many logs of {target.id} in {log_dir}")


def start(
    target: Target,
    *,
    cpu: int | None,
    log_dir: Path | None = None,
    ready_timeout: float = 30.0,
    app_module: str = "bench.apps",
) -> Server:
    """Start ``target`` and return it once it echoes.

    ``cpu``: the CPU the whole server tree is pinned to (None: not pinned).
    ``log_dir``: where its log goes (default: a new temporary directory).
    ``app_module``: the module the app or handler is taken from (the tests
    point it at a broken one; the floor has none).

    Raises :class:`TargetUnavailable` if :func:`unavailable` gives a reason, and
    :class:`ServerFailed` (naming the target, the reason, the log and its last
    lines) if the server exits or does not echo within ``ready_timeout`` seconds.
    """
    reason = unavailable(target)
    if reason is not None:
        raise TargetUnavailable(f"{target.id}: {reason}")
    if log_dir is None:
        log_dir = Path(tempfile.mkdtemp(prefix="wsgiws-bench-"))
    log_path, log_file = _open_log(log_dir, target)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(BACKLOG)
        port = listener.getsockname()[1]
        cmd, env = command(target, listener.fileno(), app_module)
        log_file.write(f"$ {' '.join(cmd)}\n".encode())
        log_file.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            pass_fds=(listener.fileno(),),
            start_new_session=True,  # its own process group: stop() reaches the worker
            preexec_fn=_preexec(cpu),
        )
    except BaseException:
        log_file.close()
        raise
    finally:
        # The child holds its copy; with ours closed, a dead server refuses
        # connections instead of leaving them in a backlog nobody accepts.
        listener.close()
    server = Server(target, proc, port, log_path, log_file)
    try:
        _wait_ready(server, ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: Server, seconds: float) -> None:
    """Poll until a WebSocket handshake on /echo gets 101 and a message echoes."""
    target = server.target
    deadline = time.monotonic() + seconds
    last = "no attempt yet"
    while True:
        status = server.exited()
        if status is not None:
            raise ServerFailed(
                f"{target.id} exited with status {status} before it was ready; "
                f"see {server.log_path}:\n{server.log_tail()}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ServerFailed(
                f"{target.id} did not echo within {seconds:.0f}s (last probe: {last}); "
                f"see {server.log_path}:\n{server.log_tail()}"
            )
        if target.gunicorn and len(server.processes()) < 2:
            last = "gunicorn has not forked its worker yet"
        else:
            notes: list[str] = []
            problem = probe(server.host, server.port, min(remaining, 5.0), notes=notes)
            if problem is None:
                server.notes = notes
                return
            last = problem
        time.sleep(0.05)


def probe(
    host: str,
    port: int,
    seconds: float,
    path: str = PATH,
    notes: list[str] | None = None,
) -> str | None:
    """One WebSocket handshake, one echoed text message, a closing handshake.

    Returns None if the handshake got 101 with the right Sec-WebSocket-Accept
    and the message came back unchanged; else what went wrong, in one line.
    How the closing handshake went is appended to ``notes`` when it is not what
    RFC 6455 §7.1.1 asks (the server answers the Close with a Close, closes the
    TCP connection first, and writes nothing more): no Close in answer, bytes
    written after the Close, or a TCP connection still open ``_CLOSE_GRACE``
    seconds later (the probe then closes it). Those are facts to report, not
    reasons to refuse the target.

    Raw sockets, so the probe depends on no client library.
    """
    key = _frames.new_key()
    want_accept = _frames.accept_key(key).encode("ascii")
    try:
        with socket.create_connection((host, port), timeout=seconds) as sock:
            reader = _Reader(sock)
            sock.sendall(_frames.handshake_request(host, port, path, key))
            head = reader.until(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            if lines[0].split(b" ")[1:2] != [b"101"]:
                return f"the handshake got {lines[0].decode('latin-1')!r}"
            headers = {
                n.strip().lower(): v.strip() for n, _, v in (x.partition(b":") for x in lines[1:])
            }
            if headers.get(b"sec-websocket-accept") != want_accept:
                return f"wrong Sec-WebSocket-Accept {headers.get(b'sec-websocket-accept')!r}"
            sent = b"ready?"
            sock.sendall(_frames.client_frame(_frames.TEXT, sent))
            echoed = reader.frame()
            if echoed != (0x81, sent):
                return f"the echo of {sent!r} came back as {echoed!r}"
            sock.sendall(_frames.client_frame(_frames.CLOSE, (1000).to_bytes(2, "big")))
            try:
                answer: tuple[int, bytes] | None = reader.frame()
            except _ProbeError:
                answer = None
            if notes is not None:
                if answer is None:
                    notes.append(
                        "closed TCP without answering the client's Close (the client sees 1006)"
                    )
                elif answer[0] != 0x88:
                    notes.append(f"answered the client's Close with {answer!r}")
                else:
                    notes.extend(_after_close(sock, reader.rest))
    except _ProbeError as exc:
        return str(exc)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


#: How long the probe waits for the server to close TCP after its Close frame.
_CLOSE_GRACE = 2.0


class _ProbeError(Exception):
    pass


class _Reader:
    """Bytes from a blocking socket, consumed in the pieces a handshake and frames need."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rest = b""

    def _more(self, what: str) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _ProbeError(f"the server closed the connection while the probe read {what}")
        self.rest += chunk

    def until(self, marker: bytes) -> bytes:
        while marker not in self.rest:
            if len(self.rest) > 65536:
                raise _ProbeError(f"no end of the response head in {self.rest[:200]!r}...")
            self._more("the response head")
        found, _, self.rest = self.rest.partition(marker)
        return found

    def exactly(self, n: int, what: str) -> bytes:
        while len(self.rest) < n:
            self._more(what)
        found, self.rest = self.rest[:n], self.rest[n:]
        return found

    def frame(self) -> tuple[int, bytes]:
        """One unmasked server frame: (first byte, payload)."""
        first, second = self.exactly(2, "a frame header")
        length = second & 0x7F
        if length >= 126:
            length = int.from_bytes(self.exactly(2 if length == 126 else 8, "a length"), "big")
        return first, self.exactly(length, "a frame payload")


def _after_close(sock: socket.socket, rest: bytes) -> list[str]:
    """What the server did after its Close frame, where it is not a prompt TCP close."""
    notes = []
    deadline = time.monotonic() + _CLOSE_GRACE
    closed = False
    while not closed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:  # a reset: closed, if not cleanly
            chunk = b""
        closed = not chunk
        rest += chunk
    if rest:
        notes.append(f"writes {len(rest)} bytes after its Close frame: {rest[:60]!r}")
    if not closed:
        notes.append(
            f"keeps the TCP connection open after the closing handshake (waited "
            f"{_CLOSE_GRACE:.0f}s): a client that waits for the server to close it "
            "(RFC 6455 §7.1.1) waits for its own timeout"
        )
    return notes
