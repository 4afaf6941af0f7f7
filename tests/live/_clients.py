"""Client helpers shared by the live tests."""

from __future__ import annotations

import os
import uuid
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.conftest import timeout

from ._harness import wait_for

#: Message sizes (in bytes) the echo tests cover: every frame-length encoding and its edges.
SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]


def size_id(size: int) -> str:
    """A test id for a message size: bytes, or whole MiB from 1 MiB up."""
    return f"{size >> 20}MiB" if size >= 1 << 20 else str(size)


def payload(kind: str, size: int) -> str | bytes:
    """A message of ``size`` bytes on the wire: random bytes, or text with multi-byte characters."""
    if kind == "binary":
        return os.urandom(size)
    unit = "wsgiws é ✓ 𝄞 "
    raw = (unit * (size // len(unit.encode()) + 1)).encode()[:size]
    text = raw.decode("utf-8", "ignore")
    return text + "x" * (size - len(text.encode()))


def ws_connect(server: Any, path: str, **kwargs: Any) -> ClientConnection:
    """The ``websockets`` sync client, connected to ``path`` on ``server``."""
    kwargs.setdefault("max_size", None)
    kwargs.setdefault("open_timeout", timeout(10))
    kwargs.setdefault("close_timeout", timeout(10))
    return connect(server.ws_url(path), **kwargs)


def new_id() -> str:
    return uuid.uuid4().hex


def last_close(server: Any, cid: str) -> dict[str, Any] | None:
    resp = server.get(f"/last-close?id={cid}")
    if resp.status == 404:
        return None
    assert resp.status == 200, resp
    return resp.json()  # type: ignore[no-any-return]


def wait_state(server: Any, cid: str, state: str, seconds: float = 15) -> dict[str, Any]:
    """Poll ``/last-close`` until the ``/record`` handler ``cid`` is in ``state``."""

    def check() -> dict[str, Any] | None:
        rec = last_close(server, cid)
        return rec if rec is not None and rec["state"] == state else None

    return wait_for(check, seconds, f"the /record handler {cid} to be {state!r}")  # type: ignore[no-any-return]
