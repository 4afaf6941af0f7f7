"""The conformance tier: the Autobahn|Testsuite's fuzzingclient against every supported server.

``wstest -m fuzzingclient`` (the Autobahn|Testsuite, Python 2.7 only) plays
several hundred scripted conversations (cases) against an echo endpoint and
grades each one: OK, NON-STRICT, INFORMATIONAL (passes), FAILED,
UNIMPLEMENTED; and how the connection closed: OK, INFORMATIONAL (passes),
UNCLEAN, WRONG CODE, FAILED BY CLIENT... The endpoint here is
``tests.conformance.app:app`` (an echo handler behind
:class:`~wsgiws.WebSocketMiddleware`), started under each server id by the
live tier's :class:`~tests.live._harness.ServerPool`.

* ``./run-tests`` installs wstest into ``.cache/autobahn/venv`` (a Python 2.7
  virtualenv, pins in ``requirements-py27.txt`` beside this file) when it
  finds Python 2.7 (``$WSGIWS_PYTHON27``, pyenv, or ``python2.7``);
  ``$WSGIWS_WSTEST`` points at another wstest. Without one the tests skip
  with the reason (a failure in CI, where ``WSGIWS_REQUIRE_ALL=1``).
* :mod:`tests.conformance._runner` runs wstest section by section and kills
  it when a case stalls (wstest itself never gives up on one), counting the
  case as stalled; see its docstring.
* Reports: ``reports/autobahn/<server id>/<sections>/index.html`` (wstest's
  per-case pages beside it). The terminal summary prints every server's
  tally, the report paths and every NON-STRICT case, also under ``-q``.
* ``-m "not conformance"`` deselects the tier (about 30 s per server for
  sections 1-10, several minutes per server for 12-13).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.conftest import timeout
from tests.live._harness import ROOT, LiveServer, ServerPool, ServerUnavailable, error_lines

from ._runner import FuzzResult, case_key, fuzz

APP = "tests.conformance.app:app"
WSTEST = Path(
    os.environ.get("WSGIWS_WSTEST") or ROOT / ".cache" / "autobahn" / "venv" / "bin" / "wstest"
)
#: Written by ./run-tests when it cannot install wstest: why.
UNAVAILABLE = ROOT / ".cache" / "autobahn" / "unavailable.txt"
REPORTS = ROOT / "reports" / "autobahn"
#: A case during which wstest starts no other case (and does not exit) for this
#: long has stalled. The longest legitimate case takes about 15 s here.
STALL_SECONDS = 60

_HERE = Path(__file__).parent
RESULTS = pytest.StashKey[list[tuple[str, FuzzResult]]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.conformance)
            item.add_marker(pytest.mark.live)


class Conformance:
    """Runs the fuzzingclient against servers from one pool, and keeps the results."""

    def __init__(self, wstest: list[str], pool: ServerPool, results: list[tuple[str, FuzzResult]]):
        self.wstest = wstest
        self.pool = pool
        self.results = results

    def server(self, server_id: str) -> LiveServer:
        try:
            return self.pool.get(server_id, APP)
        except ServerUnavailable as exc:
            pytest.skip(f"{server_id} cannot run here: {exc}")

    def run(self, server_id: str, label: str, chunks: Sequence[str], jobs: int = 1) -> FuzzResult:
        """Run ``chunks`` against ``server_id``; the server's own troubles go in ``notes``."""
        server = self.server(server_id)
        mark = server.mark()
        result = fuzz(
            self.wstest,
            server.ws_url("/echo"),
            agent=server_id,
            chunks=chunks,
            report_dir=REPORTS / server_id / label,
            stall_seconds=timeout(STALL_SECONDS),
            jobs=jobs,
        )
        self.results.append((label, result))
        result.notes += self._server_notes(server, mark)
        return result

    @staticmethod
    def _server_notes(server: LiveServer, mark: int) -> list[str]:
        """What went wrong in the server itself: it died, kept a handler running, logged errors."""
        assert server.proc is not None
        status = server.proc.poll()
        if status is not None:
            return [f"{server.name} died (status {status}); log: {server.log_path}"]
        notes = []
        limit = timeout(20)
        deadline = time.monotonic() + limit
        while (active := server.stats()["active"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if active:
            notes.append(
                f"{server.name}: {active} WSGI call(s) still running "
                f"{limit:.0f}s after wstest ended"
            )
        errors = error_lines(server.log_since(mark))
        if errors:
            shown = "\n    ".join(errors[:20])
            notes.append(
                f"{server.name} logged {len(errors)} error line(s) "
                f"({server.log_path}):\n    {shown}"
            )
        return notes


@pytest.fixture(scope="session")
def wstest() -> list[str]:
    """The command that starts wstest; the tests skip (with the reason) without one."""
    if not os.access(WSTEST, os.X_OK):
        if UNAVAILABLE.is_file():
            reason = UNAVAILABLE.read_text().strip()
        else:
            reason = (
                f"wstest is not installed at {WSTEST}: ./run-tests installs it "
                "(it needs Python 2.7: $WSGIWS_PYTHON27, pyenv, or python2.7 on PATH), "
                "or set WSGIWS_WSTEST"
            )
        pytest.skip(f"the Autobahn|Testsuite cannot run: {reason}")
    return [str(WSTEST)]


@pytest.fixture(scope="session")
def conformance(
    wstest: list[str], tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Conformance]:
    pool = ServerPool(tmp_path_factory.mktemp("conformance-servers"))
    try:
        yield Conformance(wstest, pool, pytestconfig.stash.setdefault(RESULTS, []))
    finally:
        pool.stop_all()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Every server's tally and report, and every NON-STRICT case, whatever the verbosity."""
    results = config.stash.get(RESULTS, [])
    if not results:
        return
    tr = terminalreporter
    tr.write_sep("=", "Autobahn|Testsuite fuzzingclient (wstest)")
    width = max(len(r.agent) for _, r in results)
    for label, r in results:
        tr.write_line(
            f"{r.agent:<{width}}  sections {label:<5}  {r.summary_line()}  [{r.seconds:.0f}s]"
        )
        tr.write_line(f"{'':<{width}}  report: {r.index_html}")
    by_label: dict[str, list[FuzzResult]] = {}
    for label, r in results:
        by_label.setdefault(label, []).append(r)
    for label, runs in by_label.items():
        non_strict: dict[str, list[FuzzResult]] = {}
        for r in runs:
            for case in r.with_behavior("NON-STRICT"):
                non_strict.setdefault(case.case_id, []).append(r)
        if not non_strict:
            continue
        tr.write_line(f"NON-STRICT cases of sections {label} (a pass; what OK would have been):")
        for case_id in sorted(non_strict, key=case_key):
            seen = non_strict[case_id]
            if len(seen) == len(runs):
                where = f"all {len(runs)} servers" if len(runs) > 1 else seen[0].agent
            else:
                where = ", ".join(r.agent for r in seen)
            tr.write_line(f"  {case_id} on {where}: {seen[0].explain(case_id)}")
