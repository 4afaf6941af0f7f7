"""bench._report: medians, ratios to the reference, and the goals, on made-up results."""

from __future__ import annotations

from typing import Any

from bench import _report


def _runs(*rates: float, units: int = 1000, cpu: float = 0.05) -> dict[str, Any]:
    return {
        "runs": [
            {
                "units": units,
                "payload_bytes": units * 16,
                "wall": units / rate,
                "client_cpu": units / rate / 4,
                "server_cpu": cpu,
            }
            for rate in rates
        ]
    }


def _results(wsgiws: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    def target(server: str, workloads: dict[str, Any]) -> dict[str, Any]:
        return {
            "library": "x",
            "server": server,
            "model": "x",
            "error": None,
            "workloads": workloads,
        }

    return {
        "date": "2026-11-21T00:00:00",
        "quick": False,
        "runs": 3,
        "seconds": 1.0,
        "machine": {
            "cpu": "cpu",
            "cpus": 2,
            "system": "Linux",
            "python": "3.11",
            "implementation": "C",
        },
        "pinning": "pinned",
        "versions": {"wsgiws": "0"},
        "bounds": {"w4_connections": 100, "w6": 1000, "w6_many": 10000},
        "reference": "websockets/asyncio",
        "targets": {
            "websockets/asyncio": target("asyncio", reference),
            "wsgiws/gunicorn-gevent": target("gunicorn-gevent", wsgiws),
        },
    }


def test_figures_are_medians_of_the_runs() -> None:
    fig = _report.figures({"workloads": {"W1": _runs(100, 300, 200)}})
    assert fig["W1"]["rate"] == 200
    assert fig["W1"]["cpu"] == 50  # 0.05 s over 1000 units: 50 µs each
    assert fig["W1"]["client"] == 0.25


def test_goals_compare_ratios_to_the_reference_in_the_right_direction() -> None:
    results = _results(
        wsgiws={
            "W1": _runs(100, cpu=0.04),  # 40 µs against 50: 0.80, met (≤ 0.85)
            "W2": _runs(100),  # 1.0x the reference: W2's 1.1 not met
            "W4": _runs(120),  # 1.2x: met
            "W5": _runs(80),  # 0.8x: not met (≥ 0.9)
            "W6-many": {"connections": 10000, "bytes_per_connection": 20 * 1024},
        },
        reference={"W1": _runs(100), "W2": _runs(100), "W4": _runs(100), "W5": _runs(100)},
    )
    got = {(g["goal"].split()[0], g["shown"]): g["met"] for g in _report.goals(results)}
    assert got == {
        ("W1", "0.80x"): True,
        ("W2", "1.00x"): False,
        ("W3", "not measured (no result)"): False,
        ("W4", "1.20x"): True,
        ("W5", "0.80x"): False,
        ("W6", "20.0 KiB"): False,
    }


def test_render_names_every_target_and_shows_ratios_and_errors() -> None:
    results = _results(wsgiws={"W1": _runs(150)}, reference={"W1": _runs(100)})
    results["targets"]["flask-sock/eventlet-wsgi"] = {
        "library": "flask-sock",
        "server": "eventlet-wsgi",
        "model": "eventlet",
        "error": "did not start: no module named flask_sock",
        "workloads": {},
    }
    table = _report.render(results, command="./run-benchmarks --docs")
    assert "``wsgiws/gunicorn-gevent``" in table
    assert "150 (1.50x)" in table
    assert "did not start: no module named flask_sock" in table
    assert "Reproduce with ``./run-benchmarks --docs``" in table
    assert "**not met**" in table
