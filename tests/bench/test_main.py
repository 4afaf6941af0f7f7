"""``python -m bench --quick``: the whole suite runs end to end and reports what it measured.

Quick counts only: this proves the command works (targets start, every workload
runs against them, results and table are written), never how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import timeout

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.live


def test_quick_run_measures_every_workload_and_writes_the_table(tmp_path: Path) -> None:
    pytest.importorskip("psutil", reason="psutil is in the bench extra: pip install -e '.[bench]'")
    targets = ["wsgiws/werkzeug", "wsgiws/gevent-pywsgi", "floor/threads"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path), "--targets", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(240),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    # The reference is always measured, first.
    assert list(results["targets"]) == ["websockets/asyncio", *targets]
    for tid, result in results["targets"].items():
        assert result["error"] is None, (tid, result["error"])
        workloads = result["workloads"]
        for wid in ("W1", "W2", "W3", "W4", "W5"):
            runs = workloads[wid]["runs"]
            assert runs and all(r["units"] > 0 and r["wall"] > 0 for r in runs), (tid, wid)
            # wsgiws, websockets and the floor close by the book: no notes.
            assert all(not r["notes"] for r in runs), (tid, wid, runs)
        assert workloads["W6"]["connections"] == results["bounds"]["w6"], tid
    # 10,000 idle connections (quick: 50) only on the gevent targets and the reference.
    assert "W6-many" in results["targets"]["wsgiws/gevent-pywsgi"]["workloads"]
    assert "W6-many" in results["targets"]["websockets/asyncio"]["workloads"]
    assert "W6-many" not in results["targets"]["wsgiws/werkzeug"]["workloads"]
    table = (tmp_path / "table.rst").read_text()
    assert table == proc.stdout.strip() + "\n" or table.strip() == proc.stdout.strip()
    for tid in results["targets"]:
        assert f"``{tid}``" in table
    assert "(1.00x)" in table  # the reference's own ratio
    assert "Issue 5's goals" in table
