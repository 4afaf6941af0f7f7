"""The open WebSockets of this process, and :func:`shutdown`, which ends them all.

A server that stops (or a worker that is replaced) should not just drop its
WebSockets: each client should get a Close frame with 1001 (going away), the
handler should see :class:`~wsgiws.ConnectionClosed` with that code in its
``receive``, and the process should exit once they are done, within the
server's graceful timeout.

:func:`serve <wsgiws._upgrade.serve>` registers each connection at the
takeover (:func:`track`) and removes it when the connection is finished
(:func:`untrack`): nothing happens per message. Who calls :func:`shutdown`:

* gunicorn's workers, on their own: the gunicorn adapter watches the worker
  (:meth:`~wsgiws._servers._base.ServerAdapter.watch`) and calls it when the
  worker begins to stop (SIGTERM, a reload, ``--max-requests``);
* the launcher (:func:`wsgiws.run`, ``python -m wsgiws``) on Ctrl-C and SIGTERM,
  before it stops its server;
* a program that starts ``gevent.pywsgi``, ``eventlet.wsgi`` or Werkzeug
  itself, from its own shutdown path (it is public: ``wsgiws.shutdown()``);
* and, at interpreter exit, an :mod:`atexit` hook sends the Close frames of
  whatever is still open without waiting for answers: the quick stop of
  gunicorn's gevent and eventlet workers (SIGINT, SIGQUIT) exits the process
  0.1 s after the signal.

The registry holds weak references, so a connection is never kept alive by it.
It takes no lock: ``set.add``, ``set.discard`` and ``list(set)`` are each one
operation under the GIL, so :func:`shutdown` can take its snapshot while other
threads add and remove, and a signal handler that interrupts :func:`track` in
the same thread (a green server, where everything runs in the main thread)
cannot deadlock on a lock that thread holds.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._connection import WebSocket
    from ._servers._base import ServerAdapter

__all__ = ["open_connections", "shutdown", "track", "untrack"]

log = logging.getLogger("wsgiws")

#: Going away (RFC 6455 §7.4.1): "a server going down".
GOING_AWAY = 1001
#: How often :func:`shutdown` looks whether the connections have ended.
_POLL = 0.02

_refs: set[weakref.ref[WebSocket]] = set()
# A forked child (a gunicorn worker, a multiprocessing child) inherits the
# parent's descriptors but does not own its connections: a Close sent from the
# child would be interleaved with the parent's frames on the same TCP stream.
os.register_at_fork(after_in_child=_refs.clear)


def track(ws: WebSocket, adapter: ServerAdapter, environ: Mapping[str, Any]) -> None:
    """Register ``ws``, just taken over on ``adapter``'s server, until :func:`untrack`.

    Also asks the adapter to watch for its server's stop (a no-op for most
    servers, and after the first connection of a process for the others).
    """
    _refs.add(weakref.ref(ws, _refs.discard))
    try:
        adapter.watch(environ, ws._kit, _server_stopping, _any_open)
    except Exception:  # a watcher is a convenience: never fail a connection for it
        log.debug("could not watch %s for its shutdown", adapter.name, exc_info=True)


def untrack(ws: WebSocket) -> None:
    """Forget ``ws``: its connection is finished. Does nothing if it was not tracked."""
    _refs.discard(weakref.ref(ws))


def open_connections() -> list[WebSocket]:
    """The connections registered now (a snapshot: the registry may change meanwhile)."""
    return [ws for ws in (ref() for ref in list(_refs)) if ws is not None]


def _any_open() -> bool:
    return bool(_refs)


def _server_stopping(timeout: float | None) -> None:
    """What a watcher calls when its server begins to stop: ``timeout`` bounds the wait."""
    log.info("the server is stopping: closing %d WebSocket(s) with 1001", len(_refs))
    shutdown(timeout=timeout)


def shutdown(
    code: int = GOING_AWAY, reason: str = "server shutting down", timeout: float | None = None
) -> None:
    """Close every WebSocket this process serves, and wait (bounded) until they are done.

    Call it from your server's shutdown path, before the server stops: each
    client gets a Close frame with ``code`` (1001, going away, by default) and
    ``reason``, and each handler's ``receive`` (or ``for message in ws``)
    raises :class:`~wsgiws.ConnectionClosed` with that code once the client
    answers. Returns when every connection has ended and its handler has
    returned, or after ``timeout`` seconds (default: the largest
    ``close_timeout`` among the open connections); connections still open then
    are aborted (TCP closed without waiting). Returns at once when none is open.

    gunicorn's workers and :func:`wsgiws.run` call it themselves; a program
    that runs ``gevent.pywsgi``, ``eventlet.wsgi`` or Werkzeug's server itself
    calls it. It may be called from any thread, from a greenlet, or from a
    signal handler in the main thread, but not from a handler of one of the
    connections (it would wait for itself), nor from the event loop itself
    (gevent's hub): there it sends the Close frames and returns without
    waiting. A handler that never receives does not see the client's answer:
    its connection is aborted at the timeout.
    """
    connections = open_connections()
    if not connections:
        return
    for ws in connections:
        try:
            ws._going_away(code, reason)
        except Exception:  # one broken connection must not spare the others
            log.debug("could not start closing %r", ws, exc_info=True)
    if timeout is None:
        timeout = max(ws._close_timeout for ws in connections)
    # Every connection of a process runs on the same server, so on the same kit.
    sleep = connections[0]._kit.sleep
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and any(weakref.ref(ws) in _refs for ws in connections):
            sleep(_POLL)
    except Exception:
        # The green library refused to block here (gevent's hub: "Impossible
        # to call blocking function in the event loop callback"): the Close
        # frames are on their way; the server's own grace period does the rest.
        log.debug("shutdown cannot wait here; the Close frames are sent", exc_info=True)
        return
    late = [ws for ws in connections if not ws.closed]
    if late:
        log.info("%d WebSocket(s) did not answer the Close in %.1fs: aborted", len(late), timeout)
    for ws in late:
        try:
            ws.abort()
        except Exception:
            log.debug("could not abort %r", ws, exc_info=True)


@atexit.register
def _at_exit() -> None:
    """Send 1001 to the connections still open as the interpreter exits; wait for nothing.

    Reached with open connections only when a process exits without a
    :func:`shutdown` that saw them through (gunicorn's quick stop on green
    workers, a Werkzeug server whose daemon threads die with the process).
    """
    for ws in open_connections():
        if not ws.closed:
            with contextlib.suppress(Exception):  # nobody is left to tell
                ws._going_away(GOING_AWAY, "server shutting down")
