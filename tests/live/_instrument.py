"""What every live app shares with the harness: ``/stats``, a request count, green helpers.

Imported by the apps the live servers run, after the launcher (or gunicorn's
worker) may have monkey-patched the process: nothing here starts a thread or
greenlet at import time.

The harness sets two environment variables per server id:

``WSGIWS_TEST_GREEN``
    ``gevent`` or ``eventlet`` on a green server that did *not* monkey-patch
    (``gevent-pywsgi-unpatched``, ``eventlet-wsgi-unpatched``). There an app
    must start greenlets, not threads, and sleep with the green library's
    sleep: a ``threading.Thread`` would use the connection's green locks from
    another OS thread, and ``time.sleep`` would stop the whole hub.
``WSGIWS_TEST_STATE_DIR``
    A directory shared by the worker processes of a multi-process server
    (``gunicorn-sync``, two workers): request counts and ``/record`` outcomes
    are kept there, so whichever worker answers ``/stats`` or ``/last-close``
    answers for all of them.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, ClassVar

GREEN = os.environ.get("WSGIWS_TEST_GREEN", "")
_state = os.environ.get("WSGIWS_TEST_STATE_DIR")
STATE_DIR = Path(_state) if _state else None

_lock = threading.Lock()
#: WSGI calls in progress in this process, not counting ``/stats`` itself.
_active = 0


# -- green helpers ------------------------------------------------------------------


def spawn(target: Callable[[], None], name: str) -> Callable[[], None]:
    """Run ``target`` concurrently (a thread, or a greenlet on an unpatched green server).

    Returns the function that waits for it to finish.
    """
    if GREEN == "gevent":
        import gevent

        greenlet = gevent.spawn(target)
        return lambda: greenlet.join()  # type: ignore[no-any-return]
    if GREEN == "eventlet":
        import eventlet

        green_thread = eventlet.spawn(target)
        return lambda: green_thread.wait()  # type: ignore[no-any-return]
    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread.join


def sleep(seconds: float) -> None:
    """``time.sleep``, or the green sleep on an unpatched green server."""
    if GREEN == "gevent":
        import gevent

        gevent.sleep(seconds)
    elif GREEN == "eventlet":
        import eventlet

        eventlet.sleep(seconds)
    else:
        time.sleep(seconds)


# -- state shared between worker processes ---------------------------------------------


def _write_state(name: str, data: Any) -> None:
    assert STATE_DIR is not None
    tmp = STATE_DIR / f".{name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, STATE_DIR / name)


def _read_state(name: str) -> Any:
    assert STATE_DIR is not None
    try:
        return json.loads((STATE_DIR / name).read_text())
    except FileNotFoundError:
        return None


class Record(dict):  # type: ignore[type-arg]
    """How one WebSocket connection went, readable by id from any worker (``/last-close``)."""

    _records: ClassVar[dict[str, Record]] = {}

    def __init__(self, cid: str, **fields: Any) -> None:
        super().__init__(fields)
        self.cid = cid
        self._records[cid] = self
        self._save()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._save()

    def update(self, *args: Any, **fields: Any) -> None:  # type: ignore[override]
        super().update(*args, **fields)
        self._save()

    def _save(self) -> None:
        if STATE_DIR is not None:
            _write_state(f"record-{self.cid}.json", dict(self))

    @classmethod
    def find(cls, cid: str) -> dict[str, Any] | None:
        if STATE_DIR is not None:
            return _read_state(f"record-{cid}.json")  # type: ignore[no-any-return]
        return cls._records.get(cid)


def _count(delta: int) -> None:
    global _active
    with _lock:
        _active += delta
        if STATE_DIR is not None:
            _write_state(f"active-{os.getpid()}", _active)


def _active_everywhere() -> int:
    """Calls in progress in this process, or in every live worker sharing the state dir."""
    if STATE_DIR is None:
        return _active
    total = 0
    for path in STATE_DIR.glob("active-*"):
        pid = int(path.name.partition("-")[2])
        if Path(f"/proc/{pid}").exists() or pid == os.getpid():
            total += _read_state(path.name) or 0
    return total


# -- /stats ---------------------------------------------------------------------------


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"))


def _greenlet_count() -> int | None:
    if "greenlet" not in sys.modules:
        return None
    import gc

    import greenlet

    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead)


def _patched() -> bool | None:
    """Whether a green library monkey-patched ``socket`` here; None if none is loaded."""
    patched = None
    if "gevent" in sys.modules:
        import gevent.monkey

        patched = bool(gevent.monkey.is_module_patched("socket"))
    if "eventlet" in sys.modules:
        import eventlet.patcher

        patched = bool(patched or eventlet.patcher.is_monkey_patched("socket"))
    return patched


def stats(environ: dict[str, Any]) -> dict[str, Any]:
    """What ``/stats`` answers. With ``?gc=1`` a full garbage collection runs first, and
    ``"collected"`` says how many unreachable objects it found: fds and greenlets held only
    by reference cycles (a server's exception tracebacks, say) are then not counted."""
    collected = None
    if "gc=1" in environ.get("QUERY_STRING", "").split("&"):
        import gc

        collected = gc.collect()
    return {
        "collected": collected,
        "pid": os.getpid(),
        "fds": _fd_count(),
        "threads": threading.active_count(),
        "greenlets": _greenlet_count(),
        "active": _active_everywhere(),
        "server": environ.get("SERVER_SOFTWARE"),
        "patched": _patched(),
        "green": GREEN or None,
    }


def instrument(app: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a WSGI app: answer ``/stats`` (JSON), count every other call while it runs."""

    def instrumented(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/stats":
            body = json.dumps(stats(environ)).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response("200 OK", headers)
            return [body]
        _count(1)
        try:
            return app(environ, start_response)
        finally:
            _count(-1)

    return instrumented
