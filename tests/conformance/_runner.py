"""Run the Autobahn|Testsuite's fuzzingclient against one server, with a stall watchdog.

``wstest -m fuzzingclient`` never times a case out: against a server that
neither echoes nor closes it waits forever, and since it writes its reports
only when every case is done, it then writes none. So :func:`fuzz` runs it
one chunk of cases at a time (a section, ``"6.*"``, or a subsection,
``"12.1.*"``), reads its ``Running test case ID X`` progress lines, and when
no case starts (and wstest does not exit) for ``stall_seconds``, kills it,
counts case X as stalled, and runs the chunk again without it. The chunks'
reports are then merged into one directory: wstest's per-case HTML and JSON
files, a merged ``index.json`` (wstest's format, stalled cases added with the
behaviour ``STALLED``) and an ``index.html`` table linking to every case.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.live._harness import _die_with_parent

#: Behaviours that pass (wstest's ``behavior``). Anything else (FAILED,
#: UNIMPLEMENTED, and our STALLED) fails.
PASSING_BEHAVIOR = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
#: Close behaviours that pass (``behaviorClose``); UNCLEAN, WRONG CODE,
#: FAILED BY CLIENT and the others fail.
PASSING_CLOSE = frozenset({"OK", "INFORMATIONAL"})
#: The behaviour this module gives a case wstest never finished.
STALLED = "STALLED"
#: The columns of a tally, in the order they are printed.
TALLY_COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED", STALLED)

_RUNNING = re.compile(r"^Running test case ID (\S+) for agent ")
_PLANNED = re.compile(r"^Cases = \[(.*)\]\s*$")
#: wstest waits forever when no case matches: stop it at this line.
_NOTHING = re.compile(r"^Ok, will run 0 test cases")


class WstestError(Exception):
    """wstest did not run: it exited with an error, or wrote no report."""


def case_key(case_id: str) -> tuple[int, ...]:
    """Sort key: case ids in wstest's order (``9.10.1`` after ``9.2.1``)."""
    return tuple(int(part) for part in case_id.split("."))


def _strip_tags(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text)


def _short(value: object, limit: int = 120) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class CaseResult:
    """How one case went: wstest's index entry, or a stalled case."""

    case_id: str
    behavior: str
    behavior_close: str
    remote_close_code: int | None = None
    duration_ms: int | None = None
    #: wstest's report of this case (None for a stalled case), relative to the report dir.
    reportfile: str | None = None

    @property
    def passed(self) -> bool:
        return self.behavior in PASSING_BEHAVIOR and self.behavior_close in PASSING_CLOSE

    @property
    def close_problem(self) -> bool:
        """The case ran, but the connection did not close cleanly (UNCLEAN, WRONG CODE...)."""
        return self.behavior != STALLED and self.behavior_close not in PASSING_CLOSE

    def index_entry(self) -> dict[str, Any]:
        """This case as an entry of wstest's ``index.json``."""
        return {
            "behavior": self.behavior,
            "behaviorClose": self.behavior_close,
            "duration": self.duration_ms,
            "remoteCloseCode": self.remote_close_code,
            "reportfile": self.reportfile,
        }


@dataclass
class Attempt:
    """One wstest run over one chunk of cases."""

    chunk: str
    number: int
    output: Path
    #: The case wstest was running when the watchdog killed it (None: it finished).
    stalled: str | None
    seconds: float


@dataclass
class FuzzResult:
    """Every case of a fuzzingclient run against one server, merged from its chunks."""

    agent: str
    url: str
    chunks: tuple[str, ...]
    report_dir: Path
    cases: dict[str, CaseResult]
    #: Cases wstest announced (its ``Cases = [...]`` line) but that ended up in no report.
    missing: list[str]
    attempts: list[Attempt]
    seconds: float
    #: Set by the caller: anything else that went wrong (server log errors...).
    notes: list[str] = field(default_factory=list)

    @property
    def index_html(self) -> Path:
        return self.report_dir / "index.html"

    @property
    def stalled(self) -> list[str]:
        return [c.case_id for c in self.cases.values() if c.behavior == STALLED]

    def tally(self) -> Counter[str]:
        """Cases per behaviour, plus ``close problems``: cases that did not close cleanly."""
        counts: Counter[str] = Counter(c.behavior for c in self.cases.values())
        counts["close problems"] = sum(c.close_problem for c in self.cases.values())
        return counts

    def failures(self) -> list[CaseResult]:
        return [c for c in self.cases.values() if not c.passed]

    def with_behavior(self, behavior: str) -> list[CaseResult]:
        return [c for c in self.cases.values() if c.behavior == behavior]

    def details(self, case_id: str) -> dict[str, Any]:
        """wstest's full JSON report of a case ({} for a stalled case)."""
        case = self.cases[case_id]
        if case.reportfile is None:
            return {}
        data = json.loads((self.report_dir / case.reportfile).read_text())
        assert isinstance(data, dict)
        return data

    def pointer(self, case_id: str) -> str:
        """Where a developer reads about the case."""
        case = self.cases[case_id]
        if case.reportfile is None:
            attempt = next(a for a in self.attempts if a.stalled == case_id)
            return f"wstest output {attempt.output}"
        json_path = self.report_dir / case.reportfile
        return f"{json_path.with_suffix('.html')} (JSON: {json_path.name})"

    def describe(self, case_id: str) -> str:
        """One line: the case, its behaviour, what wstest expected and saw, where to read more."""
        case = self.cases[case_id]
        if case.behavior == STALLED:
            return (
                f"{case_id} STALLED: neither echoed nor closed; wstest was killed "
                f"after no progress; see {self.pointer(case_id)}"
            )
        d = self.details(case_id)
        close = f"close {case.behavior_close}"
        if case.behavior_close not in PASSING_CLOSE:
            close += f" ({d.get('resultClose', '')}; expected {d.get('expectedClose')})"
        return (
            f"{case_id} {case.behavior}, {close}: {_strip_tags(d.get('description', ''))} "
            f"| wstest: {d.get('result', '')} "
            f"| expected OK: {_short(d.get('expected', {}).get('OK'))}"
            f"; received: {_short(d.get('received'))}; remote close code "
            f"{case.remote_close_code} | {self.pointer(case_id)}"
        )

    def explain(self, case_id: str) -> str:
        """A passing case in one line: what wstest did, what OK is, what it saw, where to read."""
        d = self.details(case_id)
        ok = d.get("expected", {}).get("OK")
        return (
            f"{_strip_tags(d.get('description', ''))} | OK: {_short(ok)}"
            f"; received: {_short(d.get('received'))}, then close code "
            f"{self.cases[case_id].remote_close_code} | {self.pointer(case_id)}"
        )

    def summary_line(self) -> str:
        counts = self.tally()
        shown = [n for n in TALLY_COLUMNS if counts[n] or n != "UNIMPLEMENTED"]
        shown += sorted(set(counts) - {*TALLY_COLUMNS, "close problems"})  # wstest's others
        parts = [f"{'stalled' if n == STALLED else n} {counts[n]}" for n in shown]
        parts.append(f"close problems {counts['close problems']}")
        return f"{len(self.cases)} cases: {', '.join(parts)}"


def fuzz(
    wstest: Sequence[str],
    url: str,
    *,
    agent: str,
    chunks: Sequence[str],
    report_dir: Path,
    stall_seconds: float,
    jobs: int = 1,
) -> FuzzResult:
    """Run ``chunks`` (wstest case patterns) against ``url``, ``jobs`` wstest processes at a time.

    ``wstest`` is the command that starts wstest (``[path to wstest]``).

    ``report_dir`` is emptied first, then holds the merged report, and the
    wstest output of every attempt under ``runs/``.
    """
    shutil.rmtree(report_dir, ignore_errors=True)
    runs = report_dir / "runs"
    runs.mkdir(parents=True)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="wstest") as pool:
        futures = [
            pool.submit(_run_chunk, wstest, url, agent, chunk, runs, stall_seconds)
            for chunk in chunks
        ]
        outcomes = [f.result() for f in futures]
    cases: dict[str, CaseResult] = {}
    missing: list[str] = []
    attempts: list[Attempt] = []
    for chunk_cases, chunk_missing, chunk_attempts in outcomes:
        cases.update(chunk_cases)
        missing += chunk_missing
        attempts += chunk_attempts
    ordered = dict(sorted(cases.items(), key=lambda item: case_key(item[0])))
    result = FuzzResult(
        agent=agent,
        url=url,
        chunks=tuple(chunks),
        report_dir=report_dir,
        cases=ordered,
        missing=sorted(missing, key=case_key),
        attempts=attempts,
        seconds=time.monotonic() - started,
    )
    _write_index(result)
    return result


def _run_chunk(
    wstest: Sequence[str], url: str, agent: str, chunk: str, runs: Path, stall_seconds: float
) -> tuple[dict[str, CaseResult], list[str], list[Attempt]]:
    """Run one chunk until it finishes, excluding each case that stalls; merge its report."""
    name = chunk.rstrip(".*") or "all"
    excluded: list[str] = []
    attempts: list[Attempt] = []
    planned: list[str] | None = None
    finished: Path | None = None  # the outdir of the attempt that ran to the end
    while True:
        number = len(attempts) + 1
        outdir = runs / f"{name}-{number}"
        spec = runs / f"{name}-{number}.spec.json"
        spec.write_text(
            json.dumps(
                {
                    "outdir": str(outdir),
                    "servers": [{"agent": agent, "url": url}],
                    "cases": [chunk],
                    "exclude-cases": excluded,
                    "exclude-agent-cases": {},
                },
                indent=2,
            )
        )
        output = runs / f"{name}-{number}.log"
        seen, current, stalled, status, seconds = _watch(
            [*wstest, "-m", "fuzzingclient", "-s", str(spec)], output, stall_seconds
        )
        if planned is None:
            planned = seen
        if seen == []:  # every case left is excluded, or the pattern matches none
            attempts.append(Attempt(chunk, number, output, None, seconds))
            if not excluded:
                raise WstestError(f"wstest has no case matching {chunk!r}; output: {output}")
            break
        if stalled:
            attempts.append(Attempt(chunk, number, output, current, seconds))
            if current is None:
                raise WstestError(
                    f"wstest ran no case of {chunk} in {stall_seconds:.0f}s; output: {output}"
                )
            excluded.append(current)
            if planned is not None and set(planned) <= set(excluded):
                break  # nothing left to run
            continue
        attempts.append(Attempt(chunk, number, output, None, seconds))
        index = outdir / "index.json"
        if status != 0 or not index.is_file():
            tail = output.read_text(errors="replace")[-3000:]
            raise WstestError(f"wstest exited with status {status} on {chunk}; output:\n{tail}")
        finished = outdir
        break
    cases = {
        case_id: CaseResult(case_id, STALLED, STALLED, reportfile=None) for case_id in excluded
    }
    if finished is not None:
        cases.update(_collect(finished, agent))
    missing = [case_id for case_id in planned or () if case_id not in cases]
    return cases, missing, attempts


def _watch(
    command: list[str], output: Path, stall_seconds: float
) -> tuple[list[str] | None, str | None, bool, int, float]:
    """Run wstest, copying its output to ``output``, and kill it when it stalls.

    Returns the cases it planned (its ``Cases = [...]`` line), the last case
    it started, whether it was killed for a stall, its exit status, and how
    long it ran. The clock restarts at each case wstest starts; the last case
    and the writing of the reports share the final period.
    """
    started = time.monotonic()
    lines: queue.Queue[str | None] = queue.Queue()
    with output.open("w") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # killpg reaches anything it started
            preexec_fn=_die_with_parent,  # no wstest left behind by a killed pytest
        )
        assert proc.stdout is not None
        reader = threading.Thread(
            target=_pump, args=(proc.stdout, lines), name="wstest-output", daemon=True
        )
        reader.start()
        planned: list[str] | None = None
        current: str | None = None
        stalled = False
        deadline = time.monotonic() + stall_seconds
        try:
            while True:
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    stalled = True
                    break
                if line is None:
                    break  # end of output: wstest is exiting
                log.write(line)
                log.flush()
                if m := _RUNNING.match(line):
                    current = m.group(1)
                    deadline = time.monotonic() + stall_seconds
                elif m := _PLANNED.match(line):
                    planned = re.findall(r"'([0-9.]+)'", m.group(1))
                elif _NOTHING.match(line):
                    planned = []
                    break
            if not stalled and planned != []:
                try:
                    proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    stalled = True
            if stalled:
                log.write(
                    f"\n*** no progress for {stall_seconds:.0f}s: wstest killed, "
                    f"case {current} counted as stalled ***\n"
                )
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            status = proc.wait()
            reader.join()
            proc.stdout.close()
    return planned, current, stalled, status, time.monotonic() - started


def _pump(stream: Iterable[str], lines: queue.Queue[str | None]) -> None:
    try:
        for line in stream:
            lines.put(line)
    finally:
        lines.put(None)


def _collect(outdir: Path, agent: str) -> dict[str, CaseResult]:
    """The cases of one finished attempt; their report files move up to the report dir."""
    index = json.loads((outdir / "index.json").read_text())
    report_dir = outdir.parent.parent
    cases = {}
    for case_id, entry in index.get(agent, {}).items():
        reportfile = entry.get("reportfile")
        if reportfile:
            for suffix in (".json", ".html"):
                source = (outdir / reportfile).with_suffix(suffix)
                if source.is_file():
                    os.replace(source, report_dir / source.name)
        cases[case_id] = CaseResult(
            case_id=case_id,
            behavior=entry.get("behavior", "?"),
            behavior_close=entry.get("behaviorClose", "?"),
            remote_close_code=entry.get("remoteCloseCode"),
            duration_ms=entry.get("duration"),
            reportfile=reportfile,
        )
    return cases


_COLORS = {"OK": "#6c6", "NON-STRICT": "#9c6", "INFORMATIONAL": "#aac", STALLED: "#f60"}


def _write_index(result: FuzzResult) -> None:
    """The merged ``index.json`` (wstest's format) and an ``index.html`` table of every case."""
    merged = {result.agent: {cid: c.index_entry() for cid, c in result.cases.items()}}
    (result.report_dir / "index.json").write_text(json.dumps(merged, indent=1, sort_keys=True))
    rows = []
    for case in result.cases.values():
        link = (
            f'<a href="{html.escape(case.reportfile.replace(".json", ".html"))}">{case.case_id}</a>'
            if case.reportfile
            else case.case_id
        )
        color = _COLORS.get(case.behavior, "#e44")
        close_color = "#6c6" if case.behavior_close in PASSING_CLOSE else "#e44"
        rows.append(
            f"<tr><td>{link}</td>"
            f'<td style="background:{color}">{html.escape(case.behavior)}</td>'
            f'<td style="background:{close_color}">{html.escape(case.behavior_close)}</td>'
            f"<td>{case.remote_close_code}</td><td>{case.duration_ms}</td></tr>"
        )
    missing = ", ".join(result.missing) or "none"
    attempts = "".join(
        f"<li>{html.escape(a.chunk)} #{a.number}: {a.seconds:.1f}s"
        f"{f', killed while running {a.stalled}' if a.stalled else ''}"
        f' (<a href="runs/{html.escape(a.output.name)}">output</a>)</li>'
        for a in result.attempts
    )
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Autobahn: {html.escape(result.agent)}</title>
<style>body{{font-family:sans-serif}} td{{padding:2px 8px}}</style></head><body>
<h1>Autobahn|Testsuite fuzzingclient: {html.escape(result.agent)}</h1>
<p>{html.escape(result.url)}, cases {html.escape(" ".join(result.chunks))},
{result.seconds:.1f}s.</p>
<p>{html.escape(result.summary_line())}. Not in any report: {html.escape(missing)}.</p>
<table><tr><th>case</th><th>behaviour</th><th>close</th><th>remote code</th><th>ms</th></tr>
{"".join(rows)}
</table>
<h2>wstest runs</h2><ul>{attempts}</ul>
</body></html>
"""
    result.index_html.write_text(page)
