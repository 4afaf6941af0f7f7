"""Serve a WSGI application on a supported server: :func:`run`, and ``python -m wsgiws``.

Three steps, which the command line (:mod:`wsgiws.__main__`) takes one at a
time because it controls what is imported when:

1. :func:`choose` a server. ``"auto"`` prefers gevent, then eventlet, then
   gunicorn, then Werkzeug. A green server needs the process monkey-patched
   before anything else imports ``socket`` or ``threading``: the command line
   patches (``patch=True``) before it imports the user's module; :func:`run`,
   called from code that has long imported both, can only see whether someone
   patched already, and passes gevent and eventlet over when nobody did.
2. :func:`listen` on ``host:port``. The socket is bound here, for every
   server, so that a busy port is one clear error before anything starts, and
   port 0 (an ephemeral port) can be announced with its number.
3. :func:`serve`: say which server was chosen and why in one line on stderr,
   and serve until Ctrl-C or SIGTERM; then stop, and return.

Nothing here imports a server at module level: ``import wsgiws`` must not
import gevent or eventlet before the command line has had a chance to patch.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import os
import signal
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, Literal

from ._shutdown import shutdown

__all__ = ["CHOICES", "Choice", "Server", "choose", "listen", "run", "serve"]

Server = Literal["auto", "gevent", "eventlet", "gunicorn", "werkzeug"]
#: The ``server`` values, "auto" first, then the servers in the order "auto" prefers them.
CHOICES: tuple[Server, ...] = ("auto", "gevent", "eventlet", "gunicorn", "werkzeug")

#: Seconds the server gives open connections to end once it is told to stop.
#: Each server first closes its WebSockets with 1001 (:func:`shutdown`, bounded
#: by this), which ends their handlers once the clients answer; then it ends
#: the rest: gevent and eventlet kill the handlers' greenlets, gunicorn kills
#: its worker, Werkzeug's daemon threads end with the process. gevent's own
#: default is 1 s, gunicorn's 30 s; a WebSocket can stay open for hours, so
#: waiting long only delays the inevitable.
GRACE = 2

#: gunicorn's gthread worker runs each request in a thread of a fixed pool, and
#: a WebSocket holds its thread for as long as it is open: this many threads is
#: this many WebSockets at once (and when they are all taken, further requests
#: wait). An idle thread costs little (its stack is reserved, not used).
GUNICORN_THREADS = 256

#: The module to import to tell whether a server is usable, and its PyPI name.
_MODULES = {
    "gevent": "gevent.monkey",
    "eventlet": "eventlet",
    "gunicorn": "gunicorn.app.base",
    "werkzeug": "werkzeug.serving",
}
_LABELS = {
    "gevent": "gevent.pywsgi",
    "eventlet": "eventlet.wsgi",
    "gunicorn": f"gunicorn, one gthread worker of {GUNICORN_THREADS} threads",
    "werkzeug": "the threaded Werkzeug development server",
}
_PATCH_ADVICE = {
    "gevent": "call gevent.monkey.patch_all() before importing anything else",
    "eventlet": "call eventlet.monkey_patch() before importing anything else",
}
_PATCHED_BY_US = "monkey-patched before importing the app"


@dataclass(frozen=True)
class Choice:
    """A server chosen by :func:`choose`, and why."""

    #: One of "gevent", "eventlet", "gunicorn", "werkzeug".
    server: str
    #: Why this server: the end of the line :func:`serve` prints.
    reason: str
    #: For gevent and eventlet: whether the process is monkey-patched.
    patched: bool = False
    #: A second line to print after the first, for a configuration that works badly.
    warning: str | None = None

    @property
    def label(self) -> str:
        return _LABELS[self.server]


class _Stop(SystemExit):
    """Raised by a signal (SIGTERM, Ctrl-C's SIGINT) to stop the server.

    A SystemExit, because every server here stops cleanly on it, and quietly:
    Werkzeug's ``serve_forever`` closes its socket; eventlet's accept loop ends;
    and the gevent and eventlet hubs, where the signal handler usually runs,
    throw it into the main greenlet without printing it (gevent prints a
    KeyboardInterrupt it gets this way, with its traceback, before passing it
    on: hence not Python's own KeyboardInterrupt for Ctrl-C either).
    """


def run(
    app: Callable[..., Iterable[bytes]],
    host: str = "127.0.0.1",
    port: int = 5000,
    server: Server = "auto",
) -> None:
    """Serve ``app`` on ``host:port`` until Ctrl-C or SIGTERM.

    ``app`` is any WSGI application that serves WebSockets with wsgiws: wrapped
    in :class:`WebSocketMiddleware`, or a Flask, Bottle or Pyramid app using its
    integration. ``port`` 0 takes a free port; the line below names it.

    ``server`` is one of:

    ``"gevent"``
        ``gevent.pywsgi``: a greenlet per connection, any number of WebSockets.
    ``"eventlet"``
        ``eventlet.wsgi``: the same, with eventlet.
    ``"gunicorn"``
        gunicorn with one gthread worker of 256 threads: each open WebSocket
        holds a thread, so that is also how many can be open at once. One
        worker process, because what a WebSocket app shares between
        connections (who is in a chat room, to whom to broadcast) lives in its
        process; run gunicorn yourself for more, with shared state elsewhere.
        gunicorn forks its worker from this process, which has the app already
        imported: nothing is imported twice. (Not gunicorn's gevent worker: it
        monkey-patches in the worker, after this process imported the app and
        ``threading``, which gevent does not support.)
    ``"werkzeug"``
        The Werkzeug development server, a thread per connection.
    ``"auto"`` (the default)
        gevent if this process is monkey-patched by gevent, eventlet if it is by
        eventlet, else gunicorn if installed, else Werkzeug. A green server needs
        the process patched before anything imports ``socket`` or
        ``threading``, which is too late once this is called: patch first thing
        in your program (``gevent.monkey.patch_all()``), or start with ``python
        -m wsgiws MODULE:APP``, which patches before it imports your module.

    Asked for by name, gevent and eventlet also run in a process that is not
    patched: wsgiws then waits with their own primitives, but a blocking call in
    a handler (``time.sleep``, a database driver) blocks every connection, and
    a warning says so.

    One line on stderr says which server was chosen and why. On Ctrl-C or
    SIGTERM the server stops accepting connections, and every open WebSocket
    gets a Close frame with 1001 (going away): its handler's ``receive`` raises
    :class:`ConnectionClosed` once the client answers (:func:`shutdown`). The
    open connections get 2 seconds to end, the rest are ended; then ``run``
    returns.

    Raises :class:`ValueError` for an unknown ``server``, :class:`ImportError`
    when the server asked for (or, for ``"auto"``, every one) cannot be
    imported, and :class:`OSError` when ``host:port`` cannot be listened on
    (another server has the port), before anything is served.
    """
    choice = choose(server)
    listener = listen(host, port)
    serve(app, listener, choice, host)


# -- choosing ---------------------------------------------------------------------------------


def choose(server: str, *, patch: bool = False) -> Choice:
    """The server to use for ``server`` (one of :data:`CHOICES`), and why.

    ``patch`` (the command line, before it imports the app): monkey-patch for a
    green server. Otherwise a green server is "auto"'s choice only when the
    process is already patched. Raises ValueError, ImportError: see :func:`run`.
    """
    if server not in CHOICES:
        raise ValueError(f"unknown server {server!r}: choose one of {', '.join(CHOICES)}")
    if server == "auto":
        return _choose_auto(patch)
    asked = f"--server {server}" if patch else f"server={server!r}"
    failure = _import_failure(server)
    if failure is not None:
        raise ImportError(f"{asked}, but {server} {failure} (pip install {server})")
    if server not in _PATCH_ADVICE:
        return Choice(server, f"asked for with {asked}")
    if patch:
        _monkey_patch(server)
        return Choice(server, f"asked for with {asked}; {_PATCHED_BY_US}", patched=True)
    if _is_patched(server):
        return Choice(server, f"asked for with {asked}; the process is monkey-patched", True)
    return Choice(
        server,
        f"asked for with {asked}; the process is not monkey-patched",
        patched=False,
        warning=(
            f"wsgiws: warning: {server} runs without monkey-patching: a blocking call in a "
            f"handler (time.sleep, socket or database I/O that is not {server}'s) blocks every "
            f"connection; {_PATCH_ADVICE[server]}, or start with python -m wsgiws"
        ),
    )


def _choose_auto(patch: bool) -> Choice:
    passed: list[tuple[str, str]] = []  # (server, why it was passed over)
    for green in ("gevent", "eventlet"):
        if patch:
            failure = _import_failure(green)
            if failure is None:
                _monkey_patch(green)
                return Choice(green, _why(passed, f"{green} is installed; {_PATCHED_BY_US}"), True)
        elif _is_patched(green):
            # The program chose: what else is installed is beside the point.
            return Choice(green, f"the process is monkey-patched by {green}", patched=True)
        elif _findable(green):
            # Not imported to find out more: importing eventlet prints a deprecation
            # warning, for a server that is not going to be used.
            failure = (
                f"is installed but this process is not monkey-patched: {_PATCH_ADVICE[green]}, "
                "or start with python -m wsgiws"
            )
        else:
            failure = "is not installed"
        # eventlet is worth a word only when gevent, the better advice, is not installed.
        if green == "gevent" or passed[0][1] == "is not installed":
            passed.append((green, failure))
    failure = _import_failure("gunicorn")
    if failure is None:
        return Choice("gunicorn", _why(passed))
    passed.append(("gunicorn", failure))
    failure = _import_failure("werkzeug")
    if failure is None:
        return Choice("werkzeug", _why(passed, "install gevent for many concurrent connections"))
    passed.append(("werkzeug", failure))
    raise ImportError(f"no supported server can be imported: {_why(passed)} (pip install gevent)")


def _import_failure(server: str) -> str | None:
    """None when ``server`` can be imported; else the end of "<server> ..." saying why not.

    For gevent and eventlet only the package and its patcher are imported:
    their server modules come after patching.
    """
    name = _MODULES[server]
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name + ".").startswith(exc.name + "."):
            return "is not installed"
        return f"cannot be imported ({type(exc).__name__}: {exc})"
    except Exception as exc:  # a broken installation: say what broke
        return f"cannot be imported ({type(exc).__name__}: {exc})"
    return None


def _findable(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _why(passed: list[tuple[str, str]], *more: str) -> str:
    """One clause per reason: "gevent and eventlet are not installed; ..."."""
    missing = [name for name, why in passed if why == "is not installed"]
    clauses = []
    if missing:
        names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
        clauses.append(f"{names} {'is' if len(missing) == 1 else 'are'} not installed")
    clauses += [f"{name} {why}" for name, why in passed if why != "is not installed"]
    return "; ".join([*clauses, *more])


def _monkey_patch(server: str) -> None:
    if server == "gevent":
        from gevent import monkey

        monkey.patch_all()
    else:
        import eventlet

        eventlet.monkey_patch()


def _is_patched(server: str) -> bool:
    # Look, do not import: a process that never imported the patcher is not patched.
    if server == "gevent":
        monkey = sys.modules.get("gevent.monkey")
        return monkey is not None and bool(monkey.is_module_patched("socket"))
    patcher = sys.modules.get("eventlet.patcher")
    return patcher is not None and bool(patcher.is_monkey_patched("socket"))


# -- listening --------------------------------------------------------------------------------


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (the first address ``host`` resolves to).

    Raises OSError with a message that names the address. On POSIX the socket
    has SO_REUSEADDR (``socket.create_server`` sets it), so a restart does not
    wait for the previous run's connections in TIME_WAIT; a port another
    process listens on is still refused.
    """
    where = f"{_url_host(host)}:{port}"
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        return socket.create_server(address, family=family, backlog=1024)
    except socket.gaierror as exc:
        raise _ListenError(exc.errno, f"cannot listen on {where}: {exc.strerror}") from None
    except OSError as exc:
        # Not exc.strerror: create_server appends the address to it.
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno == errno.EADDRINUSE:
            why += " (another server listens there: stop it, or choose another port)"
        raise _ListenError(exc.errno, f"cannot listen on {where}: {why}") from None


class _ListenError(OSError):
    """An OSError whose message is the whole story (no "[Errno N]" in front)."""

    def __str__(self) -> str:
        return str(self.strerror)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else (host or "0.0.0.0")


# -- serving ----------------------------------------------------------------------------------


def serve(
    app: Callable[..., Iterable[bytes]], listener: socket.socket, choice: Choice, host: str
) -> None:
    """Announce ``choice`` and serve ``app`` on ``listener`` until Ctrl-C or SIGTERM.

    Takes ownership of ``listener``. Returns once the server has stopped.
    """
    port = listener.getsockname()[1]
    print(
        f"wsgiws: serving on http://{_url_host(host)}:{port}/ with {choice.label} "
        f"({choice.reason})",
        file=sys.stderr,
        flush=True,
    )
    if choice.warning:
        print(choice.warning, file=sys.stderr, flush=True)
    if choice.server == "gunicorn":
        # gunicorn's arbiter handles its signals itself (SIGTERM: graceful stop,
        # SIGINT: quick stop), and its worker closes the WebSockets with 1001
        # as it stops (the gunicorn adapter watches it).
        _serve_gunicorn(app, listener)
        return
    restore = _stop_on_signals(_green_rethrow(choice.server))
    try:
        _SERVE[choice.server](app, listener, choice, host)
    except _Stop:  # a signal: the way to stop
        pass
    finally:
        restore()
        listener.close()


def _stop_on_signals(rethrow: Callable[[], bool] | None) -> Callable[[], None]:
    """Make SIGTERM and SIGINT (Ctrl-C) raise :class:`_Stop`; return what undoes that.

    A signal the program handles itself is left alone, and so are both when
    this is not the main thread (the only one where Python runs handlers).
    ``rethrow``, for a green server, may send the exception elsewhere: it
    returns True when it did.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        if rethrow is None or not rethrow():
            raise _Stop(0)

    previous = {}
    for signum, default in (
        (signal.SIGTERM, signal.SIG_DFL),
        (signal.SIGINT, signal.default_int_handler),
    ):
        handler = signal.getsignal(signum)
        if handler != default:
            continue
        try:
            signal.signal(signum, stop)
        except ValueError:  # not the main thread
            break
        previous[signum] = handler

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def _green_rethrow(server: str) -> Callable[[], bool] | None:
    """For gevent and eventlet: a rethrow (see :func:`_stop_on_signals`) to the main greenlet.

    Python runs a signal handler in whichever greenlet of the main thread runs
    at the time. In the main greenlet, or in the hub (which both libraries
    answer by throwing a SystemExit into the main greenlet), raising stops the
    server as it should. In a connection's greenlet it would end that
    connection, and reach the main greenlet only by chance: there the hub is
    asked to throw it into the main greenlet as soon as it runs again.
    """
    if server == "gevent":
        from gevent import get_hub, getcurrent

        hub = get_hub()
        main = getcurrent()

        def rethrow() -> bool:
            if getcurrent() in (main, hub):
                return False
            hub.loop.run_callback(main.throw, _Stop(0))
            return True

        return rethrow
    if server == "eventlet":
        from eventlet import getcurrent as get_eventlet_current
        from eventlet.hubs import get_hub as get_eventlet_hub

        eventlet_hub = get_eventlet_hub()
        main_eventlet = get_eventlet_current()

        def rethrow_eventlet() -> bool:
            if get_eventlet_current() in (main_eventlet, eventlet_hub.greenlet):
                return False
            eventlet_hub.schedule_call_global(0, main_eventlet.throw, _Stop(0))
            return True

        return rethrow_eventlet
    return None


def _serve_gevent(app: Any, listener: socket.socket, choice: Choice, host: str) -> None:
    from gevent.pywsgi import WSGIServer

    sock: Any = listener
    if not choice.patched:
        # As gevent documents for an unpatched process: the listener must be a
        # gevent socket, or its accept() blocks the hub (and every connection).
        import gevent.socket

        sock = gevent.socket.socket(fileno=listener.detach())
    # serve_forever stops the server when interrupted: it stops accepting, gives
    # the handlers stop_timeout seconds, then kills their greenlets; but only
    # those of its pool: without one (the default) it neither waits nor kills,
    # and open connections end abruptly when the process exits. Unbounded.
    from gevent.pool import Pool

    class Server(WSGIServer):  # type: ignore[misc]  # gevent's classes are untyped here
        def stop(self, timeout: float | None = None) -> None:
            # serve_forever calls stop (in a greenlet of its own, which may
            # wait) when it is interrupted: close the WebSockets first.
            self.stop_accepting()
            deadline = time.monotonic() + GRACE
            shutdown(timeout=GRACE)
            super().stop(max(0.0, deadline - time.monotonic()))

    Server(sock, app, spawn=Pool()).serve_forever(stop_timeout=GRACE)


def _serve_eventlet(app: Any, listener: socket.socket, choice: Choice, host: str) -> None:
    import eventlet
    import eventlet.wsgi

    sock: Any = listener
    if not choice.patched:
        # Unpatched, socket.socket is the OS's: the listener must be eventlet's
        # green socket, or accept() blocks the hub (eventlet.listen() makes one).
        import eventlet.green.socket

        sock = eventlet.green.socket.socket(fileno=listener.detach())
    eventlet.wsgi.server(sock, app, custom_pool=_GracefulPool(eventlet.GreenPool()))


class _GracefulPool:
    """eventlet.wsgi's connection pool, with a deadline on the wait at shutdown.

    ``eventlet.wsgi.server`` waits, after its accept loop ends, for every
    connection to finish (``pool.waitall()``), and documents that this hangs
    while a long-lived connection is open: a WebSocket would keep the process
    alive after Ctrl-C. This closes the WebSockets with 1001 (:func:`shutdown`)
    and waits for them, up to :data:`GRACE` seconds in all, then kills the
    greenthreads still running (GreenletExit: wsgiws closes with 1001).
    """

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def spawn(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._pool.spawn(function, *args, **kwargs)

    def waitall(self) -> None:
        import eventlet

        deadline = time.monotonic() + GRACE
        shutdown(timeout=GRACE)
        remaining = max(0.0, deadline - time.monotonic())
        with eventlet.Timeout(remaining, False):  # False: end the wait silently
            self._pool.waitall()
        for greenthread in list(self._pool.coroutines_running):
            greenthread.kill()
        self._pool.waitall()


def _serve_werkzeug(app: Any, listener: socket.socket, choice: Choice, host: str) -> None:
    from werkzeug.serving import make_server

    # make_server duplicates the descriptor (socket.fromfd) and binds nothing.
    server = make_server(host, listener.getsockname()[1], app, threaded=True, fd=listener.fileno())
    listener.close()
    # Ends with our _Stop (a SIGTERM or Ctrl-C). Its threads are daemon
    # threads, which die with the process: close their WebSockets first.
    try:
        server.serve_forever()
    finally:
        shutdown(timeout=GRACE)


_SERVE: dict[str, Callable[[Any, socket.socket, Choice, str], None]] = {
    "gevent": _serve_gevent,
    "eventlet": _serve_eventlet,
    "werkzeug": _serve_werkzeug,
}


def _serve_gunicorn(app: Any, listener: socket.socket) -> None:
    """Run gunicorn's arbiter in this process, with one gthread worker forked from it.

    ``BaseApplication``, not ``Application``: the latter parses ``sys.argv``
    (the caller's command line) as gunicorn's. ``load`` returns the app object,
    so the worker uses the app this process imported; nothing is imported again.
    """
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    # The arbiter binds nothing: it gets our socket's descriptor (fd://N), takes
    # a duplicate and closes N; detach() so that we no longer own N.
    fd = listener.detach()
    settings: dict[str, Any] = {
        "bind": [f"fd://{fd}"],
        "workers": 1,
        "worker_class": "gthread",
        "threads": GUNICORN_THREADS,
        "graceful_timeout": GRACE,
        # gunicorn 25.1+ opens a control socket at a fixed per-user path: two
        # launched apps would fight over it, and nobody asked for it.
        "control_socket_disable": True,
    }

    class Launched(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
        def load_config(self) -> None:
            for key, value in settings.items():
                if key in self.cfg.settings:  # older gunicorns lack newer settings
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    signals = [*Arbiter.SIGNALS, signal.SIGCHLD]
    handlers = {sig: signal.getsignal(sig) for sig in signals}
    pid = os.getpid()
    try:
        Launched().run()
    except SystemExit as exc:
        # The arbiter ends with sys.exit(0) after a clean stop: return to the
        # caller. A worker is a fork of this process and ends with SystemExit
        # too: it must never return into the caller's code.
        if os.getpid() != pid or exc.code not in (0, None):
            raise
    except BaseException:
        if os.getpid() != pid:
            os._exit(1)
        raise
    finally:
        if os.getpid() == pid:
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)
