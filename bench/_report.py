"""Medians, ratios to the reference, the issue's goals, and the table (reST).

A figure is the median over a workload's runs. Every figure is also given as
a ratio to the same figure of the reference target (the ``websockets``
asyncio server) from the same run: above 1 is better for a rate, below 1 is
better for CPU and memory.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Any, Callable

RATE_WORKLOADS = ("W1", "W2", "W3", "W4", "W5")
KIB = 1024


@dataclass(frozen=True)
class Goal:
    """One of issue 5's targets: ``metric`` of ``workload`` against ``limit``."""

    workload: str
    metric: str  # "rate" (higher is better), "cpu" (lower), "memory" (absolute, lower)
    limit: float
    servers: tuple[str, ...]
    text: str

    def met(self, value: float) -> bool:
        return value >= self.limit if self.metric == "rate" else value <= self.limit


THREADS = ("werkzeug", "gunicorn-gthread")
GEVENT = ("gevent-pywsgi", "gunicorn-gevent")
ALL_SERVERS = (
    "werkzeug",
    "gunicorn-gthread",
    "gunicorn-gevent",
    "gunicorn-eventlet",
    "eventlet-wsgi",
    "gevent-pywsgi",
)
GOALS = (
    Goal("W1", "cpu", 0.85, THREADS + GEVENT, "W1 server CPU per message ≤ 0.85x"),
    Goal("W2", "rate", 1.1, ALL_SERVERS, "W2 throughput ≥ 1.1x"),
    Goal("W3", "rate", 1.0, ALL_SERVERS, "W3 throughput ≥ 1.0x"),
    Goal("W4", "rate", 1.0, ("gunicorn-gevent",), "W4 throughput ≥ 1.0x (gevent worker)"),
    Goal("W4", "rate", 0.6, THREADS, "W4 throughput ≥ 0.6x (threads)"),
    Goal("W5", "rate", 0.9, GEVENT, "W5 connections per second ≥ 0.9x"),
    Goal("W6-many", "memory", 16 * KIB, GEVENT, "W6 ≤ 16 KiB per idle connection, 10,000 held"),
)


def _median(runs: list[dict[str, Any]], f: Callable[[dict[str, Any]], float]) -> float | None:
    values = [f(r) for r in runs if r["units"] and r["wall"] > 0]
    return statistics.median(values) if values else None


def figures(result: dict[str, Any]) -> dict[str, dict[str, float | str | None]]:
    """Per workload: rate (units/s), mbps (payload MB/s), cpu (server µs per unit),
    client (client CPU share of the wall time), kib (W6: KiB per idle connection);
    or ``error``."""
    out: dict[str, dict[str, float | str | None]] = {}
    for wid, data in result.get("workloads", {}).items():
        if "error" in data:
            out[wid] = {"error": data["error"]}
            continue
        if wid.startswith("W6"):
            out[wid] = {"kib": data["bytes_per_connection"] / KIB, "held": data["connections"]}
            continue
        runs = data["runs"]
        out[wid] = {
            "rate": _median(runs, lambda r: r["units"] / r["wall"]),
            "mbps": _median(runs, lambda r: r["payload_bytes"] / r["wall"] / 1e6),
            "cpu": _median(runs, lambda r: r["server_cpu"] / r["units"] * 1e6),
            "client": max(
                (r["client_cpu"] / r["wall"] for r in runs if r["wall"] > 0), default=None
            ),
        }
    return out


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal on each server it names: the wsgiws figure, its ratio, met or not."""
    ref = figures(results["targets"].get(results["reference"], {}))
    rows = []
    for goal in GOALS:
        for server in goal.servers:
            tid = f"wsgiws/{server}"
            if tid not in results["targets"]:
                continue
            fig = figures(results["targets"][tid]).get(goal.workload, {})
            if goal.metric == "memory":
                value = fig.get("kib")
                measured = None if value is None else float(value) * KIB
                shown = None if value is None else f"{float(value):.1f} KiB"
            else:
                key = "cpu" if goal.metric == "cpu" else "rate"
                value = fig.get(key)
                refv = ref.get(goal.workload, {}).get(key)
                measured = ratio(
                    None if value is None else float(value), None if refv is None else float(refv)
                )
                shown = None if measured is None else f"{measured:.2f}x"
            rows.append(
                {
                    "goal": goal.text,
                    "target": tid,
                    "shown": shown or f"not measured ({fig.get('error', 'no result')})",
                    "met": measured is not None and goal.met(measured),
                }
            )
    return rows


def _cell(value: float | str | None, reference: float | str | None, fmt: str) -> str:
    if value is None or isinstance(value, str):
        return "-"
    r = ratio(value, None if isinstance(reference, str) else reference)
    text = format(value, fmt)
    return f"{text} ({r:.2f}x)" if r is not None else text


def _list_table(title: str, header: list[str], rows: list[list[str]], widths: str = "") -> str:
    lines = [f".. list-table:: {title}", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {widths}")
    lines.append("")
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return "\n".join(lines) + "\n"


def render(results: dict[str, Any], command: str | None = None) -> str:
    """The results as reST: machine, throughput, CPU, memory, goals, errors."""
    ref_id = results["reference"]
    ref = figures(results["targets"].get(ref_id, {}))
    per = {tid: figures(r) for tid, r in results["targets"].items()}
    m = results["machine"]
    out = []
    if results.get("quick"):
        out.append(
            ".. warning:: A ``--quick`` run: it checks the suite, its figures mean nothing.\n"
        )
    out.append(
        f"Run of {results['date']} on {m['cpu']} ({m['cpus']} CPUs), {m['system']}, "
        f"{m['implementation']} {m['python']}; {results['pinning']}. "
        f"Medians of {results['runs']} run(s); the whole run took {results.get('seconds', '?')} s. "
        f"Ratios are to ``{ref_id}`` in the same run.\n"
    )
    if command:
        out.append(f"Reproduce with ``{command}``.\n")
    versions = ", ".join(f"{k} {v}" for k, v in sorted(results["versions"].items()))
    out.append(f"Versions: {versions}.\n")

    rate_rows = []
    cpu_rows = []
    for tid, fig in per.items():
        error = results["targets"][tid].get("error")
        if error:
            rate_rows.append([f"``{tid}``", *["-"] * 5, f"{error.splitlines()[0][:160]}"])
            continue
        client = max(
            (float(fig[w]["client"] or 0) for w in RATE_WORKLOADS if "client" in fig.get(w, {})),
            default=0.0,
        )
        rate_rows.append(
            [
                f"``{tid}``",
                _cell(fig.get("W1", {}).get("rate"), ref.get("W1", {}).get("rate"), ".0f"),
                _cell(fig.get("W2", {}).get("mbps"), ref.get("W2", {}).get("mbps"), ".0f"),
                _cell(fig.get("W3", {}).get("mbps"), ref.get("W3", {}).get("mbps"), ".0f"),
                _cell(fig.get("W4", {}).get("rate"), ref.get("W4", {}).get("rate"), ".0f"),
                _cell(fig.get("W5", {}).get("rate"), ref.get("W5", {}).get("rate"), ".0f"),
                "; ".join(
                    x
                    for x in (
                        f"client CPU ≤ {client:.0%}",
                        _errors(fig),
                        _notes(results["targets"][tid]),
                    )
                    if x
                ),
            ]
        )
        cpu_rows.append(
            [
                f"``{tid}``",
                *[
                    _cell(fig.get(w, {}).get("cpu"), ref.get(w, {}).get("cpu"), ".1f")
                    for w in RATE_WORKLOADS
                ],
                _cell(fig.get("W6", {}).get("kib"), ref.get("W6", {}).get("kib"), ".1f"),
                _cell(fig.get("W6-many", {}).get("kib"), ref.get("W6-many", {}).get("kib"), ".1f"),
            ]
        )
    bounds = results["bounds"]
    out.append(
        _list_table(
            "Throughput (higher is better)",
            [
                "target",
                "W1 round trips/s",
                "W2 MB/s",
                "W3 MB/s",
                f"W4 messages/s ({bounds['w4_connections']} conns)",
                "W5 connections/s",
                "notes",
            ],
            rate_rows,
        )
    )
    out.append(
        _list_table(
            "Server CPU per unit in µs, and memory per idle connection in KiB (lower is better)",
            [
                "target",
                "W1 µs/msg",
                "W2 µs/msg",
                "W3 µs/msg",
                "W4 µs/msg",
                "W5 µs/conn",
                f"W6 KiB/conn ({bounds['w6']:,})",
                f"W6 KiB/conn ({bounds['w6_many']:,})",
            ],
            cpu_rows,
        )
    )
    goal_rows = [
        [g["goal"], f"``{g['target']}``", g["shown"], "met" if g["met"] else "**not met**"]
        for g in goals(results)
    ]
    if goal_rows:
        out.append(_list_table("Issue 5's goals", ["goal", "target", "measured", ""], goal_rows))
    return "\n".join(out)


def _notes(result: dict[str, Any]) -> str:
    """The client's notes on how the server closed (RFC 6455 §7.1.1 deviations), once each."""
    seen: dict[str, str] = {}
    for wid, data in result.get("workloads", {}).items():
        for run in data.get("runs", []):
            for note in run.get("notes", []):
                # "8 of 1000 closing handshakes: the server ... (b'HTTP/1.1 200 OK...')":
                # one line per kind of deviation, without the counts and the bytes.
                what = note.partition(": ")[2] or note
                what = what.split(" (b'")[0].split(' (b"')[0]
                seen.setdefault(re.sub(r"\d+", "N", what), f"{wid}: {what}")
    return "; ".join(seen.values())


def _errors(fig: dict[str, dict[str, float | str | None]]) -> str:
    failed = [
        f"{w}: {str(d['error']).splitlines()[0][:120]}" for w, d in fig.items() if "error" in d
    ]
    return "; ".join(failed)
