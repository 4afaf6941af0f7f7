"""eventlet's WSGI server (``eventlet.wsgi.server``)."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from ._base import ServerAdapter, Transport, read_buffered


class Eventlet(ServerAdapter):
    name = "eventlet.wsgi"
    # eventlet.wsgi sets SERVER_PROTOCOL to "HTTP/1.0" for every request,
    # whatever the request line said, so it cannot tell us the version.
    reports_http_version = False

    @classmethod
    def detect(cls, environ: Mapping[str, Any]) -> bool:
        return "eventlet.input" in environ

    def take(self, environ: MutableMapping[str, Any]) -> Transport:
        request_input = environ["eventlet.input"]
        sock = request_input.get_socket()
        return Transport.of(sock, read_buffered(request_input.rfile, sock))

    def release(self, environ: MutableMapping[str, Any]) -> None:
        # eventlet's own flag for "the app wrote its response itself": the
        # server then writes nothing and closes the connection.
        from eventlet.wsgi import WSGI_LOCAL

        WSGI_LOCAL.already_handled = True
