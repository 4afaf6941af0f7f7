"""Locks and readiness waits that suit the socket's concurrency model.

A connection needs two primitives: a lock (sends from several threads or
greenlets must not interleave) and a way to wait until its socket is readable,
with a timeout, without blocking anyone else. What "anyone else" means depends
on the socket: an OS thread for a plain socket, every greenlet of the hub for
a gevent or eventlet socket. A gevent.pywsgi or eventlet.wsgi server need not
have monkey-patched ``threading`` or ``select``, so the green kits use the green
libraries' own documented primitives rather than the standard library's.

The kit is chosen from the socket object itself (:func:`kit_for`): the socket is
the one thing that tells, whatever server or worker class handed it over.
"""

from __future__ import annotations

import functools
import select
import socket
import threading
import time
import types
from types import TracebackType
from typing import Any, Callable, Optional, Protocol

__all__ = ["Kit", "Lock", "kit_for"]

#: Waits until the socket is readable (or, from ``write_waiter``, writable);
#: ``timeout`` None waits for ever, 0 polls. Returns False when the timeout
#: expired first.
Waiter = Callable[[Optional[float]], bool]


class Lock(Protocol):
    # Every kit's lock takes ``acquire(True, seconds)`` for a bounded wait.
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> object: ...


class Kit(Protocol):
    def lock(self) -> Lock: ...

    def waiter(self, sock: socket.socket) -> Waiter: ...

    def write_waiter(self, sock: socket.socket) -> Waiter: ...

    def sleep(self, seconds: float) -> None: ...

    def spawn(self, function: Callable[[], object]) -> None:
        """Run ``function`` beside the caller (a daemon thread, or a greenlet)."""


class _Threads:
    def lock(self) -> Lock:
        return threading.Lock()

    def waiter(self, sock: socket.socket) -> Waiter:
        return _os_waiter(sock.fileno(), select)

    def write_waiter(self, sock: socket.socket) -> Waiter:
        return _os_waiter(sock.fileno(), select, writable=True)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def spawn(self, function: Callable[[], object]) -> None:
        # A daemon thread: it must not keep a stopping process alive.
        threading.Thread(target=function, name="wsgiws", daemon=True).start()


def _os_waiter(fd: int, select_module: types.ModuleType, writable: bool = False) -> Waiter:
    """Wait with the OS's ``poll`` (``select`` where there is none, i.e. Windows).

    ``poll`` because ``select`` refuses descriptors of 1024 and above
    (FD_SETSIZE), which a server holding a thousand connections hands out.
    ``select_module`` is :mod:`select` as the OS gives it, never a green one.
    """
    if hasattr(select_module, "poll"):
        events = select.POLLOUT if writable else select.POLLIN | select.POLLPRI
        # Made on first use: an idle connection on a green server never polls
        # (it waits in the hub), and a poll object costs ~400 bytes.
        pollers: list[Any] = []

        def wait(timeout: float | None) -> bool:
            if not pollers:
                pollers.append(select_module.poll())
                pollers[0].register(fd, events)
            ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
            return bool(pollers[0].poll(ms))

        return wait

    def wait_select(timeout: float | None) -> bool:  # pragma: no cover - Windows
        if writable:
            return bool(select_module.select([], [fd], [], timeout)[1])
        return bool(select_module.select([fd], [], [], timeout)[0])

    return wait_select


def _green_waiter(
    fd: int,
    real_select_module: types.ModuleType,
    wait_ready: Callable[[float | None], object],
    writable: bool = False,
) -> Waiter:
    """A waiter from a green library's "wait until ready", which raises socket.timeout.

    ``real_select_module`` is the unpatched :mod:`select`, for the zero-timeout check.
    """
    check_now = _os_waiter(fd, real_select_module, writable)

    def wait(timeout: float | None) -> bool:
        if timeout is not None and timeout <= 0:
            # A zero-timeout check never yields to the hub: ask the OS directly.
            return check_now(0)
        try:
            wait_ready(timeout)
        except socket.timeout:
            return False
        return True

    return wait


@functools.cache
def _original_select_gevent() -> types.ModuleType:
    """The select module's unpatched ``poll`` and ``select``, as a module (made once)."""
    import gevent.monkey

    names = [n for n in ("poll", "select") if hasattr(select, n)]
    functions = gevent.monkey.get_original("select", names)
    module = types.ModuleType("select")
    for name, function in zip(names, functions):
        setattr(module, name, function)
    return module


class _Gevent:
    def lock(self) -> Lock:
        import gevent.lock

        return gevent.lock.Semaphore(1)  # type: ignore[no-any-return]

    def waiter(self, sock: socket.socket) -> Waiter:
        return self._waiter(sock, writable=False)

    def write_waiter(self, sock: socket.socket) -> Waiter:
        return self._waiter(sock, writable=True)

    @staticmethod
    def _waiter(sock: socket.socket, writable: bool) -> Waiter:
        import gevent
        import gevent.socket

        # One watcher for the connection's life, waited on with
        # gevent.socket.wait: gevent.socket.wait_read would make and close a
        # watcher per wait, which costs two system calls (fcntl, epoll_ctl) on
        # every message received. Only the thread that holds the connection's
        # read lock waits to read, only the one that holds its send lock waits
        # to write, so no watcher is ever waited on twice at once.
        watcher = gevent.get_hub().loop.io(sock.fileno(), 2 if writable else 1)

        def wait_ready(timeout: float | None) -> object:
            return gevent.socket.wait(watcher, timeout, socket.timeout("timed out"))

        return _green_waiter(sock.fileno(), _original_select_gevent(), wait_ready, writable)

    def sleep(self, seconds: float) -> None:
        import gevent

        gevent.sleep(seconds)

    def spawn(self, function: Callable[[], object]) -> None:
        import gevent

        gevent.spawn(function)


class _Eventlet:
    def lock(self) -> Lock:
        import eventlet.semaphore

        return eventlet.semaphore.Semaphore(1)  # type: ignore[no-any-return]

    def waiter(self, sock: socket.socket) -> Waiter:
        return self._waiter(sock, writable=False)

    def write_waiter(self, sock: socket.socket) -> Waiter:
        return self._waiter(sock, writable=True)

    @staticmethod
    def _waiter(sock: socket.socket, writable: bool) -> Waiter:
        import eventlet.hubs
        import eventlet.patcher

        fd = sock.fileno()

        def wait_ready(timeout: float | None) -> object:
            return eventlet.hubs.trampoline(
                fd,
                read=not writable,
                write=writable,
                timeout=timeout,
                timeout_exc=socket.timeout,
            )

        original: types.ModuleType = eventlet.patcher.original("select")
        return _green_waiter(fd, original, wait_ready, writable)

    def sleep(self, seconds: float) -> None:
        import eventlet

        eventlet.sleep(seconds)

    def spawn(self, function: Callable[[], object]) -> None:
        import eventlet

        eventlet.spawn(function)


THREADS: Kit = _Threads()
GEVENT: Kit = _Gevent()
EVENTLET: Kit = _Eventlet()


def kit_for(sock: object) -> Kit:
    """The kit for a socket object, from the library that defines its class."""
    for cls in type(sock).__mro__:
        module = cls.__module__.split(".")[0]
        if module == "gevent":
            return GEVENT
        if module == "eventlet":
            return EVENTLET
    return THREADS
