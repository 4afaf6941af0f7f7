"""gunicorn's sync, gthread, gevent and eventlet workers."""

from __future__ import annotations

import io
from collections.abc import Mapping, MutableMapping
from typing import Any

from ._base import ServerAdapter, Transport, input_replaced


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
