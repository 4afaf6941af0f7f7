"""The client socket as a connection uses it: non-blocking calls, bounded waits.

A :class:`Stream` puts the socket the server handed over in non-blocking mode
and makes every wait explicit, through the connection's kit
(:mod:`wsgiws._concurrency`): that is what lets a send give up after
``send_timeout``, a ``close()`` from another thread end a send stuck on a
peer that does not read, and keepalive go on meanwhile. A call that would
block returns at once (``recv`` None, ``send`` 0) and the caller decides how
long to wait.

Two kinds, chosen once per connection by :func:`stream_for`:

* :class:`Stream`, a plain TCP socket: the fast path, unchanged by TLS.
  Large messages go as header + payload with ``MSG_MORE`` (no copy).
* :class:`TLSStream`, for a server that terminates TLS itself (``flask run
  --cert``, ``gunicorn --certfile``, gevent.pywsgi's ``certfile``,
  ``eventlet.wrap_ssl``): the ``ssl`` module refuses send/recv flags; a
  readable descriptor may hold only part of a TLS record (the read then
  "wants more", :class:`ssl.SSLWantReadError`); decrypted bytes may already
  wait inside the SSL object, where ``poll()`` cannot see them
  (``SSLSocket.pending()``), so no wait may start before they are taken;
  and ``SSLSocket.shutdown()`` drops the SSL object, which would leave the
  closing handshake reading ciphertext.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct

from ._concurrency import Kit, Waiter

__all__ = ["Stream", "TLSStream", "stream_for"]

#: ``send(header, MSG_MORE)`` tells Linux the payload follows at once, so the
#: two writes leave as full segments (no Nagle wait on a lone header); where
#: there is no MSG_MORE the two are joined instead.
_MSG_MORE = getattr(socket, "MSG_MORE", 0)
#: SO_LINGER on, with a zero timeout: closing the descriptor resets the
#: connection and drops unsent data instead of keeping it for a peer that
#: does not read (what an abort means).
_LINGER_RESET = struct.pack("ii", 1, 0)


class Stream:
    """A plain TCP socket, non-blocking; waits go through ``kit``."""

    #: Whether :meth:`send` can be told that more bytes follow at once
    #: (``more=True``); if not, the caller joins header and payload.
    corks = bool(_MSG_MORE)

    def __init__(self, sock: socket.socket, kit: Kit) -> None:
        self.sock = sock
        self._kit = kit
        sock.setblocking(False)
        # No Nagle delay: two small writes in a row (two messages, a Close and
        # TLS's close_notify, a TLS record split) must not wait for the ACK of
        # the first, which a client delays by up to 40 ms: measured 45 ms per
        # wss:// connection on Werkzeug, gevent.pywsgi and eventlet.wsgi,
        # which leave Nagle on (gunicorn and websockets turn it off). A frame's
        # header and payload still leave together: see ``more``.
        with contextlib.suppress(OSError):  # not TCP (a socket pair in tests)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._wait_readable = kit.waiter(sock)
        #: Made on the first send that finds the kernel's buffer full: most
        #: connections never wait to write, and a watcher costs memory.
        self._wait_writable: Waiter | None = None

    def recv(self, size: int) -> bytes | None:
        """Up to ``size`` bytes; ``b""`` at EOF; None when nothing can be read now."""
        try:
            return self.sock.recv(size)
        except BlockingIOError:
            return None

    def send(self, data: bytes | memoryview, more: bool = False) -> int:
        """Hand what the kernel takes now of ``data`` to it; 0 when its buffer is full."""
        try:
            return self.sock.send(data, _MSG_MORE if more else 0)
        except BlockingIOError:
            return 0

    def readable(self, timeout: float | None) -> bool:
        """Wait until :meth:`recv` has something (or EOF); False if ``timeout`` passed."""
        return self._wait_readable(timeout)

    def writable(self, timeout: float | None) -> bool:
        """Wait until :meth:`send` can take bytes; False if ``timeout`` passed."""
        if self._wait_writable is None:
            self._wait_writable = self._kit.write_waiter(self.sock)
        return self._wait_writable(timeout)

    def shutdown(self, how: int) -> None:
        """Shut the connection down one or both ways; quiet if it is gone already.

        Any thread blocked on the socket wakes up (Linux wakes a socket's
        waiters on shutdown): a read sees EOF, a send fails.
        """
        self._shutdown_tcp(how)

    def abort(self) -> None:
        """Reset the connection, now if we can and at the latest when the server closes it.

        Unsent data is dropped (a peer that does not read would never take
        it), and every thread waiting on the socket wakes up. No closing of any
        kind is sent first (over TLS: no close_notify, an abort is no clean end).
        """
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self._shutdown_tcp(socket.SHUT_RDWR)

    def _shutdown_tcp(self, how: int) -> None:
        """Shut the TCP connection down, quietly if it is gone already."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(how)

    def release(self) -> None:
        """Hand the socket back to the server as blocking, as it was given to the app."""
        with contextlib.suppress(OSError):
            self.sock.settimeout(None)


class TLSStream(Stream):
    """An SSL socket (the standard library's, gevent's or eventlet's).

    One SSL object must not be used by two threads at once: OpenSSL does not
    support an ``SSL_read`` and an ``SSL_write`` running together (TLS 1.3
    post-handshake messages make them share state), and a write can then be
    lost while reporting success. A receiving and a sending thread do run
    together here, so every call into the SSL object takes a lock of its own;
    the calls never block (the socket is non-blocking), and the waits happen
    outside it.
    """

    # The ssl module allows no flags on send(): header and payload are joined.
    corks = False

    def __init__(self, sock: socket.socket, kit: Kit) -> None:
        super().__init__(sock, kit)
        self._ssl_lock = kit.lock()

    def recv(self, size: int) -> bytes | None:
        with self._ssl_lock:
            try:
                return self.sock.recv(size)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return None  # only part of a record has arrived
            except ssl.SSLZeroReturnError:
                return b""  # the peer's TLS close_notify: EOF

    def send(self, data: bytes | memoryview, more: bool = False) -> int:
        # OpenSSL writes all of data or raises "want write" (Python does not
        # enable partial writes); the retry passes the same bytes again, as
        # SSL_write requires.
        with self._ssl_lock:
            try:
                return self.sock.send(data)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return 0

    def readable(self, timeout: float | None) -> bool:
        # Bytes already decrypted sit in the SSL object, not in the socket.
        with self._ssl_lock:
            pending = self.sock.pending()  # type: ignore[attr-defined]
        if pending:
            return True
        return self._wait_readable(timeout)

    def shutdown(self, how: int) -> None:
        # Our FIN follows a TLS close_notify (RFC 8446 §6.1), so that the
        # client sees TLS end cleanly rather than an EOF that OpenSSL calls
        # unexpected (and answers with an alert). unwrap() sends it; on a
        # non-blocking socket it then "wants read" the client's own
        # close_notify, and the SSL object stays, still able to decrypt what
        # the client sends until then.
        if how != socket.SHUT_RD:
            with self._ssl_lock, contextlib.suppress(OSError, ValueError):
                self.sock.unwrap()  # type: ignore[attr-defined]
        self._shutdown_tcp(how)

    def _shutdown_tcp(self, how: int) -> None:
        # SSLSocket.shutdown() drops the SSL object (later reads would return
        # ciphertext), so shut the TCP connection down through a duplicate
        # descriptor: shutdown acts on the connection, not on a descriptor.
        with contextlib.suppress(OSError):
            raw = socket.socket(self.sock.family, self.sock.type, fileno=os.dup(self.sock.fileno()))
            with raw:
                raw.shutdown(how)

    def release(self) -> None:
        # The server's own write after the app (the formal 101) must fail as
        # a plain broken pipe, which every server takes for a client gone.
        # Through the SSL object it fails as SSLEOFError, which gevent.pywsgi
        # logs as a 500, and Werkzeug's drain of the socket then decrypts the
        # client's alert and logs "Error on request". SSLSocket.shutdown() is
        # the public way to drop the SSL object.
        with self._ssl_lock, contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        super().release()


def stream_for(sock: socket.socket, kit: Kit) -> Stream:
    """The stream for a socket the server handed over: TLS if it is an SSL socket.

    Told by ``pending()``, which every SSL socket class has (the standard
    library's, gevent's, eventlet's) and no plain socket has: gevent's SSL
    socket is no :class:`ssl.SSLSocket` unless the process is monkey-patched.
    """
    if callable(getattr(sock, "pending", None)):
        return TLSStream(sock, kit)
    return Stream(sock, kit)
