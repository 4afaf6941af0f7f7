"""``python -m bench``: run the workloads against every target, report ratios.

One run measures everything side by side: for each target in turn, the
server starts pinned to CPU 1 (the client runs on CPU 0), is warmed up, runs
W1-W5 ``--runs`` times each and W6 once, and is stopped. Medians are kept. The
results go to ``results.json`` and ``table.rst`` in the output folder, and the
table is printed; ``--docs`` also writes it where docs/performance.rst
includes it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fnmatch
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from . import _report, _targets
from ._client import BenchError, Endpoint, idle, roundtrips
from ._workloads import FULL, QUICK, TEXT_16, Bounds, settle, workloads

ROOT = Path(__file__).resolve().parent.parent
#: Where ``--docs`` writes the table that docs/performance.rst includes.
DOCS_TABLE = ROOT / "docs" / "performance-latest.inc"
#: The command that reproduces the docs' table (README and docs/performance.rst say it).
COMMAND = "./run-benchmarks --docs"

CLIENT_CPU, SERVER_CPU = 0, 1


def _pin() -> tuple[int | None, str]:
    """Pin this process (the client) to CPU 0; the servers go to CPU 1."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return None, "not pinned: fewer than 2 CPUs available"
    os.sched_setaffinity(0, {cpus[0]})
    return cpus[1], f"client on CPU {cpus[0]}, server on CPU {cpus[1]}"


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "cpu": model or platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }


def run_target(
    target: _targets.Target,
    *,
    bounds: Bounds,
    runs: int,
    only: set[str],
    cpu: int | None,
    log_dir: Path,
    many_idle: bool,
) -> dict[str, Any]:
    """Every workload against one target; the dict is what results.json keeps."""
    result: dict[str, Any] = {
        "library": target.library,
        "server": target.server,
        "model": target.model,
        "error": None,
        "workloads": {},
    }
    reason = _targets.unavailable(target)
    if reason:
        result["error"] = f"cannot run here: {reason}"
        return result
    try:
        server = _targets.start(target, cpu=cpu, log_dir=log_dir)
    except Exception as exc:  # the reason and the log's tail are in the message
        result["error"] = f"did not start: {exc}"
        return result
    with server:
        ep = Endpoint(server.host, server.port, server.path)
        try:
            roundtrips(ep, payload=TEXT_16, text=True, max_messages=500, max_seconds=2.0)
        except BenchError as exc:
            result["error"] = f"warm-up failed: {exc} (log: {server.log_path})"
            return result
        for workload in workloads(bounds):
            if workload.id not in only:
                continue
            samples = []
            try:
                for _ in range(runs):
                    before = server.cpu_seconds()
                    sample = workload.run(ep)
                    server_cpu = server.cpu_seconds() - before
                    samples.append(
                        {
                            "units": sample.messages,
                            "payload_bytes": sample.payload_bytes,
                            "wall": sample.wall,
                            "client_cpu": sample.client_cpu,
                            "server_cpu": server_cpu,
                            "notes": list(sample.notes),
                        }
                    )
                    settle(0.2)
            except (BenchError, OSError) as exc:
                result["workloads"][workload.id] = {"error": str(exc), "runs": samples}
                settle(1.0)
                continue
            result["workloads"][workload.id] = {"runs": samples}
        if "W6" in only:
            counts = [bounds.w6]
            if many_idle:
                counts.append(bounds.w6_many)
            for count in counts:
                key = "W6" if count == bounds.w6 else "W6-many"
                result["workloads"][key] = _idle_memory(server, ep, count)
    return result


def _idle_memory(server: _targets.Server, ep: Endpoint, count: int) -> dict[str, Any]:
    """RSS of the server tree before and while ``count`` idle connections are held."""
    settle(1.0)
    before = server.rss_bytes()
    try:
        with idle(ep, connections=count, max_seconds=max(60.0, count / 50)) as held:
            settle(1.0)  # the last handshakes' buffers are freed
            during = server.rss_bytes()
    except (BenchError, OSError) as exc:
        return {"error": str(exc), "connections": count}
    settle(1.0)
    return {
        "connections": held,
        "rss_before": before,
        "rss_during": during,
        "bytes_per_connection": (during - before) / held,
    }


def _select(patterns: list[str]) -> list[_targets.Target]:
    chosen = [t for t in _targets.TARGETS if any(fnmatch.fnmatch(t.id, p) for p in patterns)]
    ids = {t.id for t in chosen}
    if _targets.REFERENCE not in ids:
        # Every figure is a ratio to the reference, measured in the same run.
        chosen.insert(0, next(t for t in _targets.TARGETS if t.id == _targets.REFERENCE))
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--targets",
        nargs="+",
        default=["*"],
        metavar="PATTERN",
        help="target ids to run, shell patterns (default: all); the reference "
        f"({_targets.REFERENCE}) is always run",
    )
    parser.add_argument(
        "--workloads",
        default="W1,W2,W3,W4,W5,W6",
        help="comma-separated workload ids (default: all)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per workload (default: 3)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny counts, one run: checks the suite, measures nothing",
    )
    parser.add_argument(
        "--out", type=Path, help="output folder (default: .cache/bench/<date-time>)"
    )
    parser.add_argument(
        "--docs",
        action="store_true",
        help=f"also write the table to {DOCS_TABLE.relative_to(ROOT)}",
    )
    args = parser.parse_args(argv)
    bounds = QUICK if args.quick else FULL
    runs = 1 if args.quick else max(1, args.runs)
    only = {w.strip().upper() for w in args.workloads.split(",") if w.strip()}
    known = {"W1", "W2", "W3", "W4", "W5", "W6"}
    if not only <= known:
        parser.error(f"unknown workload(s): {', '.join(sorted(only - known))}")
    targets = _select(args.targets)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / ".cache" / "bench" / stamp
    out.mkdir(parents=True, exist_ok=True)
    log_dir = out / "logs"
    log_dir.mkdir(exist_ok=True)

    server_cpu, pinning = _pin()
    results: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "runs": runs,
        "bounds": bounds.__dict__,
        "machine": machine(),
        "pinning": pinning,
        "versions": _targets.versions(),
        "reference": _targets.REFERENCE,
        "targets": {},
    }
    started = time.monotonic()
    for target in targets:
        t0 = time.monotonic()
        print(f"bench: {target.id} ...", end="", flush=True, file=sys.stderr)
        results["targets"][target.id] = run_target(
            target,
            bounds=bounds,
            runs=runs,
            only=only,
            cpu=server_cpu,
            log_dir=log_dir,
            many_idle=target.model == "gevent" or target.id == _targets.REFERENCE,
        )
        error = results["targets"][target.id]["error"]
        print(f" {time.monotonic() - t0:.0f}s{' ' + error if error else ''}", file=sys.stderr)
    results["seconds"] = round(time.monotonic() - started, 1)

    (out / "results.json").write_text(json.dumps(results, indent=1))
    table = _report.render(results)
    (out / "table.rst").write_text(table)
    print(table)
    print(f"bench: results in {out}", file=sys.stderr)
    if args.docs:
        DOCS_TABLE.write_text(_report.render(results, command=COMMAND))
        print(f"bench: wrote {DOCS_TABLE.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
