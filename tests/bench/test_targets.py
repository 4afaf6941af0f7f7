"""The benchmark's servers under test (bench._targets): each starts, echoes, is measured, stops.

Every target is started as the benchmark starts it (a subprocess tree on a
socket the test binds), driven with the ``websockets`` sync client, an
independent implementation, and stopped; then no process of its tree may be
left. Failures to start must name the target and carry the server's log.
Nothing here asserts a time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import timeout

pytest.importorskip("psutil", reason="psutil is not installed (pip install -e '.[bench]')")
pytest.importorskip("websockets.sync.client", reason="websockets>=12 is not installed")

import psutil
from websockets.sync.client import connect

from bench import _targets
from bench._targets import Target

pytestmark = pytest.mark.live

TEXT_16 = "sixteen chars..!"
BINARY_70K = bytes(range(256)) * 273 + b"\x00" * 112  # 70,000 bytes: a 64-bit length


def _gone(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``procs`` still running (a zombie nobody reaps does not count)."""
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except psutil.NoSuchProcess:
            continue
    return left


def _require(target: Target) -> None:
    reason = _targets.unavailable(target)
    if reason is not None:
        pytest.skip(f"{target.id}: {reason}")


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-targets")


def test_the_targets_are_the_ones_the_benchmark_names() -> None:
    ids = [t.id for t in _targets.TARGETS]
    assert len(ids) == len(set(ids)) == 15
    assert ids[0].startswith("wsgiws/") and ids[-1] == "floor/threads"
    assert _targets.get(_targets.REFERENCE).library == "websockets"
    for target in _targets.TARGETS:
        assert target.id == f"{target.library}/{target.server}"
        assert target.model in ("threads", "gevent", "eventlet", "asyncio")
    assert set(_targets.versions()) >= {"wsgiws", "flask-sock", "websockets", "psutil"}


@pytest.mark.parametrize("target", _targets.TARGETS, ids=lambda t: t.id)
def test_target_echoes_text_and_binary_and_stops(target: Target, log_dir: Path) -> None:
    _require(target)
    server = _targets.start(target, cpu=None, log_dir=log_dir, ready_timeout=timeout(30))
    with server:
        tree = server.processes()
        assert len(tree) == (2 if target.gunicorn else 1), tree  # master + one worker
        with connect(
            server.url,
            compression=None,
            max_size=None,
            open_timeout=timeout(10),
            # flask-sock on gevent.pywsgi never closes TCP (server.notes says so): do not
            # wait websockets' default 10 s for it.
            close_timeout=timeout(2),
        ) as ws:
            ws.send(TEXT_16)
            assert ws.recv(timeout=timeout(10)) == TEXT_16
            ws.send(BINARY_70K)
            echoed = ws.recv(timeout=timeout(10))
            assert isinstance(echoed, bytes) and echoed == BINARY_70K
        if target.library == "flask-sock" and target.model == "threads":
            # A race in flask-sock on thread servers: the server may close the socket
            # before simple-websocket's reader thread has sent its Close (1006 for us;
            # about 1 in 8 on Werkzeug, 1 in 200 on gthread).
            assert ws.close_code in (1000, 1006)
        else:
            assert ws.close_code == 1000  # the server answered our Close with its own
        assert server.cpu_seconds() > 0
        assert server.rss_bytes() > 0
    assert _gone(tree) == []
    assert server.processes() == [] or _gone(server.processes()) == []
    server.stop()  # idempotent


def test_pinned_to_one_cpu_with_the_worker_too(log_dir: Path) -> None:
    target = _targets.get("wsgiws/gunicorn-gthread")
    _require(target)
    cpu = max(os.sched_getaffinity(0))
    _, hard = _targets._nofile_limit()
    with _targets.start(target, cpu=cpu, log_dir=log_dir, ready_timeout=timeout(30)) as server:
        procs = server.processes()
        assert len(procs) == 2
        for proc in procs:
            assert proc.cpu_affinity() == [cpu]
            assert proc.rlimit(psutil.RLIMIT_NOFILE)[0] == hard


@pytest.mark.parametrize("target_id", ["wsgiws/werkzeug", "wsgiws/gunicorn-gthread"])
def test_a_server_that_exits_fails_with_its_log(
    target_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _targets.get(target_id)
    _require(target)
    (tmp_path / "bench_broken_app.py").write_text(
        'raise RuntimeError("this app cannot be imported, on purpose")\n'
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(_targets.ServerFailed) as info:
        _targets.start(
            target,
            cpu=None,
            log_dir=tmp_path / "logs",
            ready_timeout=timeout(30),
            app_module="bench_broken_app",
        )
    message = str(info.value)
    assert message.startswith(f"{target_id} exited with status"), message
    assert "this app cannot be imported, on purpose" in message  # the log's tail
    (log,) = (tmp_path / "logs").iterdir()
    assert f"see {log}" in message


def test_a_server_that_never_echoes_times_out_and_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _targets.get("wsgiws/werkzeug")
    _require(target)
    # An app that answers every request with 404: it runs, but the probe never gets 101.
    (tmp_path / "bench_404_app.py").write_text(
        "from bench.apps import plain_404_app as wsgiws_app\n"
        "print('the 404 app is serving', flush=True)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(_targets.ServerFailed) as info:
        _targets.start(
            target, cpu=None, log_dir=tmp_path, ready_timeout=1.0, app_module="bench_404_app"
        )
    message = str(info.value)
    assert message.startswith("wsgiws/werkzeug did not echo within 1s"), message
    assert "the handshake got 'HTTP/1.1 404 Not Found'" in message
    assert "the 404 app is serving" in message
    after = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert _gone(after) == []


def test_unavailable_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_targets, "GUNICORN25", tmp_path / "nowhere")
    reason = _targets.unavailable(_targets.get("wsgiws/gunicorn-eventlet"))
    assert reason is not None and "gunicorn 25.3.0" in reason and str(tmp_path) in reason
    with pytest.raises(_targets.TargetUnavailable, match="wsgiws/gunicorn-eventlet: gunicorn"):
        _targets.start(_targets.get("wsgiws/gunicorn-eventlet"), cpu=None, log_dir=tmp_path)
    fake = Target("flask-sock/nowhere", "flask-sock", "nowhere", "threads")
    monkeypatch.setattr(_targets, "_LIBRARY_MODULES", {"flask-sock": ("no_such_module_here",)})
    assert _targets.unavailable(fake) == (
        "not installed: no_such_module_here (pip install -e '.[bench]')"
    )
