"""The in-process "server" of :mod:`wsgiws.testing`: no network, a socket pair.

:class:`wsgiws.testing.TestClient` calls the WSGI application itself, in a
thread, with an environ it built for a real RFC 6455 handshake. It puts the
server end of a :func:`socket.socketpair` in the environ under
``wsgiws.testing.socket`` (a key in wsgiws's own namespace: no real server sets
it) and plays the client on the other end. Nothing was read from that socket
before the application ran, so there are no early bytes to hand over.

The test client writes nothing after the application returns (it only records
the status), so the default :meth:`ServerAdapter.release` suits it. It is not
a server users deploy on: the 501 answer of other servers does not name it.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from ._base import ServerAdapter, Transport

__all__ = ["SOCKET_KEY", "InProcess"]

#: The environ key under which the test client hands over the server's socket.
SOCKET_KEY = "wsgiws.testing.socket"


class InProcess(ServerAdapter):
    name = "wsgiws.testing"
    advertised = False

    @classmethod
    def detect(cls, environ: Mapping[str, Any]) -> bool:
        return SOCKET_KEY in environ

    def take(self, environ: MutableMapping[str, Any]) -> Transport:
        return Transport.of(environ[SOCKET_KEY], b"")
