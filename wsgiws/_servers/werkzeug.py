"""The Werkzeug development server (``flask run``, ``app.run()``, ``run_simple``)."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from ._base import ServerAdapter, Transport, read_buffered


class Werkzeug(ServerAdapter):
    name = "werkzeug"

    @classmethod
    def detect(cls, environ: Mapping[str, Any]) -> bool:
        # Documented since Werkzeug 2.0: the connection's socket.
        return "werkzeug.socket" in environ

    def take(self, environ: MutableMapping[str, Any]) -> Transport:
        sock = environ["werkzeug.socket"]
        # wsgi.input is the handler's buffered reader over that socket
        # (for a request without a chunked body): early frames sit there.
        return Transport.of(sock, read_buffered(environ["wsgi.input"], sock))

    def caveat(self, environ: Mapping[str, Any]) -> str | None:
        if environ.get("wsgi.multithread") or environ.get("wsgi.multiprocess"):
            return None
        return (
            "the Werkzeug server runs single-threaded: while a WebSocket is open it serves "
            "no other request. Run it with threaded=True (the default of `flask run` and "
            "app.run())."
        )
