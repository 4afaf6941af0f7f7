"""gunicorn's sync, gthread, gevent and eventlet workers."""

from __future__ import annotations

import io
import logging
import os
import signal
from collections.abc import Mapping, MutableMapping
from typing import Any, Callable

from .._concurrency import Kit
from ._base import ServerAdapter, Transport, input_replaced

log = logging.getLogger("wsgiws")

#: Seconds between two looks at ``worker.alive`` while WebSockets are open:
#: the delay from SIGTERM to the clients' Close frames is at most this.
WATCH_INTERVAL = 0.2
#: Of the worker's graceful timeout, what :func:`~wsgiws._shutdown.shutdown` may
#: use up waiting for the clients' answers: the worker must still return and
#: exit before the arbiter's deadline.
_GRACE_SHARE = 0.8

#: The pid of the process whose watcher runs (None: none runs). A pid, not a
#: bool: a worker forked from a process that watched starts with no watcher.
_watching: int | None = None


class Gunicorn(ServerAdapter):
    name = "gunicorn"

    @classmethod
    def detect(cls, environ: Mapping[str, Any]) -> bool:
        return "gunicorn.socket" in environ

    def take(self, environ: MutableMapping[str, Any]) -> Transport:
        sock = environ["gunicorn.socket"]
        return Transport.of(sock, self._read_ahead(environ))

    def caveat(self, environ: Mapping[str, Any]) -> str | None:
        # Only the sync worker reports wsgi.multithread False.
        if environ.get("wsgi.multithread"):
            return None
        return (
            "gunicorn's sync worker holds one connection per worker and aborts it after "
            "--timeout seconds: use -k gthread --threads N, or -k gevent, for WebSockets."
        )

    def watch(
        self,
        environ: Mapping[str, Any],
        kit: Kit,
        on_stop: Callable[[float | None], None],
        busy: Callable[[], bool],
    ) -> None:
        """Watch this worker's ``alive`` flag; call ``on_stop`` when it turns False.

        gunicorn tells a worker to stop by setting ``worker.alive = False``:
        ``handle_exit`` on SIGTERM (a graceful stop, and the arbiter's way of
        retiring a worker on SIGHUP), ``handle_quit`` on SIGINT and SIGQUIT
        (then it exits 0.1 s later), and the worker itself after
        ``--max-requests``. No hook reaches the app without gunicorn
        configuration, so one thread or greenlet per worker process looks at
        the flag every :data:`WATCH_INTERVAL` seconds while WebSockets are open.

        The worker object is found through the SIGTERM handler its
        ``init_signals`` installs: the bound method ``worker.handle_exit``.
        ``Worker.alive``, ``Worker.handle_exit`` and ``cfg.graceful_timeout``
        are not documented API; checked on gunicorn 27.0 (gthread, gevent) and
        25.3.0 (eventlet). Where any of them is missing (another gunicorn, an
        app that installed its own SIGTERM handler), there is no watcher, and
        the worker ends WebSockets as it always did.
        """
        global _watching
        if _watching == os.getpid():
            return
        worker = _find_worker()
        if worker is None:
            return
        cfg_grace = getattr(getattr(worker, "cfg", None), "graceful_timeout", None)
        grace = cfg_grace * _GRACE_SHARE if isinstance(cfg_grace, (int, float)) else None
        _watching = os.getpid()

        def watch_alive() -> None:
            global _watching
            while worker.alive:
                if not busy():
                    # Idle: end, and let the next takeover start a watcher
                    # again. A takeover between the two looks at busy() sees
                    # _watching cleared and starts one; this one goes on.
                    _watching = None
                    if not busy():
                        return
                    _watching = os.getpid()
                kit.sleep(WATCH_INTERVAL)
            on_stop(grace)

        kit.spawn(watch_alive)

    @staticmethod
    def _read_ahead(environ: Mapping[str, Any]) -> bytes:
        # gunicorn's parser reads the socket in chunks and keeps what follows
        # the request headers in its "unreader" for the next request. The
        # request body reader (wsgi.input, a GET's zero-length body) is the
        # only path to it. gunicorn 27 gives it out with take_buffered(), made
        # for its own h2c upgrade; older releases keep it in a BytesIO.
        body = environ["wsgi.input"]
        unreader = getattr(getattr(body, "reader", None), "unreader", None)
        if unreader is None:
            return input_replaced(body)
        take = getattr(unreader, "take_buffered", None)
        if take is not None:
            return take()  # type: ignore[no-any-return]
        data: bytes = unreader.buf.getvalue()
        unreader.buf = io.BytesIO()
        return data


def _find_worker() -> Any:
    """This process's gunicorn worker, from its SIGTERM handler; None if it is not that."""
    handler = signal.getsignal(signal.SIGTERM)
    worker = getattr(handler, "__self__", None)
    if worker is None or getattr(handler, "__name__", "") != "handle_exit":
        log.debug("gunicorn: SIGTERM is handled by %r, not a worker: no shutdown watcher", handler)
        return None
    try:
        from gunicorn.workers.base import Worker
    except ImportError:  # pragma: no cover - this adapter runs under gunicorn
        return None
    if not isinstance(worker, Worker) or not isinstance(getattr(worker, "alive", None), bool):
        log.debug("gunicorn: %r has no alive flag: no shutdown watcher", worker)
        return None
    return worker
