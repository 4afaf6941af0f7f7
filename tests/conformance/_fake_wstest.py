"""A stand-in for ``wstest -m fuzzingclient -s SPEC``, for the runner's own test.

It prints wstest's banner and progress lines for three cases (1.1.1 to
1.1.3, less the spec's ``exclude-cases``) and writes wstest's reports
(``index.json``, a JSON and an HTML page per case, every case OK), except
that on the case named by ``$FAKE_WSTEST_HANG`` it hangs, as the real one
does against a server that neither echoes nor closes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

CASES = ("1.1.1", "1.1.2", "1.1.3")


def main(argv: list[str]) -> None:
    assert argv[:3] == ["-m", "fuzzingclient", "-s"], argv
    spec = json.loads(Path(argv[3]).read_text())
    agent = spec["servers"][0]["agent"]
    cases = [c for c in CASES if c not in spec["exclude-cases"]]
    print(f"Ok, will run {len(cases)} test cases against 1 servers")
    print(f"Cases = {cases!r}", flush=True)
    outdir = Path(spec["outdir"])
    outdir.mkdir(parents=True)
    index = {}
    for case_id in cases:
        print(f"Running test case ID {case_id} for agent {agent} from peer tcp4:x", flush=True)
        while case_id == os.environ.get("FAKE_WSTEST_HANG"):
            time.sleep(1)
        name = f"{agent}_case_{case_id.replace('.', '_')}"
        entry = {"behavior": "OK", "behaviorClose": "OK", "duration": 1, "remoteCloseCode": 1000}
        (outdir / f"{name}.json").write_text(json.dumps({"id": case_id, **entry}))
        (outdir / f"{name}.html").write_text(f"<p>{case_id}</p>")
        index[case_id] = {**entry, "reportfile": f"{name}.json"}
    (outdir / "index.json").write_text(json.dumps({agent: index}))


if __name__ == "__main__":
    main(sys.argv[1:])
