"""gevent's WSGI server (``gevent.pywsgi.WSGIServer``)."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from .._exceptions import UnsupportedServer
from ._base import ServerAdapter, Transport, read_buffered


class GeventPyWSGI(ServerAdapter):
    name = "gevent.pywsgi"

    @classmethod
    def detect(cls, environ: Mapping[str, Any]) -> bool:
        return str(environ.get("SERVER_SOFTWARE", "")).startswith("gevent/")

    def take(self, environ: MutableMapping[str, Any]) -> Transport:
        # gevent documents no socket key. Since gevent 20.12 an upgrade
        # request's wsgi.input is the handler's raw buffered reader over the
        # client socket; the socket is that reader's raw stream's.
        reader = environ["wsgi.input"]
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
        if sock is None:
            raise UnsupportedServer(
                "gevent.pywsgi did not hand over its socket in wsgi.input: it needs gevent "
                "20.12 or later, and WebSocketMiddleware outside any middleware that "
                "replaces wsgi.input"
            )
        transport = Transport.of(sock, read_buffered(reader, sock))
        # The reader's buffer (8 KiB) would stay allocated for as long as the
        # WebSocket is open, unused: closing the reader frees it (half of an
        # idle connection's memory). The socket stays open: the reader only
        # held a reference to it. pywsgi reads no further request from a
        # closed reader (handle_one_request checks ``rfile.closed``).
        reader.close()
        return transport
