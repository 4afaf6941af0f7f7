"""Server adapters: one module per WSGI server, behind :class:`ServerAdapter`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._base import ServerAdapter, StartResponse, Transport
from .eventlet import Eventlet
from .gevent import GeventPyWSGI
from .gunicorn import Gunicorn
from .inprocess import InProcess
from .werkzeug import Werkzeug

__all__ = ["ADAPTERS", "ServerAdapter", "StartResponse", "Transport", "find_adapter"]

#: Tried in order; the first whose ``detect`` answers yes serves the request.
#: gunicorn comes first: its gevent-based workers also run gevent code.
ADAPTERS: tuple[type[ServerAdapter], ...] = (Gunicorn, Werkzeug, Eventlet, GeventPyWSGI, InProcess)


def find_adapter(environ: Mapping[str, Any]) -> ServerAdapter | None:
    """The adapter for the server that produced ``environ``, or None."""
    for adapter in ADAPTERS:
        if adapter.detect(environ):
            return adapter()
    return None
