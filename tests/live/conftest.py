"""Fixtures of the live tier: one subprocess per server id and app, started once per session.

``server`` is parametrised over the servers wsgiws supports,
``unsupported_server`` over the ones that must answer 501, ``sync_server``
over gunicorn's sync worker, all running ``tests.live.apps:app``;
``framework_server`` over every framework app (``tests/live/frameworks``) on
every supported server and gunicorn-sync; ``tls_server`` over the supported
servers terminating TLS themselves with the session's test certificate, and
``adhoc_server`` over Werkzeug's ``ssl_context="adhoc"`` (tests/live/_tls.py).
Each hands the test a
:class:`LiveTest`: the running server plus the log slice written during this
test. After the test the fixture waits (bounded) until the server has no
request in progress, checks that the worker processes are the same ones, and
fails the test if the slice holds a traceback or an error line, except lines
the test declared with :meth:`LiveTest.allow_errors`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._harness import (
    APP,
    FRAMEWORK_SERVERS,
    FRAMEWORKS,
    SUPPORTED,
    SYNC,
    UNSUPPORTED,
    LiveServer,
    ServerPool,
    ServerUnavailable,
    error_lines,
    wait_for,
)
from ._tls import TLS, Certificates, make_certificates

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.live)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server" in metafunc.fixturenames:
        metafunc.parametrize("server", SUPPORTED, indirect=True)
    if "unsupported_server" in metafunc.fixturenames:
        metafunc.parametrize("unsupported_server", UNSUPPORTED, indirect=True)
    if "sync_server" in metafunc.fixturenames:
        metafunc.parametrize("sync_server", [SYNC], indirect=True)
    if "framework_server" in metafunc.fixturenames:
        pairs = [(fw, sid) for fw in FRAMEWORKS for sid in FRAMEWORK_SERVERS]
        ids = [f"{fw}-{sid}" for fw, sid in pairs]
        metafunc.parametrize("framework_server", pairs, ids=ids, indirect=True)
    if "tls_server" in metafunc.fixturenames:
        metafunc.parametrize("tls_server", SUPPORTED, indirect=True)
    if "adhoc_server" in metafunc.fixturenames:
        metafunc.parametrize("adhoc_server", ["werkzeug"], indirect=True)


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory.mktemp("live-servers"))
    try:
        yield pool
    finally:
        pool.stop_all()


class LiveTest:
    """A running server, seen from one test."""

    def __init__(self, server: LiveServer, framework: str | None = None) -> None:
        self.server = server
        #: The framework app's name (``flask``...), None for the default app.
        self.framework = framework
        self.start_mark = server.mark()
        self.allowed: list[re.Pattern[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)

    @property
    def id(self) -> str:
        return self.server.server_id

    def log(self) -> str:
        """What the server wrote to its log since this test began."""
        return self.server.log_since(self.start_mark)

    def allow_errors(self, *patterns: str) -> None:
        """Error lines matching any of ``patterns`` are expected in this test."""
        self.allowed += [re.compile(p) for p in patterns]

    def unexpected_errors(self) -> list[str]:
        return [
            line
            for line in error_lines(self.log())
            if not any(p.search(line) for p in self.allowed)
        ]

    def settle(self) -> dict[str, Any]:
        """Wait until no request is in progress in the worker; its stats then."""

        def idle() -> dict[str, Any] | None:
            stats = self.server.stats()
            return stats if stats["active"] == 0 else None

        return wait_for(idle, 20, f"{self.server.name} to finish every request of the test")  # type: ignore[no-any-return]


def _live(
    pool: ServerPool,
    server_id: str,
    app: str = APP,
    framework: str | None = None,
    tls: TLS | None = None,
) -> Iterator[LiveTest]:
    try:
        server = pool.get(server_id, app, tls)
    except ServerUnavailable as exc:
        over = "" if tls is None else f" over TLS ({tls.mode})"
        pytest.skip(f"{server_id} cannot run {app}{over} here: {exc}")
    live = LiveTest(server, framework)
    yield live
    stats = live.settle()
    name = server.name
    if len(server.workers) == 1:
        assert stats["pid"] == server.worker_pid, (
            f"{name}: the worker changed from pid {server.worker_pid} to {stats['pid']}"
        )
    workers = server.current_workers()
    assert workers == server.workers, (
        f"{name}: the worker processes changed from {sorted(server.workers)} to {sorted(workers)}"
    )
    errors = live.unexpected_errors()
    assert not errors, (
        f"{name} logged errors during the test:\n"
        + "\n".join(errors)
        + "\n--- log slice ---\n"
        + live.log()[-5000:]
    )


@pytest.fixture
def server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Iterator[LiveTest]:
    yield from _live(server_pool, request.param)


@pytest.fixture
def unsupported_server(
    request: pytest.FixtureRequest, server_pool: ServerPool
) -> Iterator[LiveTest]:
    yield from _live(server_pool, request.param)


@pytest.fixture
def sync_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Iterator[LiveTest]:
    yield from _live(server_pool, request.param)


@pytest.fixture
def framework_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Iterator[LiveTest]:
    framework, server_id = request.param
    yield from _live(server_pool, server_id, FRAMEWORKS[framework], framework)


@pytest.fixture(scope="session")
def tls_certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """The session's test CA and server certificate (127.0.0.1, localhost)."""
    pytest.importorskip("cryptography", reason="the TLS tier makes its certificates with it")
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def session_tls(tls_certificates: Certificates) -> TLS:
    return TLS(tls_certificates)


@pytest.fixture
def tls_server(
    request: pytest.FixtureRequest, server_pool: ServerPool, session_tls: TLS
) -> Iterator[LiveTest]:
    yield from _live(server_pool, request.param, tls=session_tls)


@pytest.fixture(scope="session")
def adhoc_tls() -> TLS:
    pytest.importorskip("cryptography", reason="Werkzeug's adhoc certificate needs it")
    return TLS(None)


@pytest.fixture
def adhoc_server(
    request: pytest.FixtureRequest, server_pool: ServerPool, adhoc_tls: TLS
) -> Iterator[LiveTest]:
    yield from _live(server_pool, request.param, tls=adhoc_tls)
