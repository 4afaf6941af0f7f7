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

import select
import socket
import threading
from types import TracebackType
from typing import Callable, Optional, Protocol

__all__ = ["Kit", "Lock", "kit_for"]

#: Waits until the socket is readable; ``timeout`` None waits for ever, 0 polls.
#: Returns False when the timeout expired first.
Waiter = Callable[[Optional[float]], bool]


class Lock(Protocol):
    def acquire(self, blocking: bool = ...) -> bool: ...

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


class _Threads:
    def lock(self) -> Lock:
        return threading.Lock()

    def waiter(self, sock: socket.socket) -> Waiter:
        fd = sock.fileno()
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLPRI)

            def wait(timeout: float | None) -> bool:
                ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
                return bool(poller.poll(ms))

            return wait

        def wait_select(timeout: float | None) -> bool:  # pragma: no cover - Windows
            return bool(select.select([fd], [], [], timeout)[0])

        return wait_select


def _green_waiter(
    fd: int,
    real_select: Callable[..., tuple[list[int], list[int], list[int]]],
    wait_read: Callable[[int, float | None], object],
) -> Waiter:
    """A waiter from a green library's "wait until readable", which raises socket.timeout."""

    def wait(timeout: float | None) -> bool:
        if timeout is not None and timeout <= 0:
            # A zero-timeout check never yields to the hub: ask the OS directly.
            return bool(real_select([fd], [], [], 0)[0])
        try:
            wait_read(fd, timeout)
        except socket.timeout:
            return False
        return True

    return wait


class _Gevent:
    def lock(self) -> Lock:
        import gevent.lock

        return gevent.lock.Semaphore(1)  # type: ignore[no-any-return]

    def waiter(self, sock: socket.socket) -> Waiter:
        import gevent.monkey
        import gevent.socket

        return _green_waiter(
            sock.fileno(),
            gevent.monkey.get_original("select", "select"),
            gevent.socket.wait_read,
        )


class _Eventlet:
    def lock(self) -> Lock:
        import eventlet.semaphore

        return eventlet.semaphore.Semaphore(1)  # type: ignore[no-any-return]

    def waiter(self, sock: socket.socket) -> Waiter:
        import eventlet.hubs
        import eventlet.patcher

        def wait_read(fd: int, timeout: float | None) -> object:
            return eventlet.hubs.trampoline(
                fd, read=True, timeout=timeout, timeout_exc=socket.timeout
            )

        return _green_waiter(sock.fileno(), eventlet.patcher.original("select").select, wait_read)


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
