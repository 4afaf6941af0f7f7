"""How users annotate WSGI apps and handlers: this must type-check under ``mypy --strict``.

Not a test module: tests/test_lint.py runs mypy on it.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any, Callable

from wsgiws import WebSocket, WebSocketMiddleware


def site(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    return []


def site2(environ: MutableMapping[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    return []


def echo(ws: WebSocket) -> None:
    pass


plain = WebSocketMiddleware(site, echo)
mutable = WebSocketMiddleware(site2, echo)
nested = WebSocketMiddleware(plain, echo)
