"""The Autobahn|Testsuite's fuzzingclient passes against the middleware on every supported server.

Sections 1-10 (framing, pings and pongs, reserved bits and opcodes,
fragmentation, UTF-8, closing, limits up to 16 MiB, performance) on every
server; sections 12-13 (permessage-deflate) on one threaded and one green
server. A case passes when wstest grades it OK, NON-STRICT or INFORMATIONAL
*and* the connection closed cleanly (close behaviour OK or INFORMATIONAL); a
stalled case (no echo and no close: wstest would wait forever) fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import timeout
from tests.live._harness import SUPPORTED

from ._runner import STALLED, FuzzResult, fuzz
from .conftest import REPORTS, STALL_SECONDS, Conformance

#: Sections 1-10 (wstest has no section 8), one wstest run each: a stall costs
#: a rerun of its section only.
SECTIONS_1_10 = tuple(f"{n}.*" for n in (1, 2, 3, 4, 5, 6, 7, 9, 10))
#: Sections 12 and 13 by subsection (18 cases each), two wstest runs at a time.
DEFLATE_CHUNKS = tuple(f"12.{n}.*" for n in range(1, 6)) + tuple(f"13.{n}.*" for n in range(1, 8))
#: One threaded and one green server: the deflate code is the same on all of
#: them, and 12-13 take minutes per server.
DEFLATE_SERVERS = ("gunicorn-gthread", "gunicorn-gevent")
#: How many cases wstest 25.10.1 has in those sections.
CASES_1_10 = 301
CASES_12_13 = 216
#: At most this many failing cases are described one by one in a failure message.
_SHOWN = 40


def problems(result: FuzzResult, expected_cases: int) -> list[str]:
    """Everything that keeps ``result`` from passing, one line (or block) each."""
    found = []
    unimplemented = [c.case_id for c in result.failures() if c.behavior == "UNIMPLEMENTED"]
    if unimplemented:
        found.append(
            f"{len(unimplemented)} case(s) UNIMPLEMENTED (the server declined what the case "
            f"needs; in 12-13: permessage-deflate was not negotiated): "
            f"{' '.join(unimplemented[:60])}{' ...' if len(unimplemented) > 60 else ''}"
        )
    others = [c.case_id for c in result.failures() if c.behavior != "UNIMPLEMENTED"]
    found += [result.describe(case_id) for case_id in others[:_SHOWN]]
    if len(others) > _SHOWN:
        found.append(f"... and {len(others) - _SHOWN} more failing cases: {result.index_html}")
    found += [f"{case_id}: wstest planned it, but it is in no report" for case_id in result.missing]
    if len(result.cases) != expected_cases:
        found.append(f"{len(result.cases)} cases ran or stalled, not {expected_cases}")
    found += result.notes
    return found


def fail_message(result: FuzzResult, label: str, found: list[str]) -> str:
    return (
        f"{result.agent}, sections {label}: {result.summary_line()}\n"
        f"report: {result.index_html}\n" + "\n".join(f"- {line}" for line in found)
    )


@pytest.mark.timeout(timeout(1200))
@pytest.mark.parametrize("server_id", SUPPORTED)
def test_sections_1_to_10(conformance: Conformance, server_id: str) -> None:
    """Every case of sections 1-10 passes with a clean close, none stalls, and 7.1.5 (a Close
    arriving in the middle of a fragmented message) is answered with the peer's own close code."""
    result = conformance.run(server_id, "1-10", SECTIONS_1_10)
    found = problems(result, CASES_1_10)
    case = result.cases.get("7.1.5")
    if case is not None and case.behavior != STALLED:
        details = result.details("7.1.5")
        sent, echoed = details.get("localCloseCode"), details.get("remoteCloseCode")
        if sent != echoed:
            found.append(
                f"7.1.5: wstest closed with {sent}, the server answered {echoed} "
                f"| {result.pointer('7.1.5')}"
            )
    assert not found, fail_message(result, "1-10", found)


@pytest.mark.timeout(timeout(2400))
@pytest.mark.parametrize("server_id", DEFLATE_SERVERS)
def test_permessage_deflate_sections_12_13(conformance: Conformance, server_id: str) -> None:
    """Every case of sections 12-13 negotiates permessage-deflate (with each parameter set wstest
    offers) and passes with a clean close; none is UNIMPLEMENTED or stalls."""
    result = conformance.run(server_id, "12-13", DEFLATE_CHUNKS, jobs=2)
    found = problems(result, CASES_12_13)
    assert not found, fail_message(result, "12-13", found)


def test_runner_reports_failed_cases(conformance: Conformance) -> None:
    """Against ``/broken`` (no echo for a 125-byte message, binary back for a 126-character
    text), 1.1.2 and 1.1.3 fail, each described with its behaviour, its close behaviour and a
    pointer to its HTML report; the other six cases of 1.1 pass."""
    server = conformance.server("gunicorn-gthread")
    result = fuzz(
        conformance.wstest,
        server.ws_url("/broken"),
        agent="broken",
        chunks=["1.1.*"],
        report_dir=REPORTS / "self-test" / "broken",
        stall_seconds=timeout(STALL_SECONDS),
    )
    assert [c.case_id for c in result.failures()] == ["1.1.2", "1.1.3"], result.summary_line()
    found = problems(result, 8)
    assert len(found) == 2, found
    for case_id, line in zip(("1.1.2", "1.1.3"), found):
        html = result.report_dir / f"broken_case_{case_id.replace('.', '_')}.html"
        assert line.startswith(f"{case_id} FAILED, close "), line
        assert str(html) in line and html.is_file(), line
    assert "close WRONG CODE" in found[0], found


def test_runner_counts_a_stalled_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When wstest starts a case and then prints nothing and does not exit (a stand-in hangs on
    1.1.2), the runner kills it within the stall bound, counts 1.1.2 as stalled, runs the section
    again without it, and merges the rest; the failure points at the killed run's output."""
    monkeypatch.setenv("FAKE_WSTEST_HANG", "1.1.2")
    fake = [sys.executable, str(Path(__file__).with_name("_fake_wstest.py"))]
    result = fuzz(
        fake,
        "ws://127.0.0.1:9/",
        agent="fake",
        chunks=["1.1.*"],
        report_dir=tmp_path / "report",
        stall_seconds=timeout(2),
    )
    assert result.stalled == ["1.1.2"], result.summary_line()
    assert [a.stalled for a in result.attempts] == ["1.1.2", None]
    assert [c.case_id for c in result.cases.values() if c.passed] == ["1.1.1", "1.1.3"]
    assert result.missing == []
    found = problems(result, 3)
    assert len(found) == 1 and found[0].startswith("1.1.2 STALLED"), found
    assert str(result.attempts[0].output) in found[0], found
    assert "killed" in result.attempts[0].output.read_text()
    index = json.loads((result.report_dir / "index.json").read_text())
    assert {k: v["behavior"] for k, v in index["fake"].items()} == {
        "1.1.1": "OK",
        "1.1.2": STALLED,
        "1.1.3": "OK",
    }
    assert (result.report_dir / "fake_case_1_1_3.html").is_file()
    assert result.index_html.is_file()
