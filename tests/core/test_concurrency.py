"""wsgiws._concurrency: the readiness waits work for any descriptor a busy server hands out."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from tests.conftest import timeout
from wsgiws._concurrency import EVENTLET, GEVENT, THREADS, Kit

#: Above FD_SETSIZE (1024): select() refuses it, poll() does not.
HIGH_FD = 1500


def _plain(fd: int) -> socket.socket:
    return socket.socket(fileno=fd)


def _gevent(fd: int) -> Any:
    gevent_socket = pytest.importorskip("gevent.socket")
    return gevent_socket.socket(fileno=fd)


def _eventlet(fd: int) -> Any:
    greenio = pytest.importorskip("eventlet.greenio")
    return greenio.GreenSocket(socket.socket(fileno=fd))


@contextlib.contextmanager
def _high_fd_pair() -> Iterator[tuple[int, socket.socket]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= HIGH_FD:
        pytest.skip(f"RLIMIT_NOFILE's hard limit is {hard}: cannot open descriptor {HIGH_FD}")
    if soft <= HIGH_FD:
        resource.setrlimit(resource.RLIMIT_NOFILE, (HIGH_FD + 1, hard))
    ours, peer = socket.socketpair()
    try:
        fd = os.dup2(ours.fileno(), HIGH_FD)
        ours.close()
        yield fd, peer
    finally:
        peer.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(
    ("kit", "wrap"),
    [(THREADS, _plain), (GEVENT, _gevent), (EVENTLET, _eventlet)],
    ids=["threads", "gevent", "eventlet"],
)
def test_waiter_works_for_a_descriptor_above_fd_setsize(
    kit: Kit, wrap: Callable[[int], Any]
) -> None:
    with _high_fd_pair() as (fd, peer):
        sock = wrap(fd)
        try:
            assert sock.fileno() == HIGH_FD
            wait = kit.waiter(sock)
            assert wait(0) is False  # the zero-timeout check asks the OS directly
            assert wait(0.01) is False
            peer.sendall(b"x")
            assert wait(timeout(5)) is True
            assert wait(0) is True
        finally:
            sock.close()
